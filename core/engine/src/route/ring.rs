//! The consistent-hash ring of a pool: every endpoint owns points on a 64-bit circle (virtual
//! nodes, more for a heavier endpoint), and a session belongs to the owner of the first point
//! at or after its hash. A point's place depends only on its endpoint's id and number, so adding
//! an endpoint takes sessions only from their old owners into the new one, and removing one
//! moves only its own sessions.

use super::hash::hash64;

/// Virtual nodes of an endpoint of the pool's mean weight. With 160, an endpoint's share of the
/// circle is within about ±8 % of its due (one standard deviation).
pub const VNODES_PER_ENDPOINT: usize = 160;
/// The fewest virtual nodes of an endpoint, however light.
const MIN_VNODES: usize = 16;
/// The most virtual nodes of an endpoint, however heavy (8 × the mean).
const MAX_VNODES: usize = VNODES_PER_ENDPOINT * 8;

/// Points sorted on the circle, with their owners (indices into the pool's endpoints) beside
/// them: the search reads only `points`.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    points: Vec<u64>,
    owners: Vec<u32>,
}

impl Ring {
    /// The ring of endpoints given by id and weight (positive, finite), in the pool's order.
    /// An endpoint of weight `w` gets `160 × w ÷ mean weight` points, between 16 and 1,280.
    pub(crate) fn build(endpoints: &[(&str, f64)]) -> Ring {
        if endpoints.is_empty() {
            return Ring::default();
        }
        let mean = endpoints.iter().map(|(_, w)| w).sum::<f64>() / endpoints.len() as f64;
        let mut pairs: Vec<(u64, u32)> = Vec::new();
        for (owner, (id, weight)) in endpoints.iter().enumerate() {
            let vnodes = ((VNODES_PER_ENDPOINT as f64 * weight / mean).round() as usize)
                .clamp(MIN_VNODES, MAX_VNODES);
            for vnode in 0..vnodes {
                let point = hash64(&[id.as_bytes(), &(vnode as u32).to_le_bytes()]);
                pairs.push((point, owner as u32));
            }
        }
        // Ties (a 64-bit collision) are ordered by owner, so the ring does not depend on the
        // order endpoints were listed in beyond their indices.
        pairs.sort_unstable();
        Ring {
            points: pairs.iter().map(|&(p, _)| p).collect(),
            owners: pairs.iter().map(|&(_, o)| o).collect(),
        }
    }

    /// Points on the ring.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }

    /// The position of the first point at or after `hash`, wrapping round the circle. The
    /// ring must not be empty.
    pub(crate) fn position(&self, hash: u64) -> usize {
        let at = self.points.partition_point(|&p| p < hash);
        if at == self.points.len() { 0 } else { at }
    }

    /// The owner of the point at `position` (taken modulo the ring's length).
    pub(crate) fn owner_at(&self, position: usize) -> usize {
        self.owners[position % self.owners.len()] as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavier_endpoints_own_more_of_the_circle() {
        let ring = Ring::build(&[("a", 1.0), ("b", 3.0)]);
        // Mean 2: a gets 80 points, b 240.
        assert_eq!(ring.len(), 320);
        let mut owned = [0u32; 2];
        for s in 0..20_000u32 {
            let position = ring.position(hash64(&[&s.to_le_bytes()]));
            owned[ring.owner_at(position)] += 1;
        }
        let share_b = f64::from(owned[1]) / 20_000.0;
        assert!((0.68..0.82).contains(&share_b), "{owned:?}");
    }

    #[test]
    fn positions_wrap_round_the_circle() {
        let ring = Ring::build(&[("a", 1.0)]);
        assert_eq!(ring.position(u64::MAX), 0);
        assert_eq!(ring.owner_at(ring.len()), 0);
    }
}

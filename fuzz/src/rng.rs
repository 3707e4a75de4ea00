//! A small deterministic random number generator (SplitMix64): the same seed gives the same
//! inputs on every machine and every build, which is all a replay needs.

/// SplitMix64: one `u64` of state, good enough statistics for choosing mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The generator of case `case` of a run with `seed`: each case can be replayed alone.
    pub fn for_case(seed: u64, case: u64) -> Rng {
        let mut mix = Rng(seed ^ case.wrapping_mul(0xA24B_AED4_963E_E407));
        Rng(mix.next_u64() ^ case)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo).saturating_add(1))
    }

    /// True with probability 1/`n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One element of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A size that is usually small and sometimes large: `1..=max`, log-uniform.
    pub fn size(&mut self, max: usize) -> usize {
        let bits = usize::BITS - max.max(1).leading_zeros();
        let cap = 1usize << self.below(bits as usize + 1).min(usize::BITS as usize - 1);
        self.between(1, cap.min(max).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_numbers() {
        let a: Vec<u64> = (0..5).map(|c| Rng::for_case(7, c).next_u64()).collect();
        let b: Vec<u64> = (0..5).map(|c| Rng::for_case(7, c).next_u64()).collect();
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
        let mut r = Rng::new(1);
        for _ in 0..1000 {
            assert!(r.below(3) < 3);
            let s = r.size(100);
            assert!((1..=100).contains(&s), "{s}");
            assert!((5..=9).contains(&r.between(5, 9)));
        }
    }
}

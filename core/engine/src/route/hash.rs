//! The router's two sources of numbers, both hand-written so that routing needs no dependency
//! and gives the same answers on every platform and version: a stable 64-bit hash of bytes
//! (FNV-1a with a final avalanche, for the ring) and a seeded SplitMix64 generator (for the
//! power of two choices).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over `parts` (each followed by a 0xff separator, so `("ab", "c")` and `("a", "bc")`
/// differ), then MurmurHash3's 64-bit finaliser: FNV-1a alone moves the high bits of short
/// inputs too little for points on a ring.
pub(crate) fn hash64(parts: &[&[u8]]) -> u64 {
    let mut hash = FNV_OFFSET;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    fmix64(hash)
}

/// MurmurHash3's finaliser: every input bit flips about half the output bits.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// A map keyed by FNV-1a: faster than the standard SipHash on short keys. Only for keys the
/// router was given (endpoint ids, pool names), which a caller cannot choose to collide.
pub(crate) type FnvMap<K, V> = HashMap<K, V, FnvBuild>;

/// Builds [`Fnv`] hashers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FnvBuild;

impl BuildHasher for FnvBuild {
    type Hasher = Fnv;

    fn build_hasher(&self) -> Fnv {
        Fnv(FNV_OFFSET)
    }
}

/// FNV-1a as a [`Hasher`].
#[derive(Debug)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64 on an atomic state: shared by every thread without a lock, one `fetch_add` per
/// draw; a given seed gives the same sequence when draws are not concurrent.
#[derive(Debug)]
pub(crate) struct SplitMix {
    state: AtomicU64,
}

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix {
            state: AtomicU64::new(seed),
        }
    }

    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A number in `0..n` from 32 random bits, without division (Lemire's multiply-shift; the
/// bias is below n / 2^32).
pub(crate) fn below(bits: u32, n: usize) -> usize {
    ((u64::from(bits) * n as u64) >> 32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_stable_and_separates_parts() {
        // Fixed values: a change of the hash would move every session on every ring.
        assert_eq!(
            hash64(&[b"i-00000001", b"0"]),
            hash64(&[b"i-00000001", b"0"])
        );
        assert_ne!(hash64(&[b"ab", b"c"]), hash64(&[b"a", b"bc"]));
        assert_eq!(hash64(&[b"session-1"]), 0x8cd0_2130_6c9b_8bfa_u64);
    }

    #[test]
    fn draws_cover_the_range_evenly() {
        let rng = SplitMix::new(7);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[below(rng.next_u64() as u32, 10)] += 1;
        }
        for count in counts {
            assert!((9_500..10_500).contains(&count), "{counts:?}");
        }
    }
}

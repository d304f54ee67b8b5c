//! A small deterministic pseudo-random generator: splitmix64.
//!
//! For randomness that must repeat: test data and interleavings, benchmark loads, and the
//! scheduler's seeded order. The same seed gives the same stream on every run and machine.
//! It is not cryptographic: its output is predictable from a few values and must never be
//! used for keys, tokens or anything an adversary may guess.
//!
//! This file stands alone (no `crate::` paths, std only) so that the integration tests and
//! benches can compile their own copy with `#[path = ".../runtime/src/rng.rs"] mod rng;`. Its
//! unit tests then run in those binaries too; they take microseconds.

/// splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", 2014,
/// with the mixing constants of Vigna's `splitmix64.c`): a 64-bit counter advanced by an odd
/// increment, each value scrambled by a bijective mixer. The stream repeats only after 2^64
/// values and each seed starts at its own place in it: seeds `s` and `s + GOLDEN` give the
/// same stream one step apart, while small seeds (counts, ids) start far from each other.
#[derive(Clone, Copy, Debug)]
pub struct Rng {
    /// The counter: `seed + k * GOLDEN` after `k` values.
    state: u64,
}

/// 2^64 divided by the golden ratio, odd: stepping by it visits every u64 once per period.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

impl Rng {
    /// A generator whose stream is fixed by `seed`; any u64, zero included, is a good seed.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next value, uniform over all of u64.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n`, by Lemire's multiply-shift: the high half of `next_u64() * n`.
    /// Without rejection each value's probability is off from `1 / n` by less than 2^-64.
    ///
    /// Panics if `n` is zero.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0): the range 0..0 is empty");
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn the_same_seed_repeats_its_stream() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn neighbouring_seeds_give_different_streams() {
        let first: Vec<u64> = (0..64).map(|seed| Rng::new(seed).next_u64()).collect();
        let mut distinct = first.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), first.len());
    }

    #[test]
    fn below_stays_in_range_and_reaches_every_value() {
        let mut rng = Rng::new(7);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            let v = rng.below(7);
            assert!(v < 7);
            seen[v as usize] += 1;
        }
        // 1000 expected of each; 800 is more than six standard deviations below.
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        assert_eq!(rng.below(1), 0);
    }
}

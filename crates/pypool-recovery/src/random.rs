//! Injectable randomness for jitter.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng as _, RngExt as _, SeedableRng as _};

/// A source of uniform numbers in `[0, 1)`.
///
/// The policy never owns an RNG: the caller passes one in, so tests are
/// deterministic and production code decides how it is seeded. Values
/// outside `[0, 1]` (or NaN) from a faulty implementation are clamped, never
/// trusted.
pub trait RandomSource {
    /// The next number, in `[0, 1)`.
    fn next_f64(&mut self) -> f64;
}

/// Always returns the same number; for tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedRandom(pub f64);

impl RandomSource for FixedRandom {
    fn next_f64(&mut self) -> f64 {
        self.0
    }
}

/// Returns the given numbers in order, then starts over; an empty sequence
/// always returns 0. For tests.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceRandom {
    values: Vec<f64>,
    next: usize,
}

impl SequenceRandom {
    /// A source cycling through `values`.
    pub fn new(values: impl Into<Vec<f64>>) -> Self {
        Self {
            values: values.into(),
            next: 0,
        }
    }
}

impl RandomSource for SequenceRandom {
    fn next_f64(&mut self) -> f64 {
        let Some(&value) = self.values.get(self.next) else {
            return 0.0;
        };
        self.next = (self.next + 1) % self.values.len();
        value
    }
}

/// A seeded pseudo-random generator: `rand`'s Xoshiro256++ (portable:
/// the same seed gives the same numbers on every machine), seeded through
/// SplitMix64 so any `u64`, 0 included, is a good seed. Good enough for
/// jitter, not for anything secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededRandom {
    rng: Xoshiro256PlusPlus,
}

impl SeededRandom {
    /// A generator seeded with `seed` (any value, including 0, is fine).
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}

impl RandomSource for SeededRandom {
    fn next_f64(&mut self) -> f64 {
        // 53 random bits: an exactly representable fraction in [0, 1).
        self.rng.random::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_cycles_and_empty_is_zero() {
        let mut seq = SequenceRandom::new(vec![0.25, 0.75]);
        let drawn: Vec<f64> = (0..5).map(|_| seq.next_f64()).collect();
        assert_eq!(drawn, vec![0.25, 0.75, 0.25, 0.75, 0.25]);
        let mut empty = SequenceRandom::new(Vec::new());
        assert_eq!(empty.next_f64(), 0.0);
    }

    #[test]
    fn seeded_is_deterministic_in_range_and_spread() {
        let mut a = SeededRandom::new(42);
        let mut b = SeededRandom::new(42);
        let mut low = 0;
        for _ in 0..10_000 {
            let x = a.next_f64();
            assert_eq!(x, b.next_f64());
            assert!((0.0..1.0).contains(&x), "{x} out of range");
            if x < 0.5 {
                low += 1;
            }
        }
        // A fair source puts about half below 0.5.
        assert!((4_500..5_500).contains(&low), "{low} of 10000 below 0.5");
    }

    #[test]
    fn seeded_zero_seed_still_moves() {
        let mut rng = SeededRandom::new(0);
        let first = rng.next_u64();
        assert_ne!(first, 0);
        assert_ne!(first, rng.next_u64());
    }

    #[test]
    fn different_seeds_differ() {
        assert_ne!(
            SeededRandom::new(1).next_u64(),
            SeededRandom::new(2).next_u64()
        );
    }
}

//! The seeded generator of behaviour mode (`rand`'s Xoshiro256++, the one
//! generator of the workspace), so behaviour mode is reproducible: the same
//! seed gives the same crashes and latencies.

#[cfg(test)]
use rand::Rng as _;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt as _, SeedableRng as _};

/// A seeded Xoshiro256++.
#[derive(Debug, Clone)]
pub(crate) struct SeededPrng {
    rng: Xoshiro256PlusPlus,
}

impl SeededPrng {
    /// A generator whose sequence depends only on `seed` (any value, 0 included).
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    /// The next 64 random bits.
    #[cfg(test)]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A uniform draw in `[0, 1)`.
    pub(crate) fn next_unit(&mut self) -> f64 {
        self.rng.random::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_other_seed_other_sequence() {
        let draw = |seed| {
            let mut prng = SeededPrng::new(seed);
            (0..8).map(|_| prng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert_ne!(draw(0), vec![0; 8]);
    }

    #[test]
    fn unit_draws_stay_in_range_and_spread() {
        let mut prng = SeededPrng::new(42);
        let draws: Vec<f64> = (0..10_000).map(|_| prng.next_unit()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let below_half = draws.iter().filter(|d| **d < 0.5).count();
        assert!((4_500..5_500).contains(&below_half), "{below_half}");
    }
}

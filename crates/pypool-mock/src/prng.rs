//! A tiny seeded pseudo-random generator (xorshift64*), so behaviour mode is
//! reproducible without a `rand` dependency. Not for anything but tests.

/// xorshift64* with a splitmix64-scrambled seed.
#[derive(Debug, Clone)]
pub(crate) struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// A generator whose sequence depends only on `seed` (any value, 0 included).
    pub(crate) fn new(seed: u64) -> Self {
        // splitmix64 of the seed: nearby seeds give unrelated sequences, and the
        // state is never 0 (xorshift's one fixed point).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self {
            state: if z == 0 { 0x2545_F491_4F6C_DD1D } else { z },
        }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform draw in `[0, 1)`.
    pub(crate) fn next_unit(&mut self) -> f64 {
        // The top 53 bits fill an f64 mantissa exactly.
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 * SCALE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_other_seed_other_sequence() {
        let draw = |seed| {
            let mut prng = XorShift64::new(seed);
            (0..8).map(|_| prng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert_ne!(draw(0), vec![0; 8]);
    }

    #[test]
    fn unit_draws_stay_in_range_and_spread() {
        let mut prng = XorShift64::new(42);
        let draws: Vec<f64> = (0..10_000).map(|_| prng.next_unit()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let below_half = draws.iter().filter(|d| **d < 0.5).count();
        assert!((4_500..5_500).contains(&below_half), "{below_half}");
    }
}

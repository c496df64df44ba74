//! Injectable randomness for jitter.

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

/// A tiny xorshift64* generator seeded by the caller; good enough for jitter,
/// not for anything secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XorShiftRandom {
    state: u64,
}

impl XorShiftRandom {
    /// Used in place of a zero seed, which xorshift cannot leave.
    const ZERO_SEED_REPLACEMENT: u64 = 0x9E37_79B9_7F4A_7C15;

    /// A generator seeded with `seed` (any value, including 0, is fine).
    pub fn new(seed: u64) -> Self {
        let state = if seed == 0 {
            Self::ZERO_SEED_REPLACEMENT
        } else {
            seed
        };
        Self { state }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl RandomSource for XorShiftRandom {
    fn next_f64(&mut self) -> f64 {
        // The top 53 bits make an exactly representable fraction in [0, 1).
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 * SCALE
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
    fn xorshift_is_deterministic_in_range_and_spread() {
        let mut a = XorShiftRandom::new(42);
        let mut b = XorShiftRandom::new(42);
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
    fn xorshift_zero_seed_still_moves() {
        let mut rng = XorShiftRandom::new(0);
        let first = rng.next_u64();
        assert_ne!(first, 0);
        assert_ne!(first, rng.next_u64());
    }

    #[test]
    fn different_seeds_differ() {
        assert_ne!(
            XorShiftRandom::new(1).next_u64(),
            XorShiftRandom::new(2).next_u64()
        );
    }
}

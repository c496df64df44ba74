//! Exponential backoff with jitter, in exact integer arithmetic.

use std::time::Duration;

use crate::RandomSource;

/// How the exponential delay is randomised, so that many requests failing
/// together do not all retry at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Jitter {
    /// No randomness: exactly `min(max_delay, base * 2^(attempt-1))`.
    None,
    /// Anywhere between zero and the exponential delay (spreads retries the
    /// most, but a retry may follow at once).
    Full,
    /// Half the exponential delay plus a random part of the other half (the
    /// default: spreads retries while keeping a real pause between them).
    #[default]
    Equal,
}

/// The fraction used to scale durations: 32 bits keeps `nanos * fraction`
/// inside a `u128` for every `Duration`.
const FRACTION_BITS: u32 = 32;

/// `min(max_delay, base * 2^(attempt-1))` for a 1-based `attempt` (0 is read as 1),
/// saturating instead of overflowing.
pub(crate) fn exponential_delay(base: Duration, max_delay: Duration, attempt: u32) -> Duration {
    let doublings = attempt.max(1) - 1;
    let grown = 1u128
        .checked_shl(doublings)
        .and_then(|factor| base.as_nanos().checked_mul(factor));
    match grown {
        Some(nanos) => from_nanos_u128(nanos).min(max_delay),
        // Past 2^127 nanoseconds, only a zero base stays below the cap.
        None if base.is_zero() => Duration::ZERO,
        None => max_delay,
    }
}

/// Applies `jitter` to `delay`, drawing from `rng` at most once. The result is
/// never above `delay`.
pub(crate) fn apply_jitter(
    delay: Duration,
    jitter: Jitter,
    rng: &mut dyn RandomSource,
) -> Duration {
    match jitter {
        Jitter::None => delay,
        Jitter::Full => scale(delay, rng.next_f64()),
        Jitter::Equal => {
            let half = delay / 2;
            let rest = delay - half;
            half + scale(rest, rng.next_f64())
        }
    }
}

/// `duration * fraction` for a fraction clamped to `[0, 1]` (NaN reads as 0),
/// exact to the nanosecond and never above `duration`.
fn scale(duration: Duration, fraction: f64) -> Duration {
    let fraction = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let one = 1u128 << FRACTION_BITS;
    // In [0, 2^32]; the cast saturates and the `min` keeps it at most `one`.
    let fixed = ((fraction * one as f64) as u128).min(one);
    let nanos = (duration.as_nanos() * fixed) >> FRACTION_BITS;
    from_nanos_u128(nanos).min(duration)
}

/// `nanos` as a `Duration`, saturating at `Duration::MAX`.
fn from_nanos_u128(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let Ok(secs) = u64::try_from(nanos / NANOS_PER_SEC) else {
        return Duration::MAX;
    };
    // The remainder is below 10^9, so it fits.
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).unwrap_or(0);
    Duration::new(secs, subsec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FixedRandom, SequenceRandom};

    const BASE: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(2);

    #[test]
    fn doubles_per_attempt_up_to_the_cap() {
        let delays: Vec<u128> = (1..=8)
            .map(|attempt| exponential_delay(BASE, MAX, attempt).as_millis())
            .collect();
        assert_eq!(delays, vec![50, 100, 200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn attempt_zero_is_the_first_attempt() {
        assert_eq!(exponential_delay(BASE, MAX, 0), BASE);
    }

    #[test]
    fn a_tiny_base_keeps_doubling_past_32_attempts() {
        let nano = Duration::from_nanos(1);
        assert_eq!(
            exponential_delay(nano, Duration::MAX, 34),
            Duration::from_nanos(1 << 33)
        );
    }

    #[test]
    fn huge_attempts_and_durations_saturate_at_the_cap() {
        assert_eq!(exponential_delay(BASE, MAX, 33), MAX);
        assert_eq!(exponential_delay(BASE, MAX, u32::MAX), MAX);
        assert_eq!(
            exponential_delay(Duration::MAX, Duration::MAX, 2),
            Duration::MAX
        );
    }

    #[test]
    fn zero_base_never_grows() {
        assert_eq!(exponential_delay(Duration::ZERO, MAX, 40), Duration::ZERO);
    }

    #[test]
    fn base_above_cap_is_capped() {
        assert_eq!(exponential_delay(Duration::from_secs(10), MAX, 1), MAX);
    }

    #[test]
    fn full_jitter_scales_the_whole_delay() {
        let delay = Duration::from_millis(400);
        assert_eq!(
            apply_jitter(delay, Jitter::Full, &mut FixedRandom(0.25)),
            Duration::from_millis(100)
        );
        assert_eq!(
            apply_jitter(delay, Jitter::Full, &mut FixedRandom(0.0)),
            Duration::ZERO
        );
    }

    #[test]
    fn equal_jitter_keeps_half() {
        let delay = Duration::from_millis(400);
        assert_eq!(
            apply_jitter(delay, Jitter::Equal, &mut FixedRandom(0.0)),
            Duration::from_millis(200)
        );
        assert_eq!(
            apply_jitter(delay, Jitter::Equal, &mut FixedRandom(0.5)),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn no_jitter_draws_nothing() {
        let mut rng = SequenceRandom::new(vec![0.5, 0.0]);
        let delay = Duration::from_millis(400);
        assert_eq!(apply_jitter(delay, Jitter::None, &mut rng), delay);
        // The first value is still there: nothing was drawn.
        assert_eq!(rng.next_f64(), 0.5);
    }

    #[test]
    fn faulty_random_values_are_clamped() {
        let delay = Duration::from_millis(400);
        for (value, expected) in [
            (f64::NAN, Duration::ZERO),
            (-3.0, Duration::ZERO),
            (1.0, delay),
            (7.5, delay),
            (f64::INFINITY, delay),
        ] {
            assert_eq!(
                apply_jitter(delay, Jitter::Full, &mut FixedRandom(value)),
                expected,
                "random value {value}"
            );
        }
    }

    #[test]
    fn scaling_the_largest_duration_does_not_overflow() {
        assert_eq!(scale(Duration::MAX, 1.0), Duration::MAX);
        let half = scale(Duration::MAX, 0.5);
        assert!(half < Duration::MAX && half > Duration::MAX / 3);
    }
}

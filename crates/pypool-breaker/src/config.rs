//! The breaker's tunables.

use std::time::Duration;

/// When and how a [`CircuitBreaker`](crate::CircuitBreaker) trips and recovers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker (default 5; 0 is read
    /// as 1; `u32::MAX` leaves tripping to `failure_rate` alone).
    pub consecutive_failures: u32,
    /// An optional second trip condition: too high a failure rate over a
    /// rolling window (default none).
    pub failure_rate: Option<RateTrip>,
    /// How long the breaker stays open before it lets probes through
    /// (default 5 s).
    pub reset_timeout: Duration,
    /// How many probe calls may be in flight while half-open (default 1; 0 is
    /// read as 1). Every other call is rejected.
    pub half_open_probes: u32,
    /// How many probes must succeed to close the breaker again (default 1,
    /// the default number of probes; 0 is read as 1). May exceed
    /// `half_open_probes`: a slot frees as each probe finishes.
    pub half_open_successes_to_close: u32,
}

/// Trip when the failure rate over a rolling window reaches a threshold.
///
/// The window is kept as [`BUCKETS_PER_WINDOW`] time buckets of
/// `window / BUCKETS_PER_WINDOW` each, so memory is fixed and a call counts for
/// between nine tenths of `window` and the whole of it after it is recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateTrip {
    /// How far back calls count.
    pub window: Duration,
    /// No trip on rate before the window holds this many calls.
    pub min_calls: u32,
    /// The failure fraction (failures / calls, in `(0, 1]`) at or above which
    /// the breaker trips. A failure is needed to trip, whatever the threshold.
    pub threshold: f64,
}

/// How many time buckets a [`RateTrip`] window is divided into.
pub const BUCKETS_PER_WINDOW: u32 = 10;

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate: None,
            reset_timeout: Duration::from_secs(5),
            half_open_probes: 1,
            half_open_successes_to_close: 1,
        }
    }
}

/// A [`BreakerConfig`] that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count that must be at least 1 is 0.
    #[error("breaker {field} is 0; set it to at least 1")]
    ZeroCount {
        /// The offending field.
        field: &'static str,
    },
    /// The rate threshold is not a fraction in `(0, 1]`.
    #[error(
        "breaker failure_rate.threshold is {threshold}; set it to a fraction of failures in (0, 1], e.g. 0.5"
    )]
    ThresholdOutOfRange {
        /// The configured threshold.
        threshold: f64,
    },
    /// The rate window is empty.
    #[error(
        "breaker failure_rate.window is 0; set it to how far back calls should count, e.g. 10s"
    )]
    EmptyWindow,
}

impl BreakerConfig {
    /// Checks the configuration, so a pool builder can reject nonsense early.
    ///
    /// The breaker itself accepts any configuration (zero counts are read as
    /// 1, a rate threshold of 0 or less trips on any failure once `min_calls`
    /// is reached, one above 1 or NaN never trips).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("consecutive_failures", self.consecutive_failures),
            ("half_open_probes", self.half_open_probes),
            (
                "half_open_successes_to_close",
                self.half_open_successes_to_close,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroCount { field });
            }
        }
        if let Some(rate) = &self.failure_rate {
            if !(rate.threshold > 0.0 && rate.threshold <= 1.0) {
                return Err(ConfigError::ThresholdOutOfRange {
                    threshold: rate.threshold,
                });
            }
            if rate.window.is_zero() {
                return Err(ConfigError::EmptyWindow);
            }
        }
        Ok(())
    }

    /// The configuration as the breaker applies it: zero counts read as 1.
    pub(crate) fn normalized(self) -> Self {
        Self {
            consecutive_failures: self.consecutive_failures.max(1),
            half_open_probes: self.half_open_probes.max(1),
            half_open_successes_to_close: self.half_open_successes_to_close.max(1),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_as_documented() {
        let config = BreakerConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.consecutive_failures, 5);
        assert_eq!(config.failure_rate, None);
        assert_eq!(config.reset_timeout, Duration::from_secs(5));
        assert_eq!(config.half_open_probes, 1);
        assert_eq!(config.half_open_successes_to_close, 1);
    }

    #[test]
    fn rejects_zero_counts() {
        let config = BreakerConfig {
            half_open_probes: 0,
            ..BreakerConfig::default()
        };
        assert_eq!(
            config.validate().map_err(|err| err.to_string()),
            Err("breaker half_open_probes is 0; set it to at least 1".to_owned())
        );
        assert_eq!(config.normalized().half_open_probes, 1);
    }

    #[test]
    fn rejects_thresholds_outside_a_fraction_and_empty_windows() {
        for threshold in [0.0, -0.5, 1.5, f64::NAN] {
            let config = BreakerConfig {
                failure_rate: Some(RateTrip {
                    window: Duration::from_secs(10),
                    min_calls: 5,
                    threshold,
                }),
                ..BreakerConfig::default()
            };
            assert!(
                matches!(
                    config.validate(),
                    Err(ConfigError::ThresholdOutOfRange { .. })
                ),
                "threshold {threshold}"
            );
        }
        let empty = BreakerConfig {
            failure_rate: Some(RateTrip {
                window: Duration::ZERO,
                min_calls: 5,
                threshold: 0.5,
            }),
            ..BreakerConfig::default()
        };
        assert_eq!(empty.validate(), Err(ConfigError::EmptyWindow));
    }
}

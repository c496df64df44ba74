//! The policy's tunables.

use std::time::Duration;

use crate::Jitter;

/// Bounds and backoff shape of the recovery policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecoveryConfig {
    /// How many attempts a request gets in all, the first included (default 3;
    /// 1 disables retries).
    pub max_attempts: u32,
    /// The longest time from the first attempt's start to the start of the last
    /// retry (default 30 s): a retry whose delay would end past it is not made.
    pub max_elapsed: Duration,
    /// The delay before the first retry, before jitter (default 50 ms).
    pub base_delay: Duration,
    /// The longest delay before any retry, before jitter (default 2 s).
    pub max_delay: Duration,
    /// How the delay is randomised (default [`Jitter::Equal`]).
    pub jitter: Jitter,
    /// Whether the first retry after a failure that took the worker away
    /// (`WorkerExited`, `ConnectionLost`, `ProtocolViolation`: the worker is
    /// removed) goes at once instead of after
    /// `base_delay` (default `true`). The worker that failed is gone, so the
    /// retry cannot meet it again; waiting only delays the requests a crash
    /// caught on a shared worker. Later retries back off as usual, so a
    /// request that keeps killing workers is still paced.
    pub first_retry_at_once_after_worker_loss: bool,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            max_elapsed: Duration::from_secs(30),
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            jitter: Jitter::Equal,
            first_retry_at_once_after_worker_loss: true,
        }
    }
}

/// A [`RecoveryConfig`] that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_attempts` is 0, but every request gets at least one attempt.
    #[error("recovery max_attempts is 0; set it to at least 1 (1 disables retries)")]
    NoAttempts,
    /// `base_delay` is above `max_delay`, so the delay would never grow.
    #[error(
        "recovery base_delay ({base_delay:?}) is above max_delay ({max_delay:?}); lower base_delay or raise max_delay"
    )]
    BaseAboveMax {
        /// The configured base delay.
        base_delay: Duration,
        /// The configured cap.
        max_delay: Duration,
    },
}

impl RecoveryConfig {
    /// Checks the configuration, so a pool builder can reject nonsense early.
    ///
    /// The policy itself accepts any configuration and stays total: 0
    /// attempts behaves like 1, and a base above the cap is capped.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::NoAttempts);
        }
        if self.base_delay > self.max_delay {
            return Err(ConfigError::BaseAboveMax {
                base_delay: self.base_delay,
                max_delay: self.max_delay,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_as_documented() {
        let config = RecoveryConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.max_attempts, 3);
        assert_eq!(config.max_elapsed, Duration::from_secs(30));
        assert_eq!(config.base_delay, Duration::from_millis(50));
        assert_eq!(config.max_delay, Duration::from_secs(2));
        assert_eq!(config.jitter, Jitter::Equal);
        assert!(config.first_retry_at_once_after_worker_loss);
    }

    #[test]
    fn rejects_zero_attempts_and_inverted_delays() {
        let zero = RecoveryConfig {
            max_attempts: 0,
            ..RecoveryConfig::default()
        };
        assert_eq!(zero.validate(), Err(ConfigError::NoAttempts));
        let inverted = RecoveryConfig {
            base_delay: Duration::from_secs(3),
            ..RecoveryConfig::default()
        };
        assert_eq!(
            inverted.validate().map_err(|err| err.to_string()),
            Err(
                "recovery base_delay (3s) is above max_delay (2s); lower base_delay or raise max_delay"
                    .to_owned()
            )
        );
    }
}

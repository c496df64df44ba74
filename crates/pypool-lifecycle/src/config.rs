//! How a lifecycle is tuned.

/// Tuning of one [`WorkerLifecycle`](crate::WorkerLifecycle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LifecycleConfig {
    /// How many past transitions to keep (0 keeps none). Default 32.
    pub history_len: usize,
    /// Consecutive failed health checks after which the worker is terminated
    /// and never handed out again. Default 3; 0 is treated as 1.
    pub health_failure_threshold: u32,
    /// Consecutive suspect request failures after which the worker is
    /// terminated and never handed out again. Default 3; 0 is treated as 1.
    pub request_failure_threshold: u32,
}

impl LifecycleConfig {
    /// This configuration with zero thresholds raised to 1 (a threshold of 0
    /// would make every worker unhealthy before it served anything).
    pub const fn normalized(self) -> Self {
        Self {
            history_len: self.history_len,
            health_failure_threshold: if self.health_failure_threshold == 0 {
                1
            } else {
                self.health_failure_threshold
            },
            request_failure_threshold: if self.request_failure_threshold == 0 {
                1
            } else {
                self.request_failure_threshold
            },
        }
    }
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            history_len: 32,
            health_failure_threshold: 3,
            request_failure_threshold: 3,
        }
    }
}

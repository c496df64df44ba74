//! The pool's resolved configuration.

use std::collections::HashSet;
use std::time::Duration;

use pypool_affinity::AffinityMode;
use pypool_breaker::BreakerConfig;
use pypool_lifecycle::{LifecycleConfig, RecycleLimits};
use pypool_recovery::RecoveryConfig;

use crate::Timeouts;

/// How workers are started when the pool is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartMode {
    /// All `size` workers are spawned at once, concurrently, when the pool is
    /// built; `Pool::ready` waits for them.
    #[default]
    Eager,
    /// Workers are spawned when requests need them, up to `size +
    /// max_overflow`; `Pool::ready` waits for `min_ready` of them only.
    Lazy,
}

/// Everything the pool was built with (see [`PoolBuilder`](crate::PoolBuilder) for defaults).
#[derive(Debug, Clone)]
pub(crate) struct PoolConfig {
    pub(crate) name: String,
    pub(crate) size: usize,
    pub(crate) max_overflow: usize,
    pub(crate) start_mode: StartMode,
    pub(crate) min_ready: usize,
    pub(crate) queue_bound: usize,
    pub(crate) timeouts: Timeouts,
    pub(crate) health_check_interval: Option<Duration>,
    pub(crate) lifecycle: LifecycleConfig,
    pub(crate) recycle: RecycleLimits,
    pub(crate) recovery: RecoveryConfig,
    pub(crate) spawn_breaker: BreakerConfig,
    pub(crate) command_breaker: BreakerConfig,
    pub(crate) idempotent_commands: HashSet<String>,
    pub(crate) seed: u64,
    pub(crate) affinity_mode: AffinityMode,
    /// Idle time after which a session's worker binding lapses.
    pub(crate) session_ttl: Duration,
    /// Whether an idle session's programs and data are deleted when it lapses.
    pub(crate) expire_session_data: bool,
    /// Module prefixes `python` programs may name (`None`: any module).
    pub(crate) allowed_program_modules: Option<Vec<String>>,
    /// Chunks one stream may hold in the host (its initial credit).
    pub(crate) stream_window: std::num::NonZeroU32,
}

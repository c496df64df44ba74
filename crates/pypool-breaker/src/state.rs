//! What the breaker reports about itself.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow; failures are counted.
    Closed,
    /// Calls are rejected until the reset timeout passes.
    Open,
    /// A bounded number of probe calls decide whether to close or reopen.
    HalfOpen,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        })
    }
}

/// A point-in-time view of a breaker, for status pages and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BreakerSnapshot {
    /// The state.
    pub state: BreakerState,
    /// Failures in a row since the last success while closed (kept while
    /// open or half-open: it shows what tripped the breaker, plus failed probes).
    pub consecutive_failures: u32,
    /// How long ago the breaker last opened; `None` while closed.
    pub open_for: Option<Duration>,
    /// While open: how long until probes are admitted.
    pub retry_after: Option<Duration>,
    /// While half-open: probes admitted and not yet resolved.
    pub probes_in_flight: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_display_and_serialize_in_snake_case() {
        assert_eq!(BreakerState::HalfOpen.to_string(), "half-open");
        assert_eq!(
            serde_json::to_string(&BreakerState::HalfOpen).unwrap_or_default(),
            "\"half_open\""
        );
        assert_eq!(
            serde_json::to_string(&BreakerState::Closed).unwrap_or_default(),
            "\"closed\""
        );
    }
}

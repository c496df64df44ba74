//! Admission tokens, call outcomes and rejections.

use std::fmt;
use std::time::Duration;

/// Permission to make one call, handed out by
/// [`CircuitBreaker::try_acquire`](crate::CircuitBreaker::try_acquire).
///
/// Resolve every permit exactly once, with
/// [`record`](crate::CircuitBreaker::record) or
/// [`release`](crate::CircuitBreaker::release). The permit remembers the
/// breaker's generation (which changes on every state change), so the result
/// of a call admitted before the breaker changed state is ignored: a late
/// success from before a trip cannot close the breaker, a late failure from
/// before a recovery cannot open it. A probe permit resolved twice counts once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permit {
    pub(crate) generation: u64,
    pub(crate) ticket: u64,
    pub(crate) probe: bool,
}

impl Permit {
    /// Whether this call is a half-open probe (its outcome decides whether the
    /// breaker closes or reopens).
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// How an admitted call ended, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The call worked (or failed for a reason that is not the protected
    /// thing's fault, such as the caller's bad input).
    Success,
    /// The call failed in a way the breaker should count.
    Failure,
}

/// The breaker refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("circuit open; retry in {}", ShortDuration(*.retry_after))]
pub struct Rejected {
    /// How long until the breaker will (probably) admit a call: the rest of
    /// the reset timeout while open; while half-open with every probe slot
    /// taken, the whole reset timeout (the wait if the probes fail).
    pub retry_after: Duration,
}

/// A duration for people: `1.2s` (rounded up to tenths) from one second on,
/// whole milliseconds (rounded up) below.
struct ShortDuration(Duration);

impl fmt::Display for ShortDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos >= 1_000_000_000 {
            let tenths = nanos.div_ceil(100_000_000);
            write!(f, "{}.{}s", tenths / 10, tenths % 10)
        } else {
            write!(f, "{}ms", nanos.div_ceil(1_000_000))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(retry_after: Duration) -> String {
        Rejected { retry_after }.to_string()
    }

    #[test]
    fn rejection_says_when_to_come_back() {
        assert_eq!(
            message(Duration::from_millis(1_200)),
            "circuit open; retry in 1.2s"
        );
        assert_eq!(
            message(Duration::from_millis(1_201)),
            "circuit open; retry in 1.3s"
        );
        assert_eq!(
            message(Duration::from_secs(5)),
            "circuit open; retry in 5.0s"
        );
        assert_eq!(
            message(Duration::from_micros(300_500)),
            "circuit open; retry in 301ms"
        );
        assert_eq!(message(Duration::ZERO), "circuit open; retry in 0ms");
    }
}

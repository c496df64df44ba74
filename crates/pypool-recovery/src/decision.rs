//! The attempt being judged and the decision about it.

use std::fmt;
use std::time::Duration;

/// Where a failed request stands: which attempt failed and what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttemptContext {
    /// The attempt that just failed, 1-based (0 is read as 1).
    pub attempt: u32,
    /// Time since the first attempt began.
    pub elapsed: Duration,
    /// Whether the request was written to a worker (so it may have run).
    pub reached_worker: bool,
    /// Whether the command is declared idempotent (running it twice is harmless).
    pub idempotent: bool,
}

/// What to do with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestAction {
    /// Give up and return the error to the caller.
    ReturnError,
    /// Try again after `delay` (on another worker if this one is removed).
    Retry {
        /// How long to wait before the next attempt.
        delay: Duration,
    },
}

/// What to do with the worker the attempt ran on (or the slot it was meant to fill).
///
/// The pool facade maps this onto the lifecycle crate's severities:
/// `Keep` → harmless, `Degrade` → suspect, `Remove` → fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerAction {
    /// The worker is healthy; keep it serving.
    Keep,
    /// The worker still serves but is suspect (health-check it, prefer others).
    Degrade,
    /// Take the worker out of the pool (kill it if it still runs).
    Remove {
        /// Whether to spawn a replacement.
        replace: bool,
    },
}

/// The policy's answer for one failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    /// What to do with the request.
    pub request: RequestAction,
    /// What to do with the worker.
    pub worker: WorkerAction,
}

impl Decision {
    /// The delay before the next attempt, if the request is to be retried.
    pub fn retry_delay(&self) -> Option<Duration> {
        match self.request {
            RequestAction::Retry { delay } => Some(delay),
            RequestAction::ReturnError => None,
        }
    }
}

impl WorkerAction {
    /// Whether the worker leaves the pool.
    pub fn removes(&self) -> bool {
        matches!(self, Self::Remove { .. })
    }
}

impl fmt::Display for RequestAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReturnError => f.write_str("return the error"),
            Self::Retry { delay } => write!(f, "retry in {delay:?}"),
        }
    }
}

impl fmt::Display for WorkerAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keep => f.write_str("keep the worker"),
            Self::Degrade => f.write_str("mark the worker suspect"),
            Self::Remove { replace: true } => f.write_str("remove and replace the worker"),
            Self::Remove { replace: false } => f.write_str("remove the worker"),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.request, self.worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_reads_as_an_instruction() {
        let decision = Decision {
            request: RequestAction::Retry {
                delay: Duration::from_millis(50),
            },
            worker: WorkerAction::Remove { replace: true },
        };
        assert_eq!(
            decision.to_string(),
            "retry in 50ms; remove and replace the worker"
        );
        assert_eq!(decision.retry_delay(), Some(Duration::from_millis(50)));
        assert!(decision.worker.removes());
        assert!(!WorkerAction::Degrade.removes());
    }
}

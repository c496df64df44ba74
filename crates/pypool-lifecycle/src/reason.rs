//! Why a transition happened.

use std::fmt;

use crate::event::FailureSeverity;
use crate::exit::ExitInfo;
use crate::recycle::RecycleReason;

/// Why a worker is draining: what it will be terminated for once its current
/// request is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DrainCause {
    /// A recycle limit was reached while the worker was busy.
    Recycle(RecycleReason),
    /// The pool is shutting down.
    Shutdown,
}

impl fmt::Display for DrainCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrainCause::Recycle(reason) => write!(f, "recycle ({reason})"),
            DrainCause::Shutdown => f.write_str("shutdown"),
        }
    }
}

/// Why a transition happened; every [`Transition`](crate::Transition) and
/// history entry carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransitionReason {
    /// The worker sent a valid handshake.
    HandshakeCompleted,
    /// The worker could not be started.
    HandshakeFailed,
    /// The pool handed the worker a request.
    CheckedOut,
    /// The request finished with a reply.
    RequestCompleted,
    /// The request failed with this severity (below the request-failure
    /// threshold, if suspect).
    RequestFailed(FailureSeverity),
    /// A suspect request failure made the consecutive request failures reach
    /// the threshold.
    RequestFailureThresholdReached {
        /// Consecutive request failures, this one included.
        failures: u32,
        /// The configured threshold.
        threshold: u32,
    },
    /// A health check passed.
    HealthCheckPassed,
    /// A health check failed, below the health-failure threshold.
    HealthCheckFailed {
        /// Consecutive health failures, this one included.
        failures: u32,
        /// The configured threshold.
        threshold: u32,
    },
    /// A health check failed and the consecutive health failures reached the
    /// threshold.
    HealthFailureThresholdReached {
        /// Consecutive health failures, this one included.
        failures: u32,
        /// The configured threshold.
        threshold: u32,
    },
    /// A recycle limit was reached.
    RecycleDue(RecycleReason),
    /// The pool asked the worker to shut down.
    ShutdownRequested,
    /// A draining worker finished its last request.
    Drained(DrainCause),
    /// The process is gone.
    ProcessExited(ExitInfo),
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionReason::HandshakeCompleted => f.write_str("handshake completed"),
            TransitionReason::HandshakeFailed => f.write_str("handshake failed"),
            TransitionReason::CheckedOut => f.write_str("checked out for a request"),
            TransitionReason::RequestCompleted => f.write_str("request completed"),
            TransitionReason::RequestFailed(severity) => {
                write!(f, "request failed ({severity})")
            }
            TransitionReason::RequestFailureThresholdReached {
                failures,
                threshold,
            } => write!(
                f,
                "request-failure threshold reached ({failures} consecutive failures, threshold {threshold})"
            ),
            TransitionReason::HealthCheckPassed => f.write_str("health check passed"),
            TransitionReason::HealthCheckFailed {
                failures,
                threshold,
            } => write!(
                f,
                "health check failed ({failures} consecutive failures, threshold {threshold})"
            ),
            TransitionReason::HealthFailureThresholdReached {
                failures,
                threshold,
            } => write!(
                f,
                "health-failure threshold reached ({failures} consecutive failures, threshold {threshold})"
            ),
            TransitionReason::RecycleDue(reason) => write!(f, "recycle due: {reason}"),
            TransitionReason::ShutdownRequested => f.write_str("shutdown requested"),
            TransitionReason::Drained(cause) => {
                write!(f, "finished its last request before {cause}")
            }
            TransitionReason::ProcessExited(exit) => write!(f, "process {exit}"),
        }
    }
}

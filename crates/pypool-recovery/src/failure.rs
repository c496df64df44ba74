//! What went wrong with one attempt of a request.

use std::fmt;

/// The class of a failed attempt, as far as recovery cares.
///
/// The pool facade maps its concrete errors (spawn errors, call errors,
/// timeouts, the worker's error replies) onto these classes; the policy never
/// sees the errors themselves, so it does not depend on the seam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureClass {
    /// A worker process could not be started (interpreter missing, a handler
    /// module failed to import, the worker died before its handshake, …).
    SpawnFailed,
    /// A worker was started but sent no valid handshake in time.
    HandshakeTimeout,
    /// No worker became free for the request within the checkout timeout.
    CheckoutTimeout,
    /// The request ran past its deadline while a worker was running it.
    DeadlineExceeded,
    /// The worker exited while running the request.
    WorkerExited {
        /// The exit status, if the worker exited normally.
        code: Option<i32>,
        /// The signal that ended the worker, if one did.
        signal: Option<i32>,
    },
    /// The connection to the worker broke for another reason (the host closed
    /// it, or the request could not be written); the connection is dead.
    ConnectionLost,
    /// The worker broke the protocol: a bad frame, a reply for an unknown id.
    ProtocolViolation,
    /// The worker runtime itself reported an internal error; the worker still
    /// serves but can no longer be fully trusted.
    WorkerInternalError,
    /// The user's handler raised (or returned something unserialisable): the
    /// user's own, deterministic error. The worker is fine.
    PythonException,
    /// The input was rejected before or by the handler: arguments that do not
    /// bind, an unknown command, a request too large to send.
    InvalidInput,
    /// The pool's queue is full; the caller should back off.
    Overloaded,
    /// The command's circuit breaker is open; the request was rejected fast.
    BreakerOpen,
}

impl FailureClass {
    /// A short, stable name for the class, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SpawnFailed => "spawn_failed",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::CheckoutTimeout => "checkout_timeout",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::WorkerExited { .. } => "worker_exited",
            Self::ConnectionLost => "connection_lost",
            Self::ProtocolViolation => "protocol_violation",
            Self::WorkerInternalError => "worker_internal_error",
            Self::PythonException => "python_exception",
            Self::InvalidInput => "invalid_input",
            Self::Overloaded => "overloaded",
            Self::BreakerOpen => "breaker_open",
        }
    }

    /// Every class, with a representative exit for [`FailureClass::WorkerExited`];
    /// handy for exhaustive tests and documentation tables.
    pub const ALL: [FailureClass; 12] = [
        Self::SpawnFailed,
        Self::HandshakeTimeout,
        Self::CheckoutTimeout,
        Self::DeadlineExceeded,
        Self::WorkerExited {
            code: None,
            signal: Some(9),
        },
        Self::ConnectionLost,
        Self::ProtocolViolation,
        Self::WorkerInternalError,
        Self::PythonException,
        Self::InvalidInput,
        Self::Overloaded,
        Self::BreakerOpen,
    ];
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SpawnFailed => f.write_str("a worker could not be started"),
            Self::HandshakeTimeout => f.write_str("a worker sent no handshake in time"),
            Self::CheckoutTimeout => f.write_str("no worker became free in time"),
            Self::DeadlineExceeded => f.write_str("the request ran past its deadline"),
            Self::WorkerExited { code, signal } => match (code, signal) {
                (_, Some(signal)) => {
                    write!(f, "the worker was killed by signal {signal} mid-request")
                }
                (Some(code), None) => write!(f, "the worker exited with code {code} mid-request"),
                (None, None) => f.write_str("the worker exited mid-request (status unknown)"),
            },
            Self::ConnectionLost => f.write_str("the connection to the worker was lost"),
            Self::ProtocolViolation => f.write_str("the worker broke the protocol"),
            Self::WorkerInternalError => {
                f.write_str("the worker runtime reported an internal error")
            }
            Self::PythonException => f.write_str("the handler raised an exception"),
            Self::InvalidInput => f.write_str("the request's input was rejected"),
            Self::Overloaded => f.write_str("the pool is overloaded"),
            Self::BreakerOpen => f.write_str("the command's circuit breaker is open"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_exit_display_prefers_the_signal() {
        let killed = FailureClass::WorkerExited {
            code: Some(1),
            signal: Some(9),
        };
        assert_eq!(
            killed.to_string(),
            "the worker was killed by signal 9 mid-request"
        );
        let exited = FailureClass::WorkerExited {
            code: Some(3),
            signal: None,
        };
        assert_eq!(
            exited.to_string(),
            "the worker exited with code 3 mid-request"
        );
        let unknown = FailureClass::WorkerExited {
            code: None,
            signal: None,
        };
        assert_eq!(
            unknown.to_string(),
            "the worker exited mid-request (status unknown)"
        );
    }

    #[test]
    fn kinds_are_distinct() {
        let mut kinds: Vec<&str> = FailureClass::ALL.iter().map(FailureClass::kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), FailureClass::ALL.len());
    }
}

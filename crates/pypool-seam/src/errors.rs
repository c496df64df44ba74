//! Errors crossing the seam.

use std::sync::Arc;
use std::time::Duration;

use crate::{RequestId, WorkerExit, WorkerId};

/// Why a worker could not be started. Cheap to clone, so one failure can be
/// reported to every caller waiting on the pool.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The interpreter could not be executed at all.
    #[error(
        "cannot start interpreter `{interpreter}`: {source}; set the interpreter path to a Python 3.9+ executable"
    )]
    InterpreterNotFound {
        /// The interpreter as configured.
        interpreter: String,
        /// What the operating system said.
        source: Arc<std::io::Error>,
    },
    /// Some other operating-system error while starting the worker.
    #[error("cannot start worker {worker_id}: {context}: {source}")]
    Io {
        /// The worker being started.
        worker_id: WorkerId,
        /// What was being done.
        context: String,
        /// What the operating system said.
        source: Arc<std::io::Error>,
    },
    /// The worker reported that it cannot start (a handler module failed to import, …).
    #[error(
        "worker {worker_id} could not start ({kind}): {message}{}",
        tail_suffix(stderr_tail)
    )]
    StartupFailed {
        /// The worker being started.
        worker_id: WorkerId,
        /// The worker's kind of failure, e.g. `handler_import`.
        kind: String,
        /// The worker's explanation.
        message: String,
        /// The Python traceback, if any.
        traceback: Option<String>,
        /// The last lines the worker wrote on stderr.
        stderr_tail: String,
    },
    /// The worker exited before sending its handshake.
    #[error(
        "worker {worker_id} {exit} before its handshake{}",
        tail_suffix(stderr_tail)
    )]
    ExitedBeforeHandshake {
        /// The worker being started.
        worker_id: WorkerId,
        /// How it ended.
        exit: WorkerExit,
        /// The last lines the worker wrote on stderr.
        stderr_tail: String,
    },
    /// No handshake arrived in time; the worker was killed.
    #[error(
        "worker {worker_id} sent no handshake within {timeout:?}; it was killed{}",
        tail_suffix(stderr_tail)
    )]
    HandshakeTimeout {
        /// The worker being started.
        worker_id: WorkerId,
        /// The configured handshake timeout.
        timeout: Duration,
        /// The last lines the worker wrote on stderr.
        stderr_tail: String,
    },
    /// The worker speaks another protocol version.
    #[error(
        "worker {worker_id} speaks protocol version {worker_version}, this host speaks {host_version}; install matching versions of pypool and pypool_worker"
    )]
    ProtocolMismatch {
        /// The worker being started.
        worker_id: WorkerId,
        /// The worker's version.
        worker_version: u32,
        /// This host's version.
        host_version: u32,
    },
    /// The first frame was not a valid handshake for this worker.
    #[error(
        "worker {worker_id} sent an invalid handshake: {reason}{}",
        tail_suffix(stderr_tail)
    )]
    BadHandshake {
        /// The worker being started.
        worker_id: WorkerId,
        /// What was wrong with it.
        reason: String,
        /// The last lines the worker wrote on stderr.
        stderr_tail: String,
    },
    /// The fork template (the process that imported the handlers once and
    /// forks workers) exited while this worker was being forked from it. The
    /// next spawn starts a new template.
    #[error(
        "worker {worker_id} could not be forked: the template process {exit} (a new one starts with the next spawn){}",
        tail_suffix(stderr_tail)
    )]
    TemplateExited {
        /// The worker being started.
        worker_id: WorkerId,
        /// How the template ended.
        exit: WorkerExit,
        /// The last lines the template wrote on stderr.
        stderr_tail: String,
    },
    /// The environment cannot run workers at all (interpreter too old, the
    /// worker runtime not importable, …), found by a check before the first
    /// worker; every problem says how to fix it.
    #[error("workers cannot start in this environment: {problems}")]
    EnvironmentUnusable {
        /// The problems found, each with its fix, separated by `; `.
        problems: String,
    },
    /// The spawner refused: it is shut down or a breaker is open.
    #[error("spawning refused: {reason}")]
    Refused {
        /// Why.
        reason: String,
    },
}

fn tail_suffix(stderr_tail: &str) -> String {
    if stderr_tail.trim().is_empty() {
        String::new()
    } else {
        format!("; its stderr ended with:\n{}", stderr_tail.trim_end())
    }
}

/// Why a call did not produce an [`Outcome`](crate::Outcome). After any of
/// these except [`CallError::DuplicateRequestId`] and
/// [`CallError::StreamingUnsupported`], the connection is dead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The worker exited before replying.
    #[error("worker {worker_id} {exit} before replying to request {request_id}")]
    WorkerExited {
        /// The worker.
        worker_id: WorkerId,
        /// The request left without a reply.
        request_id: RequestId,
        /// How the worker ended.
        exit: WorkerExit,
    },
    /// The worker broke the protocol (bad frame, reply for an unknown id, …).
    #[error("worker {worker_id} broke the protocol: {detail}")]
    ProtocolViolation {
        /// The worker.
        worker_id: WorkerId,
        /// What it did.
        detail: String,
    },
    /// The connection was closed by the host (the worker was killed or is shutting down).
    #[error("connection to worker {worker_id} is closed: {reason}")]
    Closed {
        /// The worker.
        worker_id: WorkerId,
        /// Why.
        reason: String,
    },
    /// The request could not be sent (for example it encodes to a frame over
    /// the maximum size); it never reached the worker. The connection is dead.
    #[error("request {request_id} was not sent to worker {worker_id}: {reason}")]
    NotSent {
        /// The worker.
        worker_id: WorkerId,
        /// The request that was not sent.
        request_id: RequestId,
        /// Why.
        reason: String,
    },
    /// This connection cannot stream replies ([`WorkerConnection::call_stream`]
    /// has no implementation for it); nothing was sent and the connection is
    /// fine. Use `call` instead.
    ///
    /// [`WorkerConnection::call_stream`]: crate::WorkerConnection::call_stream
    #[error(
        "worker {worker_id} cannot stream replies; request {request_id} was not sent (call it without streaming)"
    )]
    StreamingUnsupported {
        /// The worker.
        worker_id: WorkerId,
        /// The request that was not sent.
        request_id: RequestId,
    },
    /// A request with this id is already in flight on this connection.
    #[error("request id {request_id} is already in flight on worker {worker_id}")]
    DuplicateRequestId {
        /// The worker.
        worker_id: WorkerId,
        /// The id used twice.
        request_id: RequestId,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_error_shows_stderr_tail_only_when_present() {
        let with = SpawnError::ExitedBeforeHandshake {
            worker_id: 3,
            exit: WorkerExit::code(1),
            stderr_tail: "ImportError: boom\n".into(),
        };
        assert_eq!(
            with.to_string(),
            "worker 3 exited with code 1 before its handshake; its stderr ended with:\nImportError: boom"
        );
        let without = SpawnError::ExitedBeforeHandshake {
            worker_id: 3,
            exit: WorkerExit::signal(9),
            stderr_tail: " \n".into(),
        };
        assert_eq!(
            without.to_string(),
            "worker 3 was killed by signal 9 before its handshake"
        );
    }

    #[test]
    fn call_error_names_worker_request_and_exit() {
        let err = CallError::WorkerExited {
            worker_id: 3,
            request_id: 41,
            exit: WorkerExit::signal(9),
        };
        assert_eq!(
            err.to_string(),
            "worker 3 was killed by signal 9 before replying to request 41"
        );
    }
}

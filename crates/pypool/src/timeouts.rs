//! The pool's time limits.

use std::time::Duration;

/// Every time limit the pool applies, in one place (deadpool's habit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From spawning a worker to its handshake (default 30 s: importing
    /// heavy modules such as DSPy takes seconds).
    pub spawn: Duration,
    /// How long a request may wait in the queue for a worker (default 30 s).
    pub checkout: Duration,
    /// How long a worker may take to answer one request (default 60 s).
    /// At the deadline the pool sends the worker a `cancel` for it and
    /// answers the caller with `DeadlineExceeded`; if the request has not
    /// ended `cancel_grace` later, the worker is killed and replaced.
    pub request: Duration,
    /// How long a request past its deadline may take to end after its
    /// `cancel` before its worker is killed (default 2 s; zero: kill at the
    /// deadline). Other requests on a killed worker end with
    /// `WorkerExited` and are retried under the recovery rules.
    pub cancel_grace: Duration,
    /// How long a worker may take to answer a health check (default 5 s).
    pub health_check: Duration,
    /// How long a worker asked to stop (SIGTERM) may take before it is
    /// killed (SIGKILL) (default 5 s).
    pub terminate_grace: Duration,
    /// For a streamed request (`execute_stream`): the longest wait for its
    /// next item (its first chunk included) once the request was sent
    /// (default `None`: no idle limit; the request deadline still covers the
    /// whole stream). When it passes, the stream ends with
    /// [`PoolError::StreamIdle`](crate::PoolError::StreamIdle) and the
    /// request is cancelled as at a deadline.
    pub stream_idle: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            spawn: Duration::from_secs(30),
            checkout: Duration::from_secs(30),
            request: Duration::from_secs(60),
            cancel_grace: Duration::from_secs(2),
            health_check: Duration::from_secs(5),
            terminate_grace: Duration::from_secs(5),
            stream_idle: None,
        }
    }
}

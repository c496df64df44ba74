//! The states a worker goes through, and its health.

use std::fmt;

use serde::Serialize;

/// Where a worker is in its life. The crate docs hold the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Spawned; its handshake has not arrived yet.
    Starting,
    /// Idle, nothing known against it: it may be checked out.
    Ready,
    /// Serving exactly one request.
    Busy,
    /// Idle but suspect (a health check or a request failed, below the
    /// thresholds). It may still be checked out.
    Degraded,
    /// Finishing its current request before it is recycled or shut down; it
    /// takes no new work.
    Draining,
    /// Being stopped; the pool waits for the process to exit.
    Terminating,
    /// The process is gone. No event leaves this state.
    Terminated,
}

impl State {
    /// Every state, in the order of the crate docs.
    pub const ALL: [State; 7] = [
        State::Starting,
        State::Ready,
        State::Busy,
        State::Degraded,
        State::Draining,
        State::Terminating,
        State::Terminated,
    ];

    /// The state's name as the docs and error messages spell it (`Ready`).
    pub const fn name(self) -> &'static str {
        match self {
            State::Starting => "Starting",
            State::Ready => "Ready",
            State::Busy => "Busy",
            State::Degraded => "Degraded",
            State::Draining => "Draining",
            State::Terminating => "Terminating",
            State::Terminated => "Terminated",
        }
    }

    /// Whether the worker is idle: [`State::Ready`] or [`State::Degraded`].
    pub const fn is_idle(self) -> bool {
        matches!(self, State::Ready | State::Degraded)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the pool knows about a worker's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No health check has finished and no request has completed yet.
    Unknown,
    /// Both consecutive-failure counts are below their thresholds.
    Healthy,
    /// A consecutive-failure count reached its threshold; the worker is never
    /// handed out again.
    Unhealthy,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        })
    }
}

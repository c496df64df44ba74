//! What can happen to a worker.

use std::fmt;

use crate::exit::ExitInfo;
use crate::recycle::RecycleReason;

/// How bad a failed request was for the worker that served it. The recovery
/// policy decides; the lifecycle only acts on the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureSeverity {
    /// Says nothing about the worker (e.g. the caller gave up); it goes back
    /// to `Ready`.
    Harmless,
    /// The worker may be in trouble; it goes to `Degraded` and one more
    /// consecutive request failure is counted.
    Suspect,
    /// The worker must not serve again; it is terminated.
    Fatal,
}

impl FailureSeverity {
    /// Every severity.
    pub const ALL: [FailureSeverity; 3] = [
        FailureSeverity::Harmless,
        FailureSeverity::Suspect,
        FailureSeverity::Fatal,
    ];
}

impl fmt::Display for FailureSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureSeverity::Harmless => "harmless",
            FailureSeverity::Suspect => "suspect",
            FailureSeverity::Fatal => "fatal",
        })
    }
}

/// Something that happened to a worker, fed to
/// [`WorkerLifecycle::apply`](crate::WorkerLifecycle::apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// The worker sent a valid handshake.
    HandshakeOk,
    /// The worker could not be started or sent no valid handshake.
    HandshakeFailed,
    /// The pool hands the worker one request.
    Checkout,
    /// The request finished with a reply (a Python exception reply included:
    /// that is the user's error, not the worker's).
    CheckinOk,
    /// The request finished without a reply; the severity says what that
    /// means for the worker.
    RequestFailed {
        /// The recovery policy's verdict.
        severity: FailureSeverity,
    },
    /// A health check passed.
    HealthOk,
    /// A health check failed.
    HealthFailed,
    /// A recycle limit was reached (see
    /// [`WorkerLifecycle::recycle_due`](crate::WorkerLifecycle::recycle_due)).
    RecycleDue(RecycleReason),
    /// The pool is shutting the worker down.
    Shutdown,
    /// The worker process is gone.
    ProcessExited(ExitInfo),
}

impl Event {
    /// The event without its payload, as the transition table names it.
    pub const fn kind(&self) -> EventKind {
        match self {
            Event::HandshakeOk => EventKind::HandshakeOk,
            Event::HandshakeFailed => EventKind::HandshakeFailed,
            Event::Checkout => EventKind::Checkout,
            Event::CheckinOk => EventKind::CheckinOk,
            Event::RequestFailed { .. } => EventKind::RequestFailed,
            Event::HealthOk => EventKind::HealthOk,
            Event::HealthFailed => EventKind::HealthFailed,
            Event::RecycleDue(_) => EventKind::RecycleDue,
            Event::Shutdown => EventKind::Shutdown,
            Event::ProcessExited(_) => EventKind::ProcessExited,
        }
    }
}

/// The kind of an [`Event`], without payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// [`Event::HandshakeOk`].
    HandshakeOk,
    /// [`Event::HandshakeFailed`].
    HandshakeFailed,
    /// [`Event::Checkout`].
    Checkout,
    /// [`Event::CheckinOk`].
    CheckinOk,
    /// [`Event::RequestFailed`].
    RequestFailed,
    /// [`Event::HealthOk`].
    HealthOk,
    /// [`Event::HealthFailed`].
    HealthFailed,
    /// [`Event::RecycleDue`].
    RecycleDue,
    /// [`Event::Shutdown`].
    Shutdown,
    /// [`Event::ProcessExited`].
    ProcessExited,
}

impl EventKind {
    /// Every event kind, in the order of the crate docs.
    pub const ALL: [EventKind; 10] = [
        EventKind::HandshakeOk,
        EventKind::HandshakeFailed,
        EventKind::Checkout,
        EventKind::CheckinOk,
        EventKind::RequestFailed,
        EventKind::HealthOk,
        EventKind::HealthFailed,
        EventKind::RecycleDue,
        EventKind::Shutdown,
        EventKind::ProcessExited,
    ];

    /// The kind's name as the docs and error messages spell it (`checkin_ok`).
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::HandshakeOk => "handshake_ok",
            EventKind::HandshakeFailed => "handshake_failed",
            EventKind::Checkout => "checkout",
            EventKind::CheckinOk => "checkin_ok",
            EventKind::RequestFailed => "request_failed",
            EventKind::HealthOk => "health_ok",
            EventKind::HealthFailed => "health_failed",
            EventKind::RecycleDue => "recycle_due",
            EventKind::Shutdown => "shutdown",
            EventKind::ProcessExited => "process_exited",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

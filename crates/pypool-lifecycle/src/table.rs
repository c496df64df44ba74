//! The transition table as data: the single definition the crate docs and the
//! tests check [`WorkerLifecycle::apply`](crate::WorkerLifecycle::apply) against.

use std::fmt;

use crate::event::EventKind;
use crate::state::State;

/// The condition under which a [`TableRow`] applies. Counts are "after
/// counting this event": a failure that makes the count equal to the
/// threshold has reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Guard {
    /// No condition.
    Always,
    /// Consecutive health failures and consecutive request failures are both
    /// below their thresholds.
    Available,
    /// The worker was shut down while still `Starting`, so its spawn may
    /// still fail.
    HandshakePending,
    /// The request failure is [`Harmless`](crate::FailureSeverity::Harmless)
    /// and no other request is in flight.
    Harmless,
    /// The request failure is [`Suspect`](crate::FailureSeverity::Suspect),
    /// the consecutive request failures stay below the threshold, and no
    /// other request is in flight.
    SuspectBelowThreshold,
    /// The request failure is [`Suspect`](crate::FailureSeverity::Suspect)
    /// and the consecutive request failures reach the threshold.
    SuspectThresholdReached,
    /// The request failure is [`Fatal`](crate::FailureSeverity::Fatal).
    Fatal,
    /// The consecutive health failures stay below the threshold.
    BelowThreshold,
    /// The consecutive health failures reach the threshold.
    ThresholdReached,
    /// Fewer requests are in flight than the worker's capacity.
    HasRoom,
    /// The request ending is the only one in flight.
    Last,
    /// Other requests are in flight besides the one ending.
    OthersInFlight,
    /// Other requests are in flight besides the failed one, and the failure
    /// is harmless or suspect below the threshold: the worker keeps serving them.
    SurvivedWithOthers,
    /// The failed request was the only one in flight, or the failure is
    /// fatal or reaches the suspect threshold.
    LastOrFatal,
}

impl Guard {
    /// Every guard.
    pub const ALL: [Guard; 14] = [
        Guard::Always,
        Guard::Available,
        Guard::HandshakePending,
        Guard::Harmless,
        Guard::SuspectBelowThreshold,
        Guard::SuspectThresholdReached,
        Guard::Fatal,
        Guard::BelowThreshold,
        Guard::ThresholdReached,
        Guard::HasRoom,
        Guard::Last,
        Guard::OthersInFlight,
        Guard::SurvivedWithOthers,
        Guard::LastOrFatal,
    ];

    /// The guard's name as the docs spell it (`below-threshold`).
    pub const fn name(self) -> &'static str {
        match self {
            Guard::Always => "always",
            Guard::Available => "available",
            Guard::HandshakePending => "handshake-pending",
            Guard::Harmless => "harmless",
            Guard::SuspectBelowThreshold => "suspect-below-threshold",
            Guard::SuspectThresholdReached => "suspect-threshold-reached",
            Guard::Fatal => "fatal",
            Guard::BelowThreshold => "below-threshold",
            Guard::ThresholdReached => "threshold-reached",
            Guard::HasRoom => "has-room",
            Guard::Last => "last",
            Guard::OthersInFlight => "others-in-flight",
            Guard::SurvivedWithOthers => "survived-with-others",
            Guard::LastOrFatal => "last-or-fatal",
        }
    }
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One accepted transition: in state `from`, an event of kind `event` whose
/// `guard` holds moves the worker to `to`. Any (state, event) the table does
/// not list is rejected with an [`InvalidTransition`](crate::InvalidTransition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TableRow {
    /// The state before the event.
    pub from: State,
    /// The kind of event.
    pub event: EventKind,
    /// When this row applies.
    pub guard: Guard,
    /// The state after the event.
    pub to: State,
}

const fn row(from: State, event: EventKind, guard: Guard, to: State) -> TableRow {
    TableRow {
        from,
        event,
        guard,
        to,
    }
}

use EventKind as E;
use Guard as G;
use State as S;

/// Every transition [`WorkerLifecycle::apply`](crate::WorkerLifecycle::apply)
/// accepts; the same table is in the crate docs, and tests keep the three
/// (this constant, the docs, the code) equal.
pub const TRANSITIONS: &[TableRow] = &[
    row(S::Starting, E::HandshakeOk, G::Always, S::Ready),
    row(S::Starting, E::HandshakeFailed, G::Always, S::Terminated),
    row(S::Starting, E::Shutdown, G::Always, S::Terminating),
    row(S::Starting, E::ProcessExited, G::Always, S::Terminated),
    row(S::Ready, E::Checkout, G::Available, S::Busy),
    row(S::Ready, E::HealthOk, G::Always, S::Ready),
    row(S::Ready, E::HealthFailed, G::BelowThreshold, S::Degraded),
    row(
        S::Ready,
        E::HealthFailed,
        G::ThresholdReached,
        S::Terminating,
    ),
    row(S::Ready, E::RecycleDue, G::Always, S::Terminating),
    row(S::Ready, E::Shutdown, G::Always, S::Terminating),
    row(S::Ready, E::ProcessExited, G::Always, S::Terminated),
    row(S::Busy, E::Checkout, G::HasRoom, S::Busy),
    row(S::Busy, E::CheckinOk, G::Last, S::Ready),
    row(S::Busy, E::CheckinOk, G::OthersInFlight, S::Busy),
    row(S::Busy, E::RequestFailed, G::Harmless, S::Ready),
    row(
        S::Busy,
        E::RequestFailed,
        G::SuspectBelowThreshold,
        S::Degraded,
    ),
    row(
        S::Busy,
        E::RequestFailed,
        G::SuspectThresholdReached,
        S::Terminating,
    ),
    row(S::Busy, E::RequestFailed, G::Fatal, S::Terminating),
    row(S::Busy, E::RequestFailed, G::SurvivedWithOthers, S::Busy),
    row(S::Busy, E::RecycleDue, G::Always, S::Draining),
    row(S::Busy, E::Shutdown, G::Always, S::Draining),
    row(S::Busy, E::ProcessExited, G::Always, S::Terminated),
    row(S::Degraded, E::Checkout, G::Available, S::Busy),
    row(S::Degraded, E::HealthOk, G::Always, S::Ready),
    row(S::Degraded, E::HealthFailed, G::BelowThreshold, S::Degraded),
    row(
        S::Degraded,
        E::HealthFailed,
        G::ThresholdReached,
        S::Terminating,
    ),
    row(S::Degraded, E::RecycleDue, G::Always, S::Terminating),
    row(S::Degraded, E::Shutdown, G::Always, S::Terminating),
    row(S::Degraded, E::ProcessExited, G::Always, S::Terminated),
    row(S::Draining, E::CheckinOk, G::Last, S::Terminating),
    row(S::Draining, E::CheckinOk, G::OthersInFlight, S::Draining),
    row(
        S::Draining,
        E::RequestFailed,
        G::LastOrFatal,
        S::Terminating,
    ),
    row(
        S::Draining,
        E::RequestFailed,
        G::SurvivedWithOthers,
        S::Draining,
    ),
    row(S::Draining, E::ProcessExited, G::Always, S::Terminated),
    row(
        S::Terminating,
        E::HandshakeFailed,
        G::HandshakePending,
        S::Terminated,
    ),
    row(S::Terminating, E::ProcessExited, G::Always, S::Terminated),
];

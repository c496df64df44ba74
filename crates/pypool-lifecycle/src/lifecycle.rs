//! The state machine of one worker.

use std::time::{Duration, Instant};

use pypool_clock::SharedClock;
use serde::Serialize;

use crate::config::LifecycleConfig;
use crate::event::{Event, EventKind, FailureSeverity};
use crate::exit::ExitInfo;
use crate::history::{History, HistoryEntry};
use crate::reason::{DrainCause, TransitionReason};
use crate::recycle::{RecycleLimits, RecycleReason};
use crate::state::{Health, State};

/// The numbers the pool reads off a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Counters {
    /// Requests that finished with a reply (`checkin_ok`), while busy or draining.
    pub requests_served: u64,
    /// Failed health checks since the last passing one.
    pub consecutive_health_failures: u32,
    /// Suspect request failures since the last completed request.
    pub consecutive_request_failures: u32,
    /// Time since the lifecycle was created, by its clock.
    pub age: Duration,
}

/// An accepted event's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transition {
    /// The state before the event.
    pub from: State,
    /// The state after the event (may equal `from`).
    pub to: State,
    /// Why.
    pub reason: TransitionReason,
}

/// An event the current state does not accept. The lifecycle is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("event `{event}` is not allowed in state `{state}`")]
pub struct InvalidTransition {
    /// The state the worker is in (and stays in).
    pub state: State,
    /// The rejected event's kind.
    pub event: EventKind,
}

/// The state plus what some states need to remember.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Phase {
    Starting,
    Ready,
    Busy,
    Degraded,
    Draining(DrainCause),
    /// `handshake_pending`: shut down while still starting, so the spawn may
    /// still report its failure.
    Terminating {
        handshake_pending: bool,
    },
    /// The exit, if the process was seen exiting (not for a failed spawn).
    Terminated(Option<ExitInfo>),
}

impl Phase {
    const TERMINATING: Phase = Phase::Terminating {
        handshake_pending: false,
    };

    pub(crate) const fn state(self) -> State {
        match self {
            Phase::Starting => State::Starting,
            Phase::Ready => State::Ready,
            Phase::Busy => State::Busy,
            Phase::Degraded => State::Degraded,
            Phase::Draining(_) => State::Draining,
            Phase::Terminating { .. } => State::Terminating,
            Phase::Terminated(_) => State::Terminated,
        }
    }
}

/// The lifecycle of one worker: its state, counters and recent history.
///
/// Created in [`State::Starting`]; every change goes through
/// [`apply`](Self::apply). See the crate docs for the transition table.
#[derive(Debug, Clone)]
pub struct WorkerLifecycle {
    config: LifecycleConfig,
    clock: SharedClock,
    created_at: Instant,
    phase: Phase,
    requests_served: u64,
    health_failures: u32,
    request_failures: u32,
    /// Whether a health check finished or a request completed.
    health_known: bool,
    /// Requests the worker holds at once (its handshake's; at least 1).
    capacity: u32,
    /// Requests checked out and not yet ended (at most `capacity`).
    in_flight: u32,
    history: History,
}

/// How much of its capacity a worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Occupancy {
    /// Nothing in flight.
    Idle,
    /// Some requests in flight, room for more.
    Partial,
    /// As many requests in flight as its capacity.
    Full,
}

impl WorkerLifecycle {
    /// A worker that was just spawned and has not sent its handshake yet.
    /// Its age counts from now, by `clock`.
    pub fn new(config: LifecycleConfig, clock: SharedClock) -> Self {
        let config = config.normalized();
        Self {
            created_at: clock.now(),
            clock,
            phase: Phase::Starting,
            requests_served: 0,
            health_failures: 0,
            request_failures: 0,
            health_known: false,
            capacity: 1,
            in_flight: 0,
            history: History::new(config.history_len),
            config,
        }
    }

    /// Feeds one event to the state machine.
    ///
    /// On success the state, counters and history are updated and the
    /// transition is returned; an event the table does not allow is returned
    /// as an [`InvalidTransition`] and changes nothing.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use pypool_clock::ManualClock;
    /// use pypool_lifecycle::{Event, LifecycleConfig, State, WorkerLifecycle};
    ///
    /// let mut worker = WorkerLifecycle::new(LifecycleConfig::default(), Arc::new(ManualClock::new()));
    /// let err = worker.apply(Event::Checkout).unwrap_err();
    /// assert_eq!(err.to_string(), "event `checkout` is not allowed in state `Starting`");
    /// assert_eq!(worker.apply(Event::HandshakeOk).unwrap().to, State::Ready);
    /// ```
    pub fn apply(&mut self, event: Event) -> Result<Transition, InvalidTransition> {
        let from = self.state();
        let Some((phase, reason)) = self.next(event) else {
            return Err(InvalidTransition {
                state: from,
                event: event.kind(),
            });
        };
        self.phase = phase;
        let to = phase.state();
        if matches!(to, State::Terminating | State::Terminated) {
            // What it held ends with it.
            self.in_flight = 0;
        }
        self.history.record(HistoryEntry {
            from,
            to,
            reason,
            at: self.clock.now(),
        });
        Ok(Transition { from, to, reason })
    }

    /// The next phase and the reason, updating counters, or `None` (and no
    /// change at all) if `event` is not allowed now.
    fn next(&mut self, event: Event) -> Option<(Phase, TransitionReason)> {
        use TransitionReason as R;
        let others = self.in_flight > 1;
        match (self.phase, event) {
            (Phase::Terminated(_), _) => None,
            (_, Event::ProcessExited(exit)) => {
                Some((Phase::Terminated(Some(exit)), R::ProcessExited(exit)))
            }
            (Phase::Starting, Event::HandshakeOk) => Some((Phase::Ready, R::HandshakeCompleted)),
            (
                Phase::Starting
                | Phase::Terminating {
                    handshake_pending: true,
                },
                Event::HandshakeFailed,
            ) => Some((Phase::Terminated(None), R::HandshakeFailed)),
            (Phase::Ready | Phase::Degraded, Event::Checkout) if self.within_thresholds() => {
                self.in_flight = 1;
                Some((Phase::Busy, R::CheckedOut))
            }
            (Phase::Busy, Event::Checkout) if self.in_flight < self.capacity => {
                self.in_flight += 1;
                Some((Phase::Busy, R::CheckedOut))
            }
            (Phase::Busy, Event::CheckinOk) => {
                self.count_completed_request();
                self.in_flight = self.in_flight.saturating_sub(1);
                if others {
                    Some((Phase::Busy, R::RequestCompleted))
                } else {
                    Some((Phase::Ready, R::RequestCompleted))
                }
            }
            (Phase::Draining(cause), Event::CheckinOk) => {
                self.count_completed_request();
                self.in_flight = self.in_flight.saturating_sub(1);
                if others {
                    Some((Phase::Draining(cause), R::RequestCompleted))
                } else {
                    Some((Phase::TERMINATING, R::Drained(cause)))
                }
            }
            (Phase::Busy, Event::RequestFailed { severity }) => {
                let next = self.request_failed(severity, others);
                self.in_flight = self.in_flight.saturating_sub(1);
                Some(next)
            }
            (Phase::Draining(cause), Event::RequestFailed { severity }) => {
                self.count_request_failure(severity);
                self.in_flight = self.in_flight.saturating_sub(1);
                if others && self.survivable(severity) {
                    return Some((Phase::Draining(cause), R::RequestFailed(severity)));
                }
                let reason = match severity {
                    FailureSeverity::Fatal => R::RequestFailed(severity),
                    FailureSeverity::Harmless | FailureSeverity::Suspect => R::Drained(cause),
                };
                Some((Phase::TERMINATING, reason))
            }
            (Phase::Ready | Phase::Degraded, Event::HealthOk) => {
                self.health_failures = 0;
                self.health_known = true;
                Some((Phase::Ready, R::HealthCheckPassed))
            }
            (Phase::Ready | Phase::Degraded, Event::HealthFailed) => Some(self.health_failed()),
            (Phase::Ready | Phase::Degraded, Event::RecycleDue(reason)) => {
                Some((Phase::TERMINATING, R::RecycleDue(reason)))
            }
            (Phase::Busy, Event::RecycleDue(reason)) => Some((
                Phase::Draining(DrainCause::Recycle(reason)),
                R::RecycleDue(reason),
            )),
            (Phase::Starting, Event::Shutdown) => Some((
                Phase::Terminating {
                    handshake_pending: true,
                },
                R::ShutdownRequested,
            )),
            (Phase::Ready | Phase::Degraded, Event::Shutdown) => {
                Some((Phase::TERMINATING, R::ShutdownRequested))
            }
            (Phase::Busy, Event::Shutdown) => {
                Some((Phase::Draining(DrainCause::Shutdown), R::ShutdownRequested))
            }
            _ => None,
        }
    }

    /// Whether a failure (already counted) leaves the worker serving its
    /// other requests: harmless, or suspect below the threshold.
    fn survivable(&self, severity: FailureSeverity) -> bool {
        match severity {
            FailureSeverity::Harmless => true,
            FailureSeverity::Suspect => {
                self.request_failures < self.config.request_failure_threshold
            }
            FailureSeverity::Fatal => false,
        }
    }

    fn count_completed_request(&mut self) {
        self.requests_served = self.requests_served.saturating_add(1);
        self.request_failures = 0;
        self.health_known = true;
    }

    fn count_request_failure(&mut self, severity: FailureSeverity) {
        if severity == FailureSeverity::Suspect {
            self.request_failures = self.request_failures.saturating_add(1);
        }
    }

    fn request_failed(
        &mut self,
        severity: FailureSeverity,
        others: bool,
    ) -> (Phase, TransitionReason) {
        self.count_request_failure(severity);
        let threshold = self.config.request_failure_threshold;
        if others && self.survivable(severity) {
            // Its other requests keep it busy.
            return (Phase::Busy, TransitionReason::RequestFailed(severity));
        }
        match severity {
            FailureSeverity::Harmless => (Phase::Ready, TransitionReason::RequestFailed(severity)),
            FailureSeverity::Fatal => (
                Phase::TERMINATING,
                TransitionReason::RequestFailed(severity),
            ),
            FailureSeverity::Suspect if self.request_failures >= threshold => (
                Phase::TERMINATING,
                TransitionReason::RequestFailureThresholdReached {
                    failures: self.request_failures,
                    threshold,
                },
            ),
            FailureSeverity::Suspect => {
                (Phase::Degraded, TransitionReason::RequestFailed(severity))
            }
        }
    }

    fn health_failed(&mut self) -> (Phase, TransitionReason) {
        self.health_failures = self.health_failures.saturating_add(1);
        self.health_known = true;
        let failures = self.health_failures;
        let threshold = self.config.health_failure_threshold;
        if failures >= threshold {
            (
                Phase::TERMINATING,
                TransitionReason::HealthFailureThresholdReached {
                    failures,
                    threshold,
                },
            )
        } else {
            (
                Phase::Degraded,
                TransitionReason::HealthCheckFailed {
                    failures,
                    threshold,
                },
            )
        }
    }

    fn within_thresholds(&self) -> bool {
        self.health_failures < self.config.health_failure_threshold
            && self.request_failures < self.config.request_failure_threshold
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.phase.state()
    }

    /// What is known about the worker's health: [`Health::Unhealthy`] once a
    /// consecutive-failure count reached its threshold, [`Health::Unknown`]
    /// before the first finished health check or completed request,
    /// [`Health::Healthy`] otherwise.
    pub fn health(&self) -> Health {
        if !self.within_thresholds() {
            Health::Unhealthy
        } else if self.health_known {
            Health::Healthy
        } else {
            Health::Unknown
        }
    }

    /// The counters, with the age measured now.
    pub fn counters(&self) -> Counters {
        Counters {
            requests_served: self.requests_served,
            consecutive_health_failures: self.health_failures,
            consecutive_request_failures: self.request_failures,
            age: self.age(),
        }
    }

    /// Time since the lifecycle was created, by its clock.
    pub fn age(&self) -> Duration {
        self.clock.now().saturating_duration_since(self.created_at)
    }

    /// When the lifecycle was created, by its clock.
    pub fn created_at(&self) -> Instant {
        self.created_at
    }

    /// The configuration in force (zero thresholds raised to 1).
    pub fn config(&self) -> &LifecycleConfig {
        &self.config
    }

    /// The most recent transitions, oldest first, at most
    /// [`LifecycleConfig::history_len`] of them.
    pub fn history(&self) -> std::collections::vec_deque::Iter<'_, HistoryEntry> {
        self.history.iter()
    }

    /// The newest history entry, if the history keeps any.
    pub fn last_transition(&self) -> Option<&HistoryEntry> {
        self.history.last()
    }

    /// Whether the worker is idle and below both failure thresholds (a
    /// [`Event::Checkout`] would be accepted; a busy worker may accept one
    /// too while it has room, see [`has_room`](Self::has_room)).
    pub fn is_available(&self) -> bool {
        self.state().is_idle() && self.within_thresholds()
    }

    /// Sets how many requests the worker holds at once (its handshake's
    /// capacity; 0 is treated as 1). Meant for right after the handshake.
    pub fn set_capacity(&mut self, capacity: u32) {
        self.capacity = capacity.max(1);
    }

    /// How many requests the worker holds at once (1 unless set).
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Requests checked out and not yet ended.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// How much of its capacity the worker uses.
    pub fn occupancy(&self) -> Occupancy {
        if self.in_flight == 0 {
            Occupancy::Idle
        } else if self.in_flight >= self.capacity {
            Occupancy::Full
        } else {
            Occupancy::Partial
        }
    }

    /// Whether a [`Event::Checkout`] would be accepted now: the worker is
    /// available ([`is_available`](Self::is_available)), or busy with fewer
    /// requests in flight than its capacity.
    pub fn has_room(&self) -> bool {
        self.is_available() || (self.state() == State::Busy && self.in_flight < self.capacity)
    }

    /// Whether the worker is not [`State::Terminated`].
    pub fn is_live(&self) -> bool {
        self.state() != State::Terminated
    }

    /// Why the worker is draining, while it is [`State::Draining`].
    pub fn drain_cause(&self) -> Option<DrainCause> {
        match self.phase {
            Phase::Draining(cause) => Some(cause),
            _ => None,
        }
    }

    /// How the process ended, once [`Event::ProcessExited`] was applied.
    pub fn exit(&self) -> Option<ExitInfo> {
        match self.phase {
            Phase::Terminated(exit) => exit,
            _ => None,
        }
    }

    /// The first recycle limit the worker has reached (checked in the order
    /// requests, age, memory), if the current state accepts
    /// [`Event::RecycleDue`] (`Ready`, `Degraded`, `Busy`); `None` otherwise.
    /// `rss_bytes` is the worker's resident memory, if known.
    ///
    /// A `Some` is meant to be applied as `Event::RecycleDue(reason)` right away.
    pub fn recycle_due(
        &self,
        limits: &RecycleLimits,
        rss_bytes: Option<u64>,
    ) -> Option<RecycleReason> {
        if !matches!(self.state(), State::Ready | State::Degraded | State::Busy) {
            return None;
        }
        limits.first_reached(self.requests_served, self.age(), rss_bytes)
    }

    /// A lifecycle in any internal configuration, for tests that probe
    /// combinations not reachable by events alone.
    #[cfg(test)]
    pub(crate) fn with_internals(
        config: LifecycleConfig,
        clock: SharedClock,
        phase: Phase,
        health_failures: u32,
        request_failures: u32,
        health_known: bool,
        (in_flight, capacity): (u32, u32),
    ) -> Self {
        let mut lifecycle = Self::new(config, clock);
        lifecycle.in_flight = in_flight;
        lifecycle.capacity = capacity.max(1);
        lifecycle.phase = phase;
        lifecycle.health_failures = health_failures;
        lifecycle.request_failures = request_failures;
        lifecycle.health_known = health_known;
        lifecycle
    }

    /// The internal configuration apart from time, served count and history,
    /// for tests that explore the reachable state space.
    #[cfg(test)]
    pub(crate) fn internals(&self) -> (Phase, u32, u32, bool, u32, u32) {
        (
            self.phase,
            self.health_failures,
            self.request_failures,
            self.health_known,
            self.in_flight,
            self.capacity,
        )
    }
}

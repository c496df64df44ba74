//! The life of one pypool worker, as a pure state machine.
//!
//! The pool facade keeps one [`WorkerLifecycle`] per worker and feeds it an
//! [`Event`] for everything that happens to the worker (handshake, checkout,
//! the end of a request, a health check, a recycle limit, shutdown, process
//! exit). [`WorkerLifecycle::apply`] answers with the [`Transition`] to act on,
//! or an [`InvalidTransition`] value for an event the current state does not
//! allow: it never panics. Every transition carries a [`TransitionReason`] and
//! is recorded in a bounded history.
//!
//! This crate must not know how workers run or talk: no processes, no tokio,
//! no I/O, no global state, no wire protocol. Time comes only from the
//! injected [`pypool_clock::SharedClock`]. It does not decide how bad a failed
//! request is either: the recovery policy does, and passes its verdict in as a
//! [`FailureSeverity`].
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use pypool_clock::ManualClock;
//! use pypool_lifecycle::{
//!     Event, FailureSeverity, Health, LifecycleConfig, RecycleLimits, State, WorkerLifecycle,
//! };
//!
//! let clock = ManualClock::new();
//! let mut worker = WorkerLifecycle::new(LifecycleConfig::default(), Arc::new(clock.clone()));
//! assert_eq!(worker.state(), State::Starting);
//! assert_eq!(worker.health(), Health::Unknown);
//!
//! worker.apply(Event::HandshakeOk)?;
//! assert!(worker.is_available());
//! worker.apply(Event::Checkout)?;
//! assert!(!worker.is_available());
//! let done = worker.apply(Event::CheckinOk)?;
//! assert_eq!((done.from, done.to), (State::Busy, State::Ready));
//! assert_eq!(done.reason.to_string(), "request completed");
//! assert_eq!(worker.counters().requests_served, 1);
//! assert_eq!(worker.health(), Health::Healthy);
//!
//! // A suspect failure degrades the worker; it may still be checked out.
//! worker.apply(Event::Checkout)?;
//! worker.apply(Event::RequestFailed { severity: FailureSeverity::Suspect })?;
//! assert_eq!(worker.state(), State::Degraded);
//! assert!(worker.is_available());
//!
//! // Recycling: the pool asks which limit, if any, is reached, and applies it.
//! clock.advance(Duration::from_secs(3600));
//! let limits = RecycleLimits { max_age: Some(Duration::from_secs(3600)), ..RecycleLimits::default() };
//! let reason = worker.recycle_due(&limits, None).expect("the age limit is reached");
//! let recycle = worker.apply(Event::RecycleDue(reason))?;
//! assert_eq!(recycle.to, State::Terminating);
//! assert_eq!(recycle.reason.to_string(), "recycle due: age 3600s reached the limit of 3600s");
//! assert_eq!(worker.history().count(), 6);
//! # Ok::<(), pypool_lifecycle::InvalidTransition>(())
//! ```
//!
//! # States
//!
//! | State | Meaning |
//! |---|---|
//! | `Starting` | spawned, handshake pending |
//! | `Ready` | idle; may be checked out |
//! | `Busy` | serving requests: one, or up to its capacity (partially busy, then full) |
//! | `Degraded` | idle but suspect (a health check or request failed, below the thresholds); may be checked out |
//! | `Draining` | finishing its current requests before recycling or shutdown; takes no new work |
//! | `Terminating` | being stopped; waiting for the process to exit |
//! | `Terminated` | gone; absorbing |
//!
//! # Transition table
//!
//! Every transition [`WorkerLifecycle::apply`] accepts, and nothing else: any
//! (state, event) pair not listed, or listed with a condition that does not
//! hold, is an [`InvalidTransition`]. The same table is the constant
//! [`TRANSITIONS`]; tests check that the code, the constant and this table
//! agree both ways.
//!
//! <!-- transition-table:start -->
//! | From | Event | Condition | To |
//! |---|---|---|---|
//! | `Starting` | `handshake_ok` | `always` | `Ready` |
//! | `Starting` | `handshake_failed` | `always` | `Terminated` |
//! | `Starting` | `shutdown` | `always` | `Terminating` |
//! | `Starting` | `process_exited` | `always` | `Terminated` |
//! | `Ready` | `checkout` | `available` | `Busy` |
//! | `Ready` | `health_ok` | `always` | `Ready` |
//! | `Ready` | `health_failed` | `below-threshold` | `Degraded` |
//! | `Ready` | `health_failed` | `threshold-reached` | `Terminating` |
//! | `Ready` | `recycle_due` | `always` | `Terminating` |
//! | `Ready` | `shutdown` | `always` | `Terminating` |
//! | `Ready` | `process_exited` | `always` | `Terminated` |
//! | `Busy` | `checkout` | `has-room` | `Busy` |
//! | `Busy` | `checkin_ok` | `last` | `Ready` |
//! | `Busy` | `checkin_ok` | `others-in-flight` | `Busy` |
//! | `Busy` | `request_failed` | `harmless` | `Ready` |
//! | `Busy` | `request_failed` | `suspect-below-threshold` | `Degraded` |
//! | `Busy` | `request_failed` | `suspect-threshold-reached` | `Terminating` |
//! | `Busy` | `request_failed` | `fatal` | `Terminating` |
//! | `Busy` | `request_failed` | `survived-with-others` | `Busy` |
//! | `Busy` | `recycle_due` | `always` | `Draining` |
//! | `Busy` | `shutdown` | `always` | `Draining` |
//! | `Busy` | `process_exited` | `always` | `Terminated` |
//! | `Degraded` | `checkout` | `available` | `Busy` |
//! | `Degraded` | `health_ok` | `always` | `Ready` |
//! | `Degraded` | `health_failed` | `below-threshold` | `Degraded` |
//! | `Degraded` | `health_failed` | `threshold-reached` | `Terminating` |
//! | `Degraded` | `recycle_due` | `always` | `Terminating` |
//! | `Degraded` | `shutdown` | `always` | `Terminating` |
//! | `Degraded` | `process_exited` | `always` | `Terminated` |
//! | `Draining` | `checkin_ok` | `last` | `Terminating` |
//! | `Draining` | `checkin_ok` | `others-in-flight` | `Draining` |
//! | `Draining` | `request_failed` | `last-or-fatal` | `Terminating` |
//! | `Draining` | `request_failed` | `survived-with-others` | `Draining` |
//! | `Draining` | `process_exited` | `always` | `Terminated` |
//! | `Terminating` | `handshake_failed` | `handshake-pending` | `Terminated` |
//! | `Terminating` | `process_exited` | `always` | `Terminated` |
//! <!-- transition-table:end -->
//!
//! `Terminated` has no row: it is absorbing, and every event there, including
//! a second `process_exited`, is an [`InvalidTransition`].
//!
//! Conditions ([`Guard`]); failure counts include the event being applied:
//!
//! * `available`: consecutive health failures are below
//!   [`LifecycleConfig::health_failure_threshold`] and consecutive request
//!   failures below [`LifecycleConfig::request_failure_threshold`]. Otherwise
//!   checkout is rejected and [`WorkerLifecycle::is_available`] is false.
//! * `below-threshold` / `threshold-reached`: the consecutive health failures
//!   stay below / reach the health-failure threshold.
//! * `harmless`, `fatal`: the request failure's severity (`harmless`: and no
//!   other request is in flight).
//! * `suspect-below-threshold` / `suspect-threshold-reached`: a suspect
//!   failure, and the consecutive request failures stay below / reach the
//!   request-failure threshold (`suspect-below-threshold`: and no other
//!   request is in flight).
//! * `has-room`: fewer requests in flight than the worker's capacity.
//! * `last` / `others-in-flight`: the ending request is the only one in
//!   flight / others are in flight besides it.
//! * `survived-with-others`: others are in flight besides the failed request,
//!   and the failure is harmless or suspect below the threshold (the worker
//!   keeps serving them); `last-or-fatal`: anything else.
//!
//! # Capacity
//!
//! A worker holds up to its capacity of requests at once
//! ([`WorkerLifecycle::set_capacity`], its handshake's; 1 by default). The
//! lifecycle counts them ([`WorkerLifecycle::in_flight`]): a checkout adds
//! one, the end of a request (`checkin_ok`, `request_failed`) takes one
//! away, and entering `Terminating` or `Terminated` ends them all.
//! [`WorkerLifecycle::occupancy`] says idle, partially busy or full;
//! [`WorkerLifecycle::has_room`] whether a checkout would be accepted.
//! * `handshake-pending`: the worker was shut down while `Starting`.
//!
//! # Counters
//!
//! | Event (when accepted) | Effect |
//! |---|---|
//! | `checkin_ok` | requests served + 1; consecutive request failures reset to 0 |
//! | `request_failed` (suspect) | consecutive request failures + 1 |
//! | `health_ok` | consecutive health failures reset to 0 |
//! | `health_failed` | consecutive health failures + 1 |
//!
//! Nothing else changes a counter: a harmless or fatal failure counts nothing,
//! a completed request does not reset the health failures, a passing health
//! check does not reset the request failures. The age is measured from
//! [`WorkerLifecycle::new`] by the injected clock. [`Health`] is `Unknown`
//! until the first finished health check or completed request.
//!
//! # Notes for the pool
//!
//! * `checkin_ok` from `Busy` goes to `Ready` even if the worker was
//!   `Degraded` before its checkout: a completed request is good news.
//! * When a draining worker's last request ends (`checkin_ok` or
//!   `request_failed`) the worker goes to `Terminating`; the reason says why
//!   it drained ([`TransitionReason::Drained`]) unless the failure was fatal.
//! * A worker shut down while `Starting` is `Terminating` when its spawn
//!   returns. If the spawn failed, apply `handshake_failed` (→ `Terminated`).
//!   If it succeeded, `handshake_ok` is rejected: stop the new process and
//!   apply `process_exited` once it is gone.
//! * `recycle_due`, `shutdown` and health events are not accepted in
//!   `Draining` or `Terminating`: the worker is on its way out already.

mod config;
mod event;
mod exit;
mod history;
mod lifecycle;
mod reason;
mod recycle;
mod state;
mod table;

#[cfg(test)]
mod tests;

pub use config::LifecycleConfig;
pub use event::{Event, EventKind, FailureSeverity};
pub use exit::ExitInfo;
pub use history::HistoryEntry;
pub use lifecycle::{Counters, InvalidTransition, Occupancy, Transition, WorkerLifecycle};
pub use reason::{DrainCause, TransitionReason};
pub use recycle::{RecycleLimits, RecycleReason};
pub use state::{Health, State};
pub use table::{Guard, TRANSITIONS, TableRow};

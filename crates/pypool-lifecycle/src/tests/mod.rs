//! Tests of the lifecycle: one module per concern, sharing the helpers here.

#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

mod model;
mod recycle;
mod table_coverage;
mod table_docs;
mod transitions;

use std::sync::Arc;
use std::time::Duration;

use pypool_clock::ManualClock;

use crate::lifecycle::Phase;
use crate::{
    DrainCause, Event, ExitInfo, FailureSeverity, Guard, LifecycleConfig, RecycleReason,
    WorkerLifecycle,
};

/// A lifecycle on a manual clock, and the clock.
fn worker(config: LifecycleConfig) -> (WorkerLifecycle, ManualClock) {
    let clock = ManualClock::new();
    (WorkerLifecycle::new(config, Arc::new(clock.clone())), clock)
}

/// A recycle reason for tests that do not care which.
const SOME_RECYCLE: RecycleReason = RecycleReason::MaxRequests {
    served: 10,
    limit: 10,
};

/// One event of every variant, every severity included.
fn every_event(recycle: RecycleReason, exit: ExitInfo) -> Vec<Event> {
    let mut events = vec![
        Event::HandshakeOk,
        Event::HandshakeFailed,
        Event::Checkout,
        Event::CheckinOk,
        Event::HealthOk,
        Event::HealthFailed,
        Event::RecycleDue(recycle),
        Event::Shutdown,
        Event::ProcessExited(exit),
    ];
    events.extend(
        FailureSeverity::ALL
            .iter()
            .map(|&severity| Event::RequestFailed { severity }),
    );
    events
}

/// One phase of every variant (both flavours where the payload matters).
fn every_phase(recycle: RecycleReason, exit: ExitInfo) -> Vec<Phase> {
    vec![
        Phase::Starting,
        Phase::Ready,
        Phase::Busy,
        Phase::Degraded,
        Phase::Draining(DrainCause::Shutdown),
        Phase::Draining(DrainCause::Recycle(recycle)),
        Phase::Terminating {
            handshake_pending: true,
        },
        Phase::Terminating {
            handshake_pending: false,
        },
        Phase::Terminated(None),
        Phase::Terminated(Some(exit)),
    ]
}

/// Requests in flight and capacity, before an event.
#[derive(Debug, Clone, Copy)]
struct Load {
    in_flight: u32,
    capacity: u32,
}

/// The tests' own reading of the guard definitions in the crate docs: whether
/// `guard` holds for `event` in `phase` with the given consecutive failure
/// counts and load (before the event).
fn guard_holds(
    guard: Guard,
    event: &Event,
    phase: Phase,
    health_failures: u32,
    request_failures: u32,
    load: Load,
    config: &LifecycleConfig,
) -> bool {
    let others = load.in_flight > 1;
    let health_threshold = config.health_failure_threshold.max(1);
    let request_threshold = config.request_failure_threshold.max(1);
    let severity = match event {
        Event::RequestFailed { severity } => Some(*severity),
        _ => None,
    };
    let suspect = severity == Some(FailureSeverity::Suspect);
    match guard {
        Guard::Always => true,
        Guard::Available => {
            health_failures < health_threshold && request_failures < request_threshold
        }
        Guard::HandshakePending => {
            phase
                == Phase::Terminating {
                    handshake_pending: true,
                }
        }
        Guard::Harmless => severity == Some(FailureSeverity::Harmless) && !others,
        Guard::Fatal => severity == Some(FailureSeverity::Fatal),
        Guard::SuspectBelowThreshold => {
            suspect && u64::from(request_failures) + 1 < u64::from(request_threshold) && !others
        }
        Guard::SuspectThresholdReached => {
            suspect && u64::from(request_failures) + 1 >= u64::from(request_threshold)
        }
        Guard::BelowThreshold => u64::from(health_failures) + 1 < u64::from(health_threshold),
        Guard::ThresholdReached => u64::from(health_failures) + 1 >= u64::from(health_threshold),
        Guard::HasRoom => load.in_flight < load.capacity,
        Guard::Last => !others,
        Guard::OthersInFlight => others,
        Guard::SurvivedWithOthers => {
            others && survivable(severity, request_failures, request_threshold)
        }
        Guard::LastOrFatal => !others || !survivable(severity, request_failures, request_threshold),
    }
}

/// Whether a failure (counts before it) leaves a worker serving its others.
fn survivable(severity: Option<FailureSeverity>, request_failures: u32, threshold: u32) -> bool {
    match severity {
        Some(FailureSeverity::Harmless) => true,
        Some(FailureSeverity::Suspect) => u64::from(request_failures) + 1 < u64::from(threshold),
        _ => false,
    }
}

/// Moves `clock` forward, for tests that check times.
fn tick(clock: &ManualClock, millis: u64) {
    clock.advance(Duration::from_millis(millis));
}

//! Unit tests, one group per family of transitions.

use std::time::Duration;

use pypool_clock::Clock;

use super::{SOME_RECYCLE, every_event, tick, worker};
use crate::{
    DrainCause, Event, EventKind, ExitInfo, FailureSeverity, Health, InvalidTransition,
    LifecycleConfig, RecycleReason, State, TransitionReason, WorkerLifecycle,
};

const SUSPECT: Event = Event::RequestFailed {
    severity: FailureSeverity::Suspect,
};

fn ready() -> WorkerLifecycle {
    let (mut w, _clock) = worker(LifecycleConfig::default());
    w.apply(Event::HandshakeOk).unwrap();
    w
}

fn busy() -> WorkerLifecycle {
    let mut w = ready();
    w.apply(Event::Checkout).unwrap();
    w
}

#[test]
fn a_new_worker_is_starting_with_unknown_health_and_nothing_counted() {
    let (w, clock) = worker(LifecycleConfig::default());
    assert_eq!(w.state(), State::Starting);
    assert_eq!(w.health(), Health::Unknown);
    assert!(!w.is_available());
    assert!(w.is_live());
    assert_eq!(w.history().count(), 0);
    tick(&clock, 1500);
    let counters = w.counters();
    assert_eq!(counters.requests_served, 0);
    assert_eq!(counters.consecutive_health_failures, 0);
    assert_eq!(counters.consecutive_request_failures, 0);
    assert_eq!(counters.age, Duration::from_millis(1500));
}

#[test]
fn handshake_ok_makes_the_worker_ready_and_only_once() {
    let (mut w, _clock) = worker(LifecycleConfig::default());
    let t = w.apply(Event::HandshakeOk).unwrap();
    assert_eq!((t.from, t.to), (State::Starting, State::Ready));
    assert_eq!(t.reason, TransitionReason::HandshakeCompleted);
    assert!(w.is_available());
    assert_eq!(w.health(), Health::Unknown);
    assert_eq!(
        w.apply(Event::HandshakeOk),
        Err(InvalidTransition {
            state: State::Ready,
            event: EventKind::HandshakeOk
        })
    );
}

#[test]
fn handshake_failure_terminates_without_an_exit() {
    let (mut w, _clock) = worker(LifecycleConfig::default());
    let t = w.apply(Event::HandshakeFailed).unwrap();
    assert_eq!(t.to, State::Terminated);
    assert_eq!(t.reason.to_string(), "handshake failed");
    assert!(!w.is_live());
    assert_eq!(w.exit(), None);
}

#[test]
fn checkout_and_checkin_count_a_served_request() {
    let mut w = ready();
    let out = w.apply(Event::Checkout).unwrap();
    assert_eq!((out.from, out.to), (State::Ready, State::Busy));
    assert!(!w.is_available());
    assert_eq!(
        w.apply(Event::Checkout).unwrap_err().to_string(),
        "event `checkout` is not allowed in state `Busy`"
    );
    let back = w.apply(Event::CheckinOk).unwrap();
    assert_eq!((back.from, back.to), (State::Busy, State::Ready));
    assert_eq!(back.reason, TransitionReason::RequestCompleted);
    assert_eq!(w.counters().requests_served, 1);
    assert_eq!(w.health(), Health::Healthy);
}

#[test]
fn checkin_is_rejected_when_nothing_is_checked_out() {
    let mut w = ready();
    assert_eq!(
        w.apply(Event::CheckinOk).unwrap_err().event,
        EventKind::CheckinOk
    );
    assert_eq!(w.counters().requests_served, 0);
}

#[test]
fn a_degraded_worker_can_be_checked_out_and_a_success_makes_it_ready() {
    let mut w = busy();
    w.apply(SUSPECT).unwrap();
    assert_eq!(w.state(), State::Degraded);
    assert_eq!(w.counters().consecutive_request_failures, 1);
    assert!(w.is_available());
    assert_eq!(w.apply(Event::Checkout).unwrap().from, State::Degraded);
    assert_eq!(w.apply(Event::CheckinOk).unwrap().to, State::Ready);
    assert_eq!(w.counters().consecutive_request_failures, 0);
}

#[test]
fn a_harmless_failure_returns_the_worker_and_counts_nothing() {
    let mut w = busy();
    let t = w
        .apply(Event::RequestFailed {
            severity: FailureSeverity::Harmless,
        })
        .unwrap();
    assert_eq!((t.from, t.to), (State::Busy, State::Ready));
    assert_eq!(t.reason.to_string(), "request failed (harmless)");
    let counters = w.counters();
    assert_eq!(counters.requests_served, 0);
    assert_eq!(counters.consecutive_request_failures, 0);
}

#[test]
fn a_fatal_failure_terminates_the_worker() {
    let mut w = busy();
    let t = w
        .apply(Event::RequestFailed {
            severity: FailureSeverity::Fatal,
        })
        .unwrap();
    assert_eq!(t.to, State::Terminating);
    assert_eq!(t.reason.to_string(), "request failed (fatal)");
    assert!(!w.is_available());
}

#[test]
fn suspect_failures_up_to_the_threshold_terminate_the_worker() {
    let config = LifecycleConfig {
        request_failure_threshold: 2,
        ..LifecycleConfig::default()
    };
    let (mut w, _clock) = worker(config);
    w.apply(Event::HandshakeOk).unwrap();
    w.apply(Event::Checkout).unwrap();
    assert_eq!(w.apply(SUSPECT).unwrap().to, State::Degraded);
    w.apply(Event::Checkout).unwrap();
    let t = w.apply(SUSPECT).unwrap();
    assert_eq!(t.to, State::Terminating);
    assert_eq!(
        t.reason.to_string(),
        "request-failure threshold reached (2 consecutive failures, threshold 2)"
    );
    assert_eq!(w.health(), Health::Unhealthy);
    assert!(!w.is_available());
}

#[test]
fn failed_health_checks_degrade_then_terminate_at_the_threshold() {
    let mut w = ready();
    let first = w.apply(Event::HealthFailed).unwrap();
    assert_eq!((first.from, first.to), (State::Ready, State::Degraded));
    assert_eq!(
        first.reason.to_string(),
        "health check failed (1 consecutive failures, threshold 3)"
    );
    assert_eq!(w.health(), Health::Healthy);
    assert!(w.is_available());
    assert_eq!(w.apply(Event::HealthFailed).unwrap().to, State::Degraded);
    let last = w.apply(Event::HealthFailed).unwrap();
    assert_eq!(last.to, State::Terminating);
    assert_eq!(
        last.reason.to_string(),
        "health-failure threshold reached (3 consecutive failures, threshold 3)"
    );
    assert_eq!(w.counters().consecutive_health_failures, 3);
    assert_eq!(w.health(), Health::Unhealthy);
    assert!(!w.is_available());
    assert!(w.apply(Event::Checkout).is_err());
}

#[test]
fn a_passing_health_check_resets_failures_and_restores_ready() {
    let mut w = ready();
    w.apply(Event::HealthFailed).unwrap();
    w.apply(Event::HealthFailed).unwrap();
    let t = w.apply(Event::HealthOk).unwrap();
    assert_eq!((t.from, t.to), (State::Degraded, State::Ready));
    assert_eq!(t.reason, TransitionReason::HealthCheckPassed);
    assert_eq!(w.counters().consecutive_health_failures, 0);
    assert_eq!(w.apply(Event::HealthOk).unwrap().to, State::Ready);
}

#[test]
fn health_events_are_only_for_idle_workers() {
    let mut w = busy();
    assert!(w.apply(Event::HealthOk).is_err());
    assert!(w.apply(Event::HealthFailed).is_err());
    assert_eq!(w.counters().consecutive_health_failures, 0);
    assert_eq!(w.state(), State::Busy);
}

#[test]
fn an_idle_worker_due_for_recycling_is_terminated() {
    let mut w = ready();
    let reason = RecycleReason::MaxMemory {
        rss_bytes: 600,
        limit: 500,
    };
    let t = w.apply(Event::RecycleDue(reason)).unwrap();
    assert_eq!(t.to, State::Terminating);
    assert_eq!(
        t.reason.to_string(),
        "recycle due: resident memory 600 bytes reached the limit of 500 bytes"
    );
}

#[test]
fn a_busy_worker_due_for_recycling_drains_then_terminates() {
    let mut w = busy();
    let t = w.apply(Event::RecycleDue(SOME_RECYCLE)).unwrap();
    assert_eq!((t.from, t.to), (State::Busy, State::Draining));
    assert_eq!(w.drain_cause(), Some(DrainCause::Recycle(SOME_RECYCLE)));
    assert!(!w.is_available());
    assert!(w.apply(Event::Checkout).is_err());
    assert!(w.apply(Event::RecycleDue(SOME_RECYCLE)).is_err());
    let done = w.apply(Event::CheckinOk).unwrap();
    assert_eq!((done.from, done.to), (State::Draining, State::Terminating));
    assert_eq!(
        done.reason.to_string(),
        "finished its last request before recycle (served 10 requests (limit 10))"
    );
    assert_eq!(w.counters().requests_served, 1);
    assert_eq!(w.drain_cause(), None);
}

#[test]
fn a_draining_worker_whose_request_fails_terminates() {
    for severity in FailureSeverity::ALL {
        let mut w = busy();
        w.apply(Event::Shutdown).unwrap();
        let t = w.apply(Event::RequestFailed { severity }).unwrap();
        assert_eq!(t.to, State::Terminating);
        let expected = match severity {
            FailureSeverity::Fatal => TransitionReason::RequestFailed(severity),
            _ => TransitionReason::Drained(DrainCause::Shutdown),
        };
        assert_eq!(t.reason, expected);
        let suspect_counted = u32::from(severity == FailureSeverity::Suspect);
        assert_eq!(w.counters().consecutive_request_failures, suspect_counted);
    }
}

#[test]
fn shutdown_terminates_idle_workers_and_drains_busy_ones() {
    let mut idle = ready();
    let t = idle.apply(Event::Shutdown).unwrap();
    assert_eq!(t.to, State::Terminating);
    assert_eq!(t.reason.to_string(), "shutdown requested");
    assert!(idle.apply(Event::Shutdown).is_err());

    let mut serving = busy();
    assert_eq!(serving.apply(Event::Shutdown).unwrap().to, State::Draining);
    assert_eq!(serving.drain_cause(), Some(DrainCause::Shutdown));
    assert!(serving.apply(Event::Shutdown).is_err());
}

#[test]
fn a_worker_shut_down_while_starting_accepts_its_failed_spawn() {
    let (mut w, _clock) = worker(LifecycleConfig::default());
    assert_eq!(w.apply(Event::Shutdown).unwrap().to, State::Terminating);
    assert!(w.apply(Event::HandshakeOk).is_err());
    assert_eq!(
        w.apply(Event::HandshakeFailed).unwrap().to,
        State::Terminated
    );
}

#[test]
fn a_worker_terminating_for_another_reason_rejects_a_handshake_failure() {
    let mut w = ready();
    w.apply(Event::Shutdown).unwrap();
    assert_eq!(
        w.apply(Event::HandshakeFailed),
        Err(InvalidTransition {
            state: State::Terminating,
            event: EventKind::HandshakeFailed
        })
    );
}

#[test]
fn process_exit_terminates_from_every_live_state() {
    let exit = ExitInfo::signal(9);
    let mut starting = worker(LifecycleConfig::default()).0;
    let mut draining = busy();
    draining.apply(Event::Shutdown).unwrap();
    let mut terminating = ready();
    terminating.apply(Event::Shutdown).unwrap();
    let mut degraded = ready();
    degraded.apply(Event::HealthFailed).unwrap();
    for mut w in [
        starting.clone(),
        ready(),
        busy(),
        degraded,
        draining,
        terminating,
    ] {
        let from = w.state();
        let t = w.apply(Event::ProcessExited(exit)).unwrap();
        assert_eq!((t.from, t.to), (from, State::Terminated));
        assert_eq!(t.reason.to_string(), "process was killed by signal 9");
        assert_eq!(w.exit(), Some(exit));
        assert!(!w.is_live());
    }
    starting
        .apply(Event::ProcessExited(ExitInfo::code(1)))
        .unwrap();
    assert_eq!(
        starting.last_transition().unwrap().reason.to_string(),
        "process exited with code 1"
    );
}

#[test]
fn terminated_rejects_every_event_including_a_second_exit() {
    let (mut w, _clock) = worker(LifecycleConfig::default());
    w.apply(Event::ProcessExited(ExitInfo::code(0))).unwrap();
    for event in every_event(SOME_RECYCLE, ExitInfo::code(1)) {
        let err = w.apply(event).unwrap_err();
        assert_eq!(err.state, State::Terminated);
        assert_eq!(err.event, event.kind());
    }
    assert_eq!(w.exit(), Some(ExitInfo::code(0)));
    assert_eq!(w.history().count(), 1);
}

#[test]
fn history_keeps_the_newest_entries_with_their_times() {
    let config = LifecycleConfig {
        history_len: 2,
        ..LifecycleConfig::default()
    };
    let (mut w, clock) = worker(config);
    let start = clock.now();
    w.apply(Event::HandshakeOk).unwrap();
    tick(&clock, 10);
    w.apply(Event::Checkout).unwrap();
    tick(&clock, 20);
    w.apply(Event::CheckinOk).unwrap();
    let entries: Vec<_> = w.history().copied().collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        (entries[0].from, entries[0].to),
        (State::Ready, State::Busy)
    );
    assert_eq!(entries[0].at - start, Duration::from_millis(10));
    assert_eq!(entries[1].reason, TransitionReason::RequestCompleted);
    assert_eq!(entries[1].at - start, Duration::from_millis(30));
    assert_eq!(w.last_transition(), entries.last());
}

#[test]
fn a_zero_history_length_keeps_nothing() {
    let config = LifecycleConfig {
        history_len: 0,
        ..LifecycleConfig::default()
    };
    let (mut w, _clock) = worker(config);
    w.apply(Event::HandshakeOk).unwrap();
    assert_eq!(w.history().count(), 0);
    assert_eq!(w.last_transition(), None);
}

#[test]
fn zero_thresholds_behave_like_one() {
    let config = LifecycleConfig {
        health_failure_threshold: 0,
        request_failure_threshold: 0,
        ..LifecycleConfig::default()
    };
    let (mut w, _clock) = worker(config);
    assert_eq!(w.config().health_failure_threshold, 1);
    assert_eq!(w.config().request_failure_threshold, 1);
    w.apply(Event::HandshakeOk).unwrap();
    assert!(w.is_available());
    w.apply(Event::Checkout).unwrap();
    assert_eq!(w.apply(SUSPECT).unwrap().to, State::Terminating);
}

#[test]
fn exit_info_names_the_code_or_the_signal() {
    assert_eq!(ExitInfo::code(1).to_string(), "exited with code 1");
    assert_eq!(ExitInfo::signal(9).to_string(), "was killed by signal 9");
    assert_eq!(ExitInfo::UNKNOWN.to_string(), "exited (status unknown)");
}

#[test]
fn states_health_and_counters_serialize_for_status_snapshots() {
    let mut w = busy();
    w.apply(Event::CheckinOk).unwrap();
    assert_eq!(
        serde_json::to_value(w.state()).unwrap(),
        serde_json::json!("ready")
    );
    assert_eq!(
        serde_json::to_value(w.health()).unwrap(),
        serde_json::json!("healthy")
    );
    let counters = serde_json::to_value(w.counters()).unwrap();
    assert_eq!(counters["requests_served"], serde_json::json!(1));
    assert_eq!(
        counters["consecutive_health_failures"],
        serde_json::json!(0)
    );
}

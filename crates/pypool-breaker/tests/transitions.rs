//! Every state transition of the breaker, one at a time, on a manual clock.

use std::sync::Arc;
use std::time::Duration;

use pypool_breaker::{
    BreakerConfig, BreakerSnapshot, BreakerState, CallOutcome, CircuitBreaker, Permit, RateTrip,
    Rejected,
};
use pypool_clock::ManualClock;

const RESET: Duration = Duration::from_secs(5);

fn breaker(config: BreakerConfig) -> (CircuitBreaker, ManualClock) {
    let clock = ManualClock::new();
    (CircuitBreaker::new(config, Arc::new(clock.clone())), clock)
}

fn config(consecutive_failures: u32) -> BreakerConfig {
    BreakerConfig {
        consecutive_failures,
        reset_timeout: RESET,
        ..BreakerConfig::default()
    }
}

fn admit(breaker: &mut CircuitBreaker) -> Permit {
    breaker
        .try_acquire()
        .expect("the breaker should admit this call")
}

fn reject(breaker: &mut CircuitBreaker) -> Rejected {
    breaker
        .try_acquire()
        .expect_err("the breaker should reject this call")
}

fn call(breaker: &mut CircuitBreaker, outcome: CallOutcome) {
    let permit = admit(breaker);
    breaker.record(permit, outcome);
}

/// A breaker opened by `failures` failures, with its clock.
fn opened(failures: u32) -> (CircuitBreaker, ManualClock) {
    let (mut b, clock) = breaker(config(failures));
    for _ in 0..failures {
        call(&mut b, CallOutcome::Failure);
    }
    assert_eq!(b.state(), BreakerState::Open);
    (b, clock)
}

/// A breaker that has just turned half-open.
fn half_open(config: BreakerConfig) -> (CircuitBreaker, ManualClock) {
    let (mut b, clock) = breaker(config);
    for _ in 0..config.consecutive_failures {
        call(&mut b, CallOutcome::Failure);
    }
    clock.advance(config.reset_timeout);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    (b, clock)
}

#[test]
fn closed_admits_everything_and_stays_closed_below_the_threshold() {
    let (mut b, _clock) = breaker(config(3));
    call(&mut b, CallOutcome::Failure);
    call(&mut b, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::Closed);
    assert!(!admit(&mut b).is_probe());
    assert_eq!(b.snapshot().consecutive_failures, 2);
}

#[test]
fn a_success_resets_the_run_of_failures() {
    let (mut b, _clock) = breaker(config(3));
    call(&mut b, CallOutcome::Failure);
    call(&mut b, CallOutcome::Failure);
    call(&mut b, CallOutcome::Success);
    call(&mut b, CallOutcome::Failure);
    call(&mut b, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::Closed);
    call(&mut b, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn closed_opens_after_n_consecutive_failures() {
    let (mut b, _clock) = breaker(config(5));
    for _ in 0..4 {
        call(&mut b, CallOutcome::Failure);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    call(&mut b, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(
        b.snapshot(),
        BreakerSnapshot {
            state: BreakerState::Open,
            consecutive_failures: 5,
            open_for: Some(Duration::ZERO),
            retry_after: Some(RESET),
            probes_in_flight: 0,
        }
    );
}

#[test]
fn open_rejects_with_the_rest_of_the_reset_timeout() {
    let (mut b, clock) = opened(2);
    assert_eq!(reject(&mut b).retry_after, RESET);
    clock.advance(Duration::from_millis(3_800));
    let rejected = reject(&mut b);
    assert_eq!(rejected.retry_after, Duration::from_millis(1_200));
    assert_eq!(rejected.to_string(), "circuit open; retry in 1.2s");
    assert_eq!(b.snapshot().open_for, Some(Duration::from_millis(3_800)));
}

#[test]
fn open_turns_half_open_exactly_at_the_reset_timeout_on_a_state_query() {
    let (mut b, clock) = opened(2);
    clock.advance(RESET - Duration::from_nanos(1));
    assert_eq!(b.state(), BreakerState::Open);
    clock.advance(Duration::from_nanos(1));
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

#[test]
fn open_turns_half_open_on_an_admission() {
    let (mut b, clock) = opened(2);
    clock.advance(RESET * 3);
    let probe = admit(&mut b);
    assert!(probe.is_probe());
    assert_eq!(b.snapshot().probes_in_flight, 1);
}

#[test]
fn half_open_admits_only_the_configured_number_of_probes() {
    let (mut b, _clock) = half_open(BreakerConfig {
        half_open_probes: 2,
        half_open_successes_to_close: 2,
        ..config(1)
    });
    let first = admit(&mut b);
    let second = admit(&mut b);
    assert!(first.is_probe() && second.is_probe());
    assert_eq!(reject(&mut b).retry_after, RESET);
    assert_eq!(b.snapshot().probes_in_flight, 2);
}

#[test]
fn half_open_closes_after_enough_probe_successes() {
    let (mut b, _clock) = half_open(BreakerConfig {
        half_open_probes: 1,
        half_open_successes_to_close: 3,
        ..config(1)
    });
    for _ in 0..2 {
        call(&mut b, CallOutcome::Success);
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }
    call(&mut b, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Closed);
    let snapshot = b.snapshot();
    assert_eq!(snapshot.consecutive_failures, 0);
    assert_eq!(snapshot.open_for, None);
    assert!(!admit(&mut b).is_probe());
}

#[test]
fn a_failed_probe_reopens_and_restarts_the_reset_timeout() {
    let (mut b, clock) = half_open(BreakerConfig {
        half_open_probes: 2,
        half_open_successes_to_close: 2,
        ..config(1)
    });
    let good = admit(&mut b);
    let bad = admit(&mut b);
    clock.advance(Duration::from_secs(1));
    b.record(good, CallOutcome::Success);
    b.record(bad, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(reject(&mut b).retry_after, RESET);
    assert_eq!(b.snapshot().open_for, Some(Duration::ZERO));
    clock.advance(RESET);
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

#[test]
fn release_frees_a_probe_slot_and_counts_as_nothing() {
    let (mut b, _clock) = half_open(config(1));
    let probe = admit(&mut b);
    reject(&mut b);
    b.release(probe);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.snapshot().probes_in_flight, 0);
    let next = admit(&mut b);
    b.record(next, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn a_released_closed_permit_counts_as_nothing() {
    let (mut b, _clock) = breaker(config(2));
    call(&mut b, CallOutcome::Failure);
    let cancelled = admit(&mut b);
    b.release(cancelled);
    assert_eq!(b.snapshot().consecutive_failures, 1);
    call(&mut b, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn a_late_success_from_before_the_trip_does_not_close_the_breaker() {
    let (mut b, clock) = breaker(config(1));
    let slow = admit(&mut b);
    call(&mut b, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::Open);
    b.record(slow, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Open);
    // Nor does it count as a probe once half-open.
    clock.advance(RESET);
    let probe = admit(&mut b);
    b.record(slow, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.snapshot().probes_in_flight, 1);
    b.record(probe, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn a_late_failure_from_an_old_generation_does_not_count() {
    let (mut b, clock) = breaker(config(1));
    let old = admit(&mut b);
    call(&mut b, CallOutcome::Failure);
    clock.advance(RESET);
    call(&mut b, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Closed);
    b.record(old, CallOutcome::Failure);
    b.release(old);
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.snapshot().consecutive_failures, 0);
}

#[test]
fn a_probe_resolved_twice_counts_once() {
    let (mut b, _clock) = half_open(BreakerConfig {
        half_open_probes: 1,
        half_open_successes_to_close: 2,
        ..config(1)
    });
    let probe = admit(&mut b);
    b.record(probe, CallOutcome::Success);
    b.record(probe, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    b.record(probe, CallOutcome::Failure);
    assert_eq!(
        b.state(),
        BreakerState::HalfOpen,
        "a resolved probe cannot reopen"
    );
}

#[test]
fn the_failure_rate_trips_before_the_run_of_failures_does() {
    let (mut b, _clock) = breaker(BreakerConfig {
        consecutive_failures: 100,
        failure_rate: Some(RateTrip {
            window: Duration::from_secs(10),
            min_calls: 4,
            threshold: 0.5,
        }),
        ..config(100)
    });
    call(&mut b, CallOutcome::Failure);
    call(&mut b, CallOutcome::Success);
    call(&mut b, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::Closed, "3 calls: below min_calls");
    call(&mut b, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Closed, "successes never trip");
    call(&mut b, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::Open, "3 of 5 failed");
}

#[test]
fn failures_older_than_the_window_do_not_count_toward_the_rate() {
    let (mut b, clock) = breaker(BreakerConfig {
        failure_rate: Some(RateTrip {
            window: Duration::from_secs(10),
            min_calls: 2,
            threshold: 0.5,
        }),
        ..config(100)
    });
    call(&mut b, CallOutcome::Success);
    call(&mut b, CallOutcome::Success);
    call(&mut b, CallOutcome::Success);
    clock.advance(Duration::from_secs(11));
    call(&mut b, CallOutcome::Success);
    call(&mut b, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::Open, "1 of 2 in the window failed");
}

#[test]
fn closing_forgets_the_calls_in_the_window() {
    let (mut b, clock) = breaker(BreakerConfig {
        failure_rate: Some(RateTrip {
            window: Duration::from_secs(60),
            min_calls: 3,
            threshold: 0.5,
        }),
        ..config(100)
    });
    for _ in 0..3 {
        call(&mut b, CallOutcome::Failure);
    }
    assert_eq!(b.state(), BreakerState::Open);
    clock.advance(RESET);
    call(&mut b, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Closed);
    // Had the window kept the three failures, 4 of 5 would trip here.
    call(&mut b, CallOutcome::Failure);
    call(&mut b, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn a_zero_reset_timeout_goes_straight_to_half_open() {
    let (mut b, _clock) = breaker(BreakerConfig {
        reset_timeout: Duration::ZERO,
        ..config(1)
    });
    call(&mut b, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

#[test]
fn zero_counts_are_read_as_one() {
    let (mut b, clock) = breaker(BreakerConfig {
        consecutive_failures: 0,
        half_open_probes: 0,
        half_open_successes_to_close: 0,
        reset_timeout: RESET,
        failure_rate: None,
    });
    call(&mut b, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Closed);
    call(&mut b, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::Open);
    clock.advance(RESET);
    let probe = admit(&mut b);
    reject(&mut b);
    b.record(probe, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.config().half_open_probes, 1);
}

#[test]
fn the_snapshot_serializes_for_the_status_page() {
    let (mut b, clock) = opened(1);
    clock.advance(Duration::from_secs(2));
    let json = serde_json::to_value(b.snapshot()).unwrap_or_default();
    assert_eq!(json["state"], "open");
    assert_eq!(json["consecutive_failures"], 1);
    assert_eq!(json["open_for"]["secs"], 2);
    assert_eq!(json["retry_after"]["secs"], 3);
    assert_eq!(json["probes_in_flight"], 0);
}

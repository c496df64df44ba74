//! Random event sequences against a small reference model, with the
//! invariants the pool relies on checked after every step.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use pypool_clock::{Clock, ManualClock};

use crate::{
    DrainCause, Event, ExitInfo, FailureSeverity, Health, LifecycleConfig, RecycleReason, State,
    TRANSITIONS, TransitionReason, WorkerLifecycle,
};

/// Cases of the sequence property (each a sequence of 1 to 63 steps).
const SEQUENCE_CASES: u32 = 2048;

/// One step of a generated sequence.
#[derive(Debug, Clone)]
enum Step {
    /// Feed an event (valid or not for the current state).
    Apply(Event),
    /// Let time pass.
    Advance(Duration),
}

/// The reference model: the documented behaviour, written out plainly.
#[derive(Debug, Clone)]
struct Model {
    history_len: usize,
    health_threshold: u32,
    request_threshold: u32,
    /// The configuration as given (thresholds possibly 0).
    config: LifecycleConfig,
    state: State,
    shut_down_while_starting: bool,
    drain: Option<DrainCause>,
    exit: Option<ExitInfo>,
    served: u64,
    health_failures: u32,
    request_failures: u32,
    health_known: bool,
    elapsed: Duration,
    /// Accepted events so far.
    accepted: usize,
    /// The outcome of the last `Apply` step: `Some` if accepted.
    last: Option<(State, State, TransitionReason)>,
    /// Whether the model has been `Terminated` at some point.
    was_terminated: bool,
    /// Requests the worker holds at once.
    capacity: u32,
    /// Requests checked out and not yet ended.
    in_flight: u32,
}

impl Model {
    fn new(config: LifecycleConfig) -> Self {
        Self {
            history_len: config.history_len,
            health_threshold: config.health_failure_threshold.max(1),
            request_threshold: config.request_failure_threshold.max(1),
            config,
            state: State::Starting,
            shut_down_while_starting: false,
            drain: None,
            exit: None,
            served: 0,
            health_failures: 0,
            request_failures: 0,
            health_known: false,
            elapsed: Duration::ZERO,
            accepted: 0,
            last: None,
            was_terminated: false,
            capacity: 1,
            in_flight: 0,
        }
    }

    fn idle(&self) -> bool {
        self.state == State::Ready || self.state == State::Degraded
    }

    fn available(&self) -> bool {
        self.idle()
            && self.health_failures < self.health_threshold
            && self.request_failures < self.request_threshold
    }

    fn health(&self) -> Health {
        if self.health_failures >= self.health_threshold
            || self.request_failures >= self.request_threshold
        {
            Health::Unhealthy
        } else if self.health_known {
            Health::Healthy
        } else {
            Health::Unknown
        }
    }

    /// The documented outcome of `event`: the new state and reason, with the
    /// model updated, or `None` (model unchanged) if it is rejected.
    fn outcome(&mut self, event: Event) -> Option<(State, TransitionReason)> {
        use TransitionReason as R;
        if self.state == State::Terminated {
            return None;
        }
        match event {
            Event::ProcessExited(exit) => {
                self.exit = Some(exit);
                Some((State::Terminated, R::ProcessExited(exit)))
            }
            Event::HandshakeOk if self.state == State::Starting => {
                Some((State::Ready, R::HandshakeCompleted))
            }
            Event::HandshakeFailed
                if self.state == State::Starting
                    || (self.state == State::Terminating && self.shut_down_while_starting) =>
            {
                Some((State::Terminated, R::HandshakeFailed))
            }
            Event::Checkout if self.available() => {
                self.in_flight = 1;
                Some((State::Busy, R::CheckedOut))
            }
            Event::Checkout if self.state == State::Busy && self.in_flight < self.capacity => {
                self.in_flight += 1;
                Some((State::Busy, R::CheckedOut))
            }
            Event::CheckinOk if self.state == State::Busy || self.state == State::Draining => {
                self.served += 1;
                self.request_failures = 0;
                self.health_known = true;
                let others = self.in_flight > 1;
                self.in_flight = self.in_flight.saturating_sub(1);
                if others {
                    return Some((self.state, R::RequestCompleted));
                }
                match self.drain {
                    Some(cause) if self.state == State::Draining => {
                        Some((State::Terminating, R::Drained(cause)))
                    }
                    _ => Some((State::Ready, R::RequestCompleted)),
                }
            }
            Event::RequestFailed { severity }
                if self.state == State::Busy || self.state == State::Draining =>
            {
                if severity == FailureSeverity::Suspect {
                    self.request_failures += 1;
                }
                let others = self.in_flight > 1;
                self.in_flight = self.in_flight.saturating_sub(1);
                let survivable = severity == FailureSeverity::Harmless
                    || (severity == FailureSeverity::Suspect
                        && self.request_failures < self.request_threshold);
                if others && survivable {
                    // Its other requests keep it serving.
                    return Some((self.state, R::RequestFailed(severity)));
                }
                if self.state == State::Draining {
                    let cause = self.drain?;
                    return Some(if severity == FailureSeverity::Fatal {
                        (State::Terminating, R::RequestFailed(severity))
                    } else {
                        (State::Terminating, R::Drained(cause))
                    });
                }
                Some(match severity {
                    FailureSeverity::Harmless => (State::Ready, R::RequestFailed(severity)),
                    FailureSeverity::Fatal => (State::Terminating, R::RequestFailed(severity)),
                    FailureSeverity::Suspect if self.request_failures >= self.request_threshold => {
                        (
                            State::Terminating,
                            R::RequestFailureThresholdReached {
                                failures: self.request_failures,
                                threshold: self.request_threshold,
                            },
                        )
                    }
                    FailureSeverity::Suspect => (State::Degraded, R::RequestFailed(severity)),
                })
            }
            Event::HealthOk if self.idle() => {
                self.health_failures = 0;
                self.health_known = true;
                Some((State::Ready, R::HealthCheckPassed))
            }
            Event::HealthFailed if self.idle() => {
                self.health_failures += 1;
                self.health_known = true;
                let (failures, threshold) = (self.health_failures, self.health_threshold);
                Some(if failures >= threshold {
                    (
                        State::Terminating,
                        R::HealthFailureThresholdReached {
                            failures,
                            threshold,
                        },
                    )
                } else {
                    (
                        State::Degraded,
                        R::HealthCheckFailed {
                            failures,
                            threshold,
                        },
                    )
                })
            }
            Event::RecycleDue(reason) if self.idle() => {
                Some((State::Terminating, R::RecycleDue(reason)))
            }
            Event::RecycleDue(reason) if self.state == State::Busy => {
                self.drain = Some(DrainCause::Recycle(reason));
                Some((State::Draining, R::RecycleDue(reason)))
            }
            Event::Shutdown if self.state == State::Busy => {
                self.drain = Some(DrainCause::Shutdown);
                Some((State::Draining, R::ShutdownRequested))
            }
            Event::Shutdown if self.state == State::Starting => {
                self.shut_down_while_starting = true;
                Some((State::Terminating, R::ShutdownRequested))
            }
            Event::Shutdown if self.idle() => Some((State::Terminating, R::ShutdownRequested)),
            _ => None,
        }
    }
}

fn arb_severity() -> impl Strategy<Value = FailureSeverity> {
    prop_oneof![
        Just(FailureSeverity::Harmless),
        Just(FailureSeverity::Suspect),
        Just(FailureSeverity::Fatal),
    ]
}

fn arb_recycle() -> impl Strategy<Value = RecycleReason> {
    prop_oneof![
        (0u64..100, 0u64..100)
            .prop_map(|(served, limit)| RecycleReason::MaxRequests { served, limit }),
        (0u64..100, 0u64..100).prop_map(|(age, limit)| RecycleReason::MaxAge {
            age: Duration::from_secs(age),
            limit: Duration::from_secs(limit),
        }),
        (0u64..100, 0u64..100)
            .prop_map(|(rss_bytes, limit)| RecycleReason::MaxMemory { rss_bytes, limit }),
    ]
}

fn arb_exit() -> impl Strategy<Value = ExitInfo> {
    prop_oneof![
        (0i32..3).prop_map(ExitInfo::code),
        prop_oneof![Just(9), Just(15)].prop_map(ExitInfo::signal),
        Just(ExitInfo::UNKNOWN),
    ]
}

/// The reference state machine driving generation.
struct LifecycleModel;

impl ReferenceStateMachine for LifecycleModel {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        (0usize..6, 0u32..5, 0u32..5, 0u32..4)
            .prop_map(|(history_len, health, request, capacity)| {
                let mut model = Model::new(LifecycleConfig {
                    history_len,
                    health_failure_threshold: health,
                    request_failure_threshold: request,
                });
                model.capacity = capacity.max(1);
                model
            })
            .boxed()
    }

    /// Any event in any state (invalid ones too, to exercise rejection),
    /// weighted so that sequences get deep before the worker dies.
    fn transitions(state: &Model) -> BoxedStrategy<Step> {
        let handshake_weight = if state.state == State::Starting {
            24
        } else {
            1
        };
        let events = prop_oneof![
            handshake_weight => Just(Event::HandshakeOk),
            1 => Just(Event::HandshakeFailed),
            6 => Just(Event::Checkout),
            4 => Just(Event::CheckinOk),
            4 => arb_severity().prop_map(|severity| Event::RequestFailed { severity }),
            3 => Just(Event::HealthOk),
            3 => Just(Event::HealthFailed),
            1 => arb_recycle().prop_map(Event::RecycleDue),
            1 => Just(Event::Shutdown),
            1 => arb_exit().prop_map(Event::ProcessExited),
        ];
        prop_oneof![
            12 => events.prop_map(Step::Apply),
            1 => (0u64..5_000).prop_map(|ms| Step::Advance(Duration::from_millis(ms))),
        ]
        .boxed()
    }

    fn apply(mut state: Model, step: &Step) -> Model {
        match step {
            Step::Advance(by) => state.elapsed += *by,
            Step::Apply(event) => {
                let from = state.state;
                state.last = state.outcome(*event).map(|(to, reason)| {
                    state.state = to;
                    state.accepted += 1;
                    (from, to, reason)
                });
                if state.state != State::Draining {
                    state.drain = None;
                }
                state.was_terminated |= state.state == State::Terminated;
                if matches!(state.state, State::Terminating | State::Terminated) {
                    state.in_flight = 0;
                }
            }
        }
        state
    }
}

/// The system under test: a lifecycle and the clock it reads.
struct Sut {
    worker: WorkerLifecycle,
    clock: ManualClock,
}

struct LifecycleTest;

impl StateMachineTest for LifecycleTest {
    type SystemUnderTest = Sut;
    type Reference = LifecycleModel;

    fn init_test(model: &Model) -> Sut {
        let clock = ManualClock::new();
        Sut {
            worker: {
                let mut worker = WorkerLifecycle::new(model.config, Arc::new(clock.clone()));
                worker.set_capacity(model.capacity);
                worker
            },
            clock,
        }
    }

    /// `model` is the reference *after* this step.
    fn apply(mut sut: Sut, model: &Model, step: Step) -> Sut {
        let event = match step {
            Step::Advance(by) => {
                sut.clock.advance(by);
                return sut;
            }
            Step::Apply(event) => event,
        };
        let w = &mut sut.worker;
        let before = w.state();
        let counters_before = w.counters();
        let was_available = w.has_room();
        let over_health_threshold =
            counters_before.consecutive_health_failures >= w.config().health_failure_threshold;
        let result = w.apply(event);

        if event == Event::Checkout {
            assert_eq!(
                result.is_ok(),
                was_available,
                "has_room lied about checkout"
            );
            if over_health_threshold {
                assert!(result.is_err(), "an unhealthy worker was handed out");
            }
        }
        if before == State::Terminated {
            assert!(
                result.is_err(),
                "Terminated is not absorbing: {event:?} accepted"
            );
        }
        match result {
            Ok(t) => {
                assert_eq!(t.from, before);
                assert_eq!(
                    model.last,
                    Some((t.from, t.to, t.reason)),
                    "model and lifecycle disagree on {event:?}"
                );
                assert!(
                    TRANSITIONS
                        .iter()
                        .any(|row| (row.from, row.event, row.to) == (t.from, event.kind(), t.to)),
                    "accepted transition {t:?} on {event:?} is not in the table"
                );
                if t.to == State::Busy && before != State::Busy {
                    assert!(event == Event::Checkout && before.is_idle(), "{t:?}");
                }
                if let Some(entry) = w.last_transition() {
                    assert_eq!(
                        (entry.from, entry.to, entry.reason),
                        (t.from, t.to, t.reason)
                    );
                    assert_eq!(entry.at, sut.clock.now());
                }
            }
            Err(err) => {
                assert_eq!(model.last, None, "lifecycle rejected {event:?}: {err}");
                assert_eq!((err.state, err.event), (before, event.kind()));
                assert_eq!(w.state(), before);
                assert_eq!(w.counters(), counters_before);
            }
        }
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        let w = &sut.worker;
        assert_eq!(w.state(), model.state);
        let counters = w.counters();
        assert_eq!(counters.requests_served, model.served);
        assert_eq!(counters.consecutive_health_failures, model.health_failures);
        assert_eq!(
            counters.consecutive_request_failures,
            model.request_failures
        );
        assert_eq!(counters.age, model.elapsed);
        assert_eq!(w.health(), model.health());
        assert_eq!(w.is_available(), model.available());
        assert_eq!(w.in_flight(), model.in_flight);
        assert!(w.in_flight() <= w.capacity(), "lent beyond its capacity");
        assert_eq!(
            w.in_flight() > 0,
            matches!(w.state(), State::Busy | State::Draining),
            "requests in flight exactly while busy or draining"
        );
        assert_eq!(w.is_live(), model.state != State::Terminated);
        assert_eq!(
            w.exit(),
            model.exit.filter(|_| model.state == State::Terminated)
        );
        assert_eq!(w.drain_cause(), model.drain);
        if model.was_terminated {
            assert_eq!(w.state(), State::Terminated, "left Terminated");
        }
        if counters.consecutive_health_failures >= model.health_threshold {
            assert!(!w.is_available());
            assert_eq!(w.health(), Health::Unhealthy);
        }

        let history: Vec<_> = w.history().collect();
        assert!(
            history.len() <= model.history_len,
            "history exceeds its bound"
        );
        assert_eq!(history.len(), model.accepted.min(model.history_len));
        for pair in history.windows(2) {
            assert!(pair[0].at <= pair[1].at, "history out of time order");
            assert_eq!(pair[0].to, pair[1].from, "history is not a chain");
        }
        for entry in &history {
            assert!(
                TRANSITIONS
                    .iter()
                    .any(|row| (row.from, row.to) == (entry.from, entry.to)),
                "history entry {entry:?} is not in the table"
            );
            if entry.to == State::Busy && entry.from != State::Busy {
                assert_eq!(entry.reason, TransitionReason::CheckedOut);
                assert!(entry.from.is_idle());
            }
            assert!(entry.at >= w.created_at());
        }
        if let Some(newest) = history.last() {
            assert_eq!(newest.to, w.state());
        }
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: SEQUENCE_CASES,
        ..ProptestConfig::default()
    })]

    /// Random event sequences agree with the reference model and keep every
    /// invariant.
    #[test]
    fn random_event_sequences_match_the_model(sequential 1..64 => LifecycleTest);
}

//! Every failure class in every situation, with the full expected decision.

use std::time::Duration;

use pypool_recovery::{
    AttemptContext, Decision, FailureClass, FixedRandom, Jitter, RecoveryConfig, RecoveryPolicy,
    RequestAction, SequenceRandom, WorkerAction,
};

/// Default bounds (3 attempts, 30 s, 50 ms base, 2 s cap) without jitter, so
/// every delay is exact.
fn policy() -> RecoveryPolicy {
    RecoveryPolicy::new(RecoveryConfig {
        jitter: Jitter::None,
        ..RecoveryConfig::default()
    })
}

/// Attempt 2 of 3 failed: one retry left, after `50 ms * 2^(2-1)`.
const ATTEMPT_WITHIN: u32 = 2;
const DELAY_AFTER_ATTEMPT_WITHIN: Duration = Duration::from_millis(100);
/// Attempt 3 of 3 failed: no attempts left.
const ATTEMPT_AT_BUDGET: u32 = 3;
/// Well inside the 30 s budget.
const ELAPSED_WITHIN: Duration = Duration::from_secs(1);
/// 29.95 s + a 100 ms delay would end past 30 s.
const ELAPSED_OVER: Duration = Duration::from_millis(29_950);

/// One expected row: the worker action, and for the 16 situations the request
/// action: `R` = retry after `DELAY_AFTER_ATTEMPT_WITHIN`, `E` = return the error.
///
/// The 16 letters come in four groups, by (reached_worker, idempotent):
/// `(false,false) (false,true) (true,false) (true,true)`; inside a group by
/// (attempt, elapsed): `(within,within) (within,over) (at,within) (at,over)`.
struct Row {
    failure: FailureClass,
    worker: WorkerAction,
    requests: &'static str,
}

const REPLACE: WorkerAction = WorkerAction::Remove { replace: true };
/// Retried whenever safe and in budget.
const RETRIED_WHEN_SAFE: &str = "REEE REEE EEEE REEE";
/// Never retried.
const NEVER_RETRIED: &str = "EEEE EEEE EEEE EEEE";

fn table() -> Vec<Row> {
    vec![
        Row {
            failure: FailureClass::SpawnFailed,
            worker: REPLACE,
            requests: RETRIED_WHEN_SAFE,
        },
        Row {
            failure: FailureClass::HandshakeTimeout,
            worker: REPLACE,
            requests: RETRIED_WHEN_SAFE,
        },
        Row {
            failure: FailureClass::CheckoutTimeout,
            worker: WorkerAction::Keep,
            requests: NEVER_RETRIED,
        },
        Row {
            failure: FailureClass::DeadlineExceeded,
            worker: REPLACE,
            requests: RETRIED_WHEN_SAFE,
        },
        Row {
            failure: FailureClass::WorkerExited {
                code: None,
                signal: Some(9),
            },
            worker: REPLACE,
            requests: RETRIED_WHEN_SAFE,
        },
        Row {
            failure: FailureClass::WorkerExited {
                code: Some(1),
                signal: None,
            },
            worker: REPLACE,
            requests: RETRIED_WHEN_SAFE,
        },
        Row {
            failure: FailureClass::ConnectionLost,
            worker: REPLACE,
            requests: RETRIED_WHEN_SAFE,
        },
        Row {
            failure: FailureClass::ProtocolViolation,
            worker: REPLACE,
            requests: RETRIED_WHEN_SAFE,
        },
        Row {
            failure: FailureClass::WorkerInternalError,
            worker: WorkerAction::Degrade,
            requests: RETRIED_WHEN_SAFE,
        },
        Row {
            failure: FailureClass::PythonException,
            worker: WorkerAction::Keep,
            requests: NEVER_RETRIED,
        },
        Row {
            failure: FailureClass::InvalidInput,
            worker: WorkerAction::Keep,
            requests: NEVER_RETRIED,
        },
        Row {
            failure: FailureClass::Overloaded,
            worker: WorkerAction::Keep,
            requests: NEVER_RETRIED,
        },
        Row {
            failure: FailureClass::BreakerOpen,
            worker: WorkerAction::Keep,
            requests: NEVER_RETRIED,
        },
    ]
}

/// The 16 situations in the order the `requests` strings use.
fn situations() -> Vec<AttemptContext> {
    let mut all = Vec::new();
    for reached_worker in [false, true] {
        for idempotent in [false, true] {
            for attempt in [ATTEMPT_WITHIN, ATTEMPT_AT_BUDGET] {
                for elapsed in [ELAPSED_WITHIN, ELAPSED_OVER] {
                    all.push(AttemptContext {
                        attempt,
                        elapsed,
                        reached_worker,
                        idempotent,
                    });
                }
            }
        }
    }
    all
}

fn expected_request(letter: char) -> RequestAction {
    match letter {
        'R' => RequestAction::Retry {
            delay: DELAY_AFTER_ATTEMPT_WITHIN,
        },
        'E' => RequestAction::ReturnError,
        other => unreachable!("bad letter {other:?} in the table"),
    }
}

#[test]
fn every_class_in_every_situation() {
    let policy = policy();
    let situations = situations();
    let mut covered = Vec::new();
    for row in table() {
        let letters: Vec<char> = row.requests.chars().filter(|c| *c != ' ').collect();
        assert_eq!(letters.len(), situations.len(), "row for {}", row.failure);
        for (ctx, letter) in situations.iter().zip(letters) {
            let expected = Decision {
                request: expected_request(letter),
                worker: row.worker,
            };
            let actual = policy.decide(&row.failure, ctx, &mut FixedRandom(0.5));
            assert_eq!(actual, expected, "{} with {ctx:?}", row.failure);
        }
        covered.push(row.failure.kind());
    }
    for class in FailureClass::ALL {
        assert!(
            covered.contains(&class.kind()),
            "{} has no row in the table",
            class.kind()
        );
    }
}

#[test]
fn a_retry_ending_exactly_at_the_budget_is_allowed() {
    let ctx = AttemptContext {
        attempt: 1,
        elapsed: Duration::from_millis(29_950),
        reached_worker: false,
        idempotent: false,
    };
    let decision = policy().decide(&FailureClass::SpawnFailed, &ctx, &mut FixedRandom(0.0));
    assert_eq!(
        decision.request,
        RequestAction::Retry {
            delay: Duration::from_millis(50)
        }
    );
    let one_nano_later = AttemptContext {
        elapsed: ctx.elapsed + Duration::from_nanos(1),
        ..ctx
    };
    let decision = policy().decide(
        &FailureClass::SpawnFailed,
        &one_nano_later,
        &mut FixedRandom(0.0),
    );
    assert_eq!(decision.request, RequestAction::ReturnError);
}

#[test]
fn elapsed_already_past_the_budget_never_retries() {
    let ctx = AttemptContext {
        attempt: 1,
        elapsed: Duration::MAX,
        reached_worker: false,
        idempotent: true,
    };
    let decision = policy().decide(&FailureClass::SpawnFailed, &ctx, &mut FixedRandom(0.0));
    assert_eq!(decision.request, RequestAction::ReturnError);
}

#[test]
fn attempt_zero_counts_as_the_first() {
    let ctx = AttemptContext {
        attempt: 0,
        elapsed: Duration::ZERO,
        reached_worker: false,
        idempotent: false,
    };
    let decision = policy().decide(&FailureClass::HandshakeTimeout, &ctx, &mut FixedRandom(0.0));
    assert_eq!(
        decision.request,
        RequestAction::Retry {
            delay: Duration::from_millis(50)
        }
    );
    let single_attempt = RecoveryPolicy::new(RecoveryConfig {
        max_attempts: 1,
        ..RecoveryConfig::default()
    });
    let decision =
        single_attempt.decide(&FailureClass::HandshakeTimeout, &ctx, &mut FixedRandom(0.0));
    assert_eq!(decision.request, RequestAction::ReturnError);
}

#[test]
fn successive_attempts_back_off_with_the_given_jitter() {
    let policy = RecoveryPolicy::new(RecoveryConfig {
        max_attempts: 10,
        jitter: Jitter::Full,
        first_retry_at_once_after_worker_loss: false,
        ..RecoveryConfig::default()
    });
    let mut rng = SequenceRandom::new(vec![0.5, 0.25, 1.0, 0.0]);
    let delays: Vec<Option<Duration>> = (1..=4)
        .map(|attempt| {
            let ctx = AttemptContext {
                attempt,
                elapsed: Duration::ZERO,
                reached_worker: true,
                idempotent: true,
            };
            policy
                .decide(&FailureClass::DeadlineExceeded, &ctx, &mut rng)
                .retry_delay()
        })
        .collect();
    // 50 ms * 0.5, 100 ms * 0.25, 200 ms * 1.0, 400 ms * 0.0
    assert_eq!(
        delays,
        vec![
            Some(Duration::from_micros(25_000)),
            Some(Duration::from_millis(25)),
            Some(Duration::from_millis(200)),
            Some(Duration::ZERO),
        ]
    );
}

#[test]
fn randomness_is_drawn_only_for_a_retry() {
    let policy = RecoveryPolicy::new(RecoveryConfig::default());
    let mut rng = SequenceRandom::new(vec![0.0, 1.0]);
    let unsafe_ctx = AttemptContext {
        attempt: 1,
        elapsed: Duration::ZERO,
        reached_worker: true,
        idempotent: false,
    };
    let refused = policy.decide(
        &FailureClass::WorkerExited {
            code: None,
            signal: Some(9),
        },
        &unsafe_ctx,
        &mut rng,
    );
    assert_eq!(refused.request, RequestAction::ReturnError);
    let safe_ctx = AttemptContext {
        idempotent: true,
        ..unsafe_ctx
    };
    // The first retry after a lost worker has no delay, so it draws nothing.
    let at_once = policy.decide(&FailureClass::ConnectionLost, &safe_ctx, &mut rng);
    assert_eq!(at_once.retry_delay(), Some(Duration::ZERO));
    let retried = policy.decide(&FailureClass::SpawnFailed, &safe_ctx, &mut rng);
    // Equal jitter with the first value (0.0): exactly half of 50 ms.
    assert_eq!(retried.retry_delay(), Some(Duration::from_millis(25)));
}

/// The classes after which the worker that failed is gone.
const WORKER_LOST: [FailureClass; 3] = [
    FailureClass::WorkerExited {
        code: None,
        signal: Some(9),
    },
    FailureClass::ConnectionLost,
    FailureClass::ProtocolViolation,
];

fn first_attempt(elapsed: Duration) -> AttemptContext {
    AttemptContext {
        attempt: 1,
        elapsed,
        reached_worker: true,
        idempotent: true,
    }
}

#[test]
fn the_first_retry_after_a_lost_worker_goes_at_once_and_later_ones_back_off() {
    let policy = policy();
    for failure in WORKER_LOST {
        let first = policy.decide(
            &failure,
            &first_attempt(ELAPSED_WITHIN),
            &mut FixedRandom(0.5),
        );
        assert_eq!(
            first.request,
            RequestAction::Retry {
                delay: Duration::ZERO
            },
            "{failure}"
        );
        assert_eq!(first.worker, REPLACE, "{failure}");
        let second = AttemptContext {
            attempt: 2,
            ..first_attempt(ELAPSED_WITHIN)
        };
        assert_eq!(
            policy
                .decide(&failure, &second, &mut FixedRandom(0.5))
                .request,
            RequestAction::Retry {
                delay: DELAY_AFTER_ATTEMPT_WITHIN
            },
            "{failure}"
        );
    }
}

#[test]
fn spawn_failures_deadlines_and_degraded_workers_back_off_from_the_first_retry() {
    let policy = policy();
    for failure in [
        FailureClass::SpawnFailed,
        FailureClass::HandshakeTimeout,
        FailureClass::WorkerInternalError,
        FailureClass::DeadlineExceeded,
    ] {
        let decision = policy.decide(
            &failure,
            &first_attempt(ELAPSED_WITHIN),
            &mut FixedRandom(0.5),
        );
        assert_eq!(
            decision.request,
            RequestAction::Retry {
                delay: Duration::from_millis(50)
            },
            "{failure}"
        );
    }
}

#[test]
fn the_retry_at_once_keeps_the_safety_and_budget_rules() {
    let policy = policy();
    let lost = FailureClass::WorkerExited {
        code: None,
        signal: Some(9),
    };
    let not_idempotent = AttemptContext {
        idempotent: false,
        ..first_attempt(ELAPSED_WITHIN)
    };
    assert_eq!(
        policy
            .decide(&lost, &not_idempotent, &mut FixedRandom(0.5))
            .request,
        RequestAction::ReturnError
    );
    let single = RecoveryPolicy::new(RecoveryConfig {
        max_attempts: 1,
        ..RecoveryConfig::default()
    });
    assert_eq!(
        single
            .decide(&lost, &first_attempt(ELAPSED_WITHIN), &mut FixedRandom(0.5))
            .request,
        RequestAction::ReturnError
    );
    let at_budget = first_attempt(Duration::from_secs(30));
    assert_eq!(
        policy
            .decide(&lost, &at_budget, &mut FixedRandom(0.5))
            .request,
        RequestAction::Retry {
            delay: Duration::ZERO
        }
    );
    let past_budget = first_attempt(Duration::from_secs(30) + Duration::from_nanos(1));
    assert_eq!(
        policy
            .decide(&lost, &past_budget, &mut FixedRandom(0.5))
            .request,
        RequestAction::ReturnError
    );
}

#[test]
fn the_retry_at_once_can_be_switched_off() {
    let policy = RecoveryPolicy::new(RecoveryConfig {
        jitter: Jitter::None,
        first_retry_at_once_after_worker_loss: false,
        ..RecoveryConfig::default()
    });
    for failure in WORKER_LOST {
        assert_eq!(
            policy
                .decide(
                    &failure,
                    &first_attempt(ELAPSED_WITHIN),
                    &mut FixedRandom(0.5)
                )
                .request,
            RequestAction::Retry {
                delay: Duration::from_millis(50)
            },
            "{failure}"
        );
    }
}

//! Properties of the recovery policy over random failures, contexts,
//! configurations and random sources.

use std::time::Duration;

use proptest::prelude::*;
use pypool_recovery::{
    AttemptContext, FailureClass, Jitter, RecoveryConfig, RecoveryPolicy, RequestAction,
    SequenceRandom, WorkerAction,
};

const CASES: u32 = 2_000;

fn failure() -> impl Strategy<Value = FailureClass> {
    prop_oneof![
        Just(FailureClass::SpawnFailed),
        Just(FailureClass::HandshakeTimeout),
        Just(FailureClass::CheckoutTimeout),
        Just(FailureClass::DeadlineExceeded),
        (any::<Option<i32>>(), any::<Option<i32>>())
            .prop_map(|(code, signal)| FailureClass::WorkerExited { code, signal }),
        Just(FailureClass::ConnectionLost),
        Just(FailureClass::ProtocolViolation),
        Just(FailureClass::WorkerInternalError),
        Just(FailureClass::PythonException),
        Just(FailureClass::InvalidInput),
        Just(FailureClass::Overloaded),
        Just(FailureClass::BreakerOpen),
    ]
}

/// Durations from nothing to a few minutes, with the extremes mixed in.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        8 => (0u64..300_000_000_000).prop_map(Duration::from_nanos),
        1 => Just(Duration::ZERO),
        1 => Just(Duration::MAX),
    ]
}

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![Just(Jitter::None), Just(Jitter::Full), Just(Jitter::Equal)]
}

fn config() -> impl Strategy<Value = RecoveryConfig> {
    (
        0u32..8,
        duration(),
        duration(),
        duration(),
        jitter(),
        any::<bool>(),
    )
        .prop_map(
            |(max_attempts, max_elapsed, base_delay, max_delay, jitter, at_once)| RecoveryConfig {
                max_attempts,
                max_elapsed,
                base_delay,
                max_delay,
                jitter,
                first_retry_at_once_after_worker_loss: at_once,
            },
        )
}

fn context() -> impl Strategy<Value = AttemptContext> {
    (
        prop_oneof![0u32..10, Just(u32::MAX)],
        duration(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(attempt, elapsed, reached_worker, idempotent)| AttemptContext {
                attempt,
                elapsed,
                reached_worker,
                idempotent,
            },
        )
}

/// Random values including faulty ones (out of range, NaN).
fn random_values() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![
            8 => 0.0f64..1.0,
            1 => Just(f64::NAN),
            1 => -2.0f64..3.0,
        ],
        0..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn retry_delay_never_exceeds_max_delay_or_the_budget(
        failure in failure(), ctx in context(), config in config(), values in random_values(),
    ) {
        let decision = RecoveryPolicy::new(config).decide(&failure, &ctx, &mut SequenceRandom::new(values));
        if let RequestAction::Retry { delay } = decision.request {
            prop_assert!(delay <= config.max_delay, "{delay:?} > {:?}", config.max_delay);
            let resume_at = ctx.elapsed.checked_add(delay);
            prop_assert!(resume_at.is_some_and(|at| at <= config.max_elapsed));
        }
    }

    #[test]
    fn never_retries_once_attempts_are_used_up(
        failure in failure(), ctx in context(), config in config(), values in random_values(),
    ) {
        let decision = RecoveryPolicy::new(config).decide(&failure, &ctx, &mut SequenceRandom::new(values));
        if ctx.attempt >= config.max_attempts {
            prop_assert_eq!(decision.request, RequestAction::ReturnError);
        }
    }

    #[test]
    fn never_repeats_a_non_idempotent_request_that_reached_a_worker(
        failure in failure(), ctx in context(), config in config(), values in random_values(),
    ) {
        let decision = RecoveryPolicy::new(config).decide(&failure, &ctx, &mut SequenceRandom::new(values));
        if ctx.reached_worker && !ctx.idempotent {
            prop_assert_eq!(decision.request, RequestAction::ReturnError);
        }
    }

    #[test]
    fn a_python_exception_keeps_the_worker_and_is_not_retried(
        ctx in context(), config in config(), values in random_values(),
    ) {
        let decision = RecoveryPolicy::new(config)
            .decide(&FailureClass::PythonException, &ctx, &mut SequenceRandom::new(values));
        prop_assert_eq!(decision.worker, WorkerAction::Keep);
        prop_assert_eq!(decision.request, RequestAction::ReturnError);
    }

    #[test]
    fn a_protocol_violation_always_replaces_the_worker(
        ctx in context(), config in config(), values in random_values(),
    ) {
        let decision = RecoveryPolicy::new(config)
            .decide(&FailureClass::ProtocolViolation, &ctx, &mut SequenceRandom::new(values));
        prop_assert_eq!(decision.worker, WorkerAction::Remove { replace: true });
    }

    #[test]
    fn the_worker_action_does_not_depend_on_the_situation(
        failure in failure(), a in context(), b in context(), config in config(),
    ) {
        let policy = RecoveryPolicy::new(config);
        let first = policy.decide(&failure, &a, &mut SequenceRandom::new(vec![0.5]));
        let second = policy.decide(&failure, &b, &mut SequenceRandom::new(vec![0.5]));
        prop_assert_eq!(first.worker, second.worker);
    }

    #[test]
    fn decisions_are_deterministic(
        failure in failure(), ctx in context(), config in config(), values in random_values(),
    ) {
        let policy = RecoveryPolicy::new(config);
        let first = policy.decide(&failure, &ctx, &mut SequenceRandom::new(values.clone()));
        let second = policy.decide(&failure, &ctx, &mut SequenceRandom::new(values));
        prop_assert_eq!(first, second);
    }

    #[test]
    fn jitter_stays_within_its_band(
        attempt in 0u32..40, config in config(), value in 0.0f64..1.0,
    ) {
        let policy = RecoveryPolicy::new(config);
        let delay = policy.backoff(attempt, &mut SequenceRandom::new(vec![value]));
        let unjittered = RecoveryPolicy::new(RecoveryConfig { jitter: Jitter::None, ..config })
            .backoff(attempt, &mut SequenceRandom::new(vec![value]));
        prop_assert!(unjittered <= config.max_delay);
        prop_assert!(delay <= unjittered);
        match config.jitter {
            Jitter::None => prop_assert_eq!(delay, unjittered),
            Jitter::Equal => prop_assert!(delay >= unjittered / 2),
            Jitter::Full => {}
        }
    }

    #[test]
    fn unjittered_backoff_doubles_until_the_cap(attempt in 1u32..40, config in config()) {
        let policy = RecoveryPolicy::new(RecoveryConfig { jitter: Jitter::None, ..config });
        let mut rng = SequenceRandom::new(Vec::new());
        let now = policy.backoff(attempt, &mut rng);
        let next = policy.backoff(attempt + 1, &mut rng);
        prop_assert!(next >= now, "backoff shrank from {now:?} to {next:?}");
        if let Some(doubled) = now.checked_mul(2) {
            prop_assert_eq!(next, doubled.min(config.max_delay));
        } else {
            prop_assert_eq!(next, config.max_delay);
        }
    }
}

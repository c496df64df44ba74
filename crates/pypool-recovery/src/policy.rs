//! The decision itself.

use std::time::Duration;

use crate::backoff::{apply_jitter, exponential_delay};
use crate::{
    AttemptContext, Decision, FailureClass, RandomSource, RecoveryConfig, RequestAction,
    WorkerAction,
};

/// Decides, for each failed attempt, whether to retry the request and what to
/// do with the worker. Cheap to share; every method is a pure function of its
/// arguments and the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RecoveryPolicy {
    config: RecoveryConfig,
}

/// What a class of failure implies before the attempt's circumstances are known.
struct ClassRule {
    /// What happens to the worker.
    worker: WorkerAction,
    /// Whether the failure is worth retrying at all (if it is safe and in budget).
    retryable: bool,
    /// Whether the failure took a worker that had started away (its first
    /// retry may go at once: it meets another worker).
    worker_lost: bool,
}

const REPLACE: WorkerAction = WorkerAction::Remove { replace: true };

fn rule_for(failure: &FailureClass) -> ClassRule {
    use FailureClass as F;
    let (worker, retryable) = match failure {
        // No worker to keep: the slot needs a replacement (which the spawn
        // breaker rate-limits). The request never ran, so another try is safe.
        F::SpawnFailed | F::HandshakeTimeout => (REPLACE, true),
        // The worker's state can no longer be trusted.
        F::DeadlineExceeded | F::WorkerExited { .. } | F::ConnectionLost | F::ProtocolViolation => {
            (REPLACE, true)
        }
        // Still serving, but its runtime misbehaved: suspect it, try elsewhere.
        F::WorkerInternalError => (WorkerAction::Degrade, true),
        // The user's deterministic error, or bad input: the same again would
        // fail the same way, and the worker is fine.
        F::PythonException | F::InvalidInput => (WorkerAction::Keep, false),
        // The pool is saturated or the command is failing: retrying here only
        // adds load; the caller should back off.
        F::CheckoutTimeout | F::Overloaded | F::BreakerOpen => (WorkerAction::Keep, false),
    };
    // Not `DeadlineExceeded`: that worker first gets a cancel and a grace,
    // and may still take requests meanwhile.
    let worker_lost = matches!(
        failure,
        F::WorkerExited { .. } | F::ConnectionLost | F::ProtocolViolation
    );
    ClassRule {
        worker,
        retryable,
        worker_lost,
    }
}

impl RecoveryPolicy {
    /// A policy with `config`. Any configuration is accepted (see
    /// [`RecoveryConfig::validate`] to reject nonsense early): 0 attempts
    /// behaves like 1 and a base delay above the cap is capped.
    pub fn new(config: RecoveryConfig) -> Self {
        Self { config }
    }

    /// The configuration this policy applies.
    pub fn config(&self) -> &RecoveryConfig {
        &self.config
    }

    /// Decides what to do after `failure` ended the attempt described by `ctx`.
    ///
    /// Total and allocation-free. `rng` is drawn from at most once, and only
    /// when a retry is otherwise allowed. A retry is returned only if the class
    /// is worth retrying, it is safe (`!ctx.reached_worker || ctx.idempotent`),
    /// `ctx.attempt < max_attempts`, and `ctx.elapsed + delay <= max_elapsed`.
    pub fn decide(
        &self,
        failure: &FailureClass,
        ctx: &AttemptContext,
        rng: &mut dyn RandomSource,
    ) -> Decision {
        let rule = rule_for(failure);
        let request = if rule.retryable && is_safe_to_repeat(ctx) {
            if ctx.attempt.max(1) == 1
                && rule.worker_lost
                && self.config.first_retry_at_once_after_worker_loss
            {
                self.retry_at_once(ctx)
            } else {
                self.retry_within_budget(ctx, rng)
            }
        } else {
            RequestAction::ReturnError
        };
        Decision {
            request,
            worker: rule.worker,
        }
    }

    /// The jittered delay to wait after the 1-based `attempt` failed:
    /// `min(max_delay, base_delay * 2^(attempt-1))`, then jitter. Never above
    /// `max_delay`. Also useful on its own, e.g. to pace replacement spawns.
    pub fn backoff(&self, attempt: u32, rng: &mut dyn RandomSource) -> Duration {
        let delay = exponential_delay(self.config.base_delay, self.config.max_delay, attempt);
        apply_jitter(delay, self.config.jitter, rng)
    }

    /// The first retry after the worker was lost: no delay (and no random
    /// draw), within the same attempt and time budget.
    fn retry_at_once(&self, ctx: &AttemptContext) -> RequestAction {
        if ctx.attempt.max(1) >= self.config.max_attempts || ctx.elapsed > self.config.max_elapsed {
            return RequestAction::ReturnError;
        }
        RequestAction::Retry {
            delay: Duration::ZERO,
        }
    }

    fn retry_within_budget(
        &self,
        ctx: &AttemptContext,
        rng: &mut dyn RandomSource,
    ) -> RequestAction {
        if ctx.attempt.max(1) >= self.config.max_attempts {
            return RequestAction::ReturnError;
        }
        let delay = self.backoff(ctx.attempt, rng);
        match ctx.elapsed.checked_add(delay) {
            Some(resume_at) if resume_at <= self.config.max_elapsed => {
                RequestAction::Retry { delay }
            }
            _ => RequestAction::ReturnError,
        }
    }
}

/// Running the request again cannot do harm: it never reached a worker, or
/// the command says running it twice is harmless.
fn is_safe_to_repeat(ctx: &AttemptContext) -> bool {
    !ctx.reached_worker || ctx.idempotent
}

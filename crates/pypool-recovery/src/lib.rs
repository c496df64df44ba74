//! The recovery policy of pypool: after a request fails, classify the failure
//! and decide whether to retry the request and what to do with the worker.
//!
//! The pool facade calls [`RecoveryPolicy::decide`] on every failed attempt and
//! acts on the [`Decision`]: it sleeps for the retry delay (on tokio's pausable
//! clock), removes, replaces or degrades the worker, and maps the
//! [`WorkerAction`] onto the lifecycle crate's severities (`Keep` → harmless,
//! `Degrade` → suspect, `Remove` → fatal). The old system had a recovery policy
//! that was written and never wired in; this one is small, total (no panics, no
//! errors: every input has an answer) and allocation-free, so calling it on the
//! request path costs nothing.
//!
//! This crate must NOT know about tokio, I/O, processes, the seam's error types,
//! the lifecycle crate or any global state (no global RNG, no clock): time
//! arrives as durations in [`AttemptContext`], randomness through a
//! [`RandomSource`] the caller passes in.
//!
//! # Rules
//!
//! A retry is only ever returned when it is **safe** — the request never
//! reached a worker, or the command is declared idempotent — and **in budget**:
//! `attempt < max_attempts` and `elapsed + delay <= max_elapsed`.
//!
//! | failure | worker | retried (if safe and in budget) |
//! |---|---|---|
//! | `SpawnFailed`, `HandshakeTimeout` | remove, replace | yes (it never reached a worker) |
//! | `DeadlineExceeded` | remove, replace (its state can't be trusted) | yes |
//! | `WorkerExited` (mid-request) | remove, replace | yes |
//! | `ConnectionLost` | remove, replace | yes |
//! | `ProtocolViolation` | remove, replace — always | yes |
//! | `WorkerInternalError` | degrade (suspect) | yes |
//! | `PythonException` | keep — a user's error never costs a healthy worker | no: it is deterministic |
//! | `InvalidInput` | keep | no |
//! | `CheckoutTimeout`, `Overloaded`, `BreakerOpen` | keep | no: the caller should back off |
//!
//! For a failure after the request was written to a worker, "safe" means
//! idempotent; the facade reports `reached_worker: false` for failures that
//! happen before (spawn failures, a request that could not be written).
//!
//! # Backoff
//!
//! The delay after the 1-based attempt `n` fails is
//! `min(max_delay, base_delay * 2^(n-1))`, then [`Jitter`]: `Full` picks a
//! delay in `[0, d]`, `Equal` (the default) in `[d/2, d]`. The arithmetic is
//! exact and saturating, so no configuration or attempt number can overflow.
//!
//! One exception, on by default
//! ([`RecoveryConfig::first_retry_at_once_after_worker_loss`]): the *first*
//! retry after a failure that removed a started worker (`WorkerExited`,
//! `ConnectionLost`, `ProtocolViolation`) has no delay. The failing worker is
//! gone, so the retry meets another one (or waits in the queue for the
//! replacement); a backoff there would only stall every request a crash
//! caught on a shared worker. Spawn failures, deadlines (that worker gets a
//! cancel and a grace first, and may take requests meanwhile) and later
//! retries back off as above.
//!
//! # Why a pure function and not `backon`
//!
//! `backon` is a fine retry loop, but it *owns* the loop: it sleeps itself
//! (through whatever sleeper it is given) and draws jitter from its own RNG.
//! Here the retry decision also depends on *what* failed and *where* (did the
//! request reach a worker, is the command idempotent), it has a second output
//! (what to do with the worker) that must be acted on even when no retry
//! follows, and it must be deterministic in tests. So the policy is a pure
//! function of (failure, attempt context, random source) and the facade owns
//! the sleeping, through tokio's pausable time: tests advance time by hand and
//! replay jitter from a [`SequenceRandom`].
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use pypool_recovery::{
//!     AttemptContext, FailureClass, FixedRandom, RecoveryConfig, RecoveryPolicy,
//!     RequestAction, WorkerAction, SeededRandom,
//! };
//!
//! let policy = RecoveryPolicy::new(RecoveryConfig::default());
//! let mut rng = FixedRandom(0.5);
//!
//! // The worker was killed mid-request running an idempotent command:
//! // replace the worker, retry at once (the dead worker cannot be met again).
//! let crashed = FailureClass::WorkerExited { code: None, signal: Some(9) };
//! let ctx = AttemptContext {
//!     attempt: 1,
//!     elapsed: Duration::from_millis(120),
//!     reached_worker: true,
//!     idempotent: true,
//! };
//! let decision = policy.decide(&crashed, &ctx, &mut rng);
//! assert_eq!(decision.worker, WorkerAction::Remove { replace: true });
//! assert_eq!(decision.request, RequestAction::Retry { delay: Duration::ZERO });
//!
//! // If the retry's worker dies too, the next retry backs off:
//! // 50 ms * 2 with equal jitter at 0.5 → 75 ms.
//! let again = AttemptContext { attempt: 2, ..ctx };
//! assert_eq!(
//!     policy.decide(&crashed, &again, &mut rng).request,
//!     RequestAction::Retry { delay: Duration::from_micros(75_000) }
//! );
//!
//! // The same crash on a command that is not idempotent may have had effects:
//! // the error goes back to the caller.
//! let unsafe_ctx = AttemptContext { idempotent: false, ..ctx };
//! let decision = policy.decide(&crashed, &unsafe_ctx, &mut rng);
//! assert_eq!(decision.request, RequestAction::ReturnError);
//!
//! // A Python exception is the user's error: the worker stays.
//! let decision = policy.decide(&FailureClass::PythonException, &ctx, &mut rng);
//! assert_eq!(decision.worker, WorkerAction::Keep);
//! assert_eq!(decision.request, RequestAction::ReturnError);
//!
//! // In production, seed a small generator once per pool.
//! let mut production_rng = SeededRandom::new(0x5eed);
//! let delay = policy.backoff(3, &mut production_rng);
//! assert!(delay >= Duration::from_millis(100) && delay <= Duration::from_millis(200));
//! ```

mod backoff;
mod config;
mod decision;
mod failure;
mod policy;
mod random;

pub use backoff::Jitter;
pub use config::{ConfigError, RecoveryConfig};
pub use decision::{AttemptContext, Decision, RequestAction, WorkerAction};
pub use failure::FailureClass;
pub use policy::RecoveryPolicy;
pub use random::{FixedRandom, RandomSource, SeededRandom, SequenceRandom};

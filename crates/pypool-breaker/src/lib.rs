//! A circuit breaker for pypool, with an injected clock.
//!
//! A [`CircuitBreaker`] is **closed** while calls flow. It **opens** after
//! `consecutive_failures` failures in a row (default 5), or, if
//! [`BreakerConfig::failure_rate`] is set, when the failure rate over a rolling
//! time window reaches a threshold. While open it rejects every call with
//! [`Rejected`] `{ retry_after }`. Once `reset_timeout` (default 5 s) has passed
//! it turns **half-open** — lazily, on the next [`CircuitBreaker::try_acquire`],
//! [`CircuitBreaker::state`] or [`CircuitBreaker::snapshot`] — and admits at
//! most `half_open_probes` probe calls at a time (default 1), rejecting all
//! others. When `half_open_successes_to_close` probes have succeeded it closes;
//! any failed probe reopens it and restarts the reset timeout.
//!
//! ```text
//!            N failures in a row / rate >= threshold
//!   Closed ───────────────────────────────────────────► Open
//!     ▲                                                 │  ▲
//!     │ enough probes succeed      reset_timeout passed │  │ a probe fails
//!     └──────────────────────── HalfOpen ◄──────────────┘  │
//!                                  └───────────────────────┘
//! ```
//!
//! Every admission is a [`Permit`]; resolve it with [`CircuitBreaker::record`]
//! (success or failure) or [`CircuitBreaker::release`] (cancelled, counts as
//! neither). A permit carries the breaker's generation, so the outcome of a
//! call admitted before the breaker changed state is ignored: a success from
//! before a trip cannot close the breaker again.
//!
//! This crate must NOT know about tokio, I/O, workers, commands or global
//! state: time comes only from the [`pypool_clock::SharedClock`] it is given
//! (tests use [`pypool_clock::ManualClock`] and never sleep), and nothing in
//! it blocks or waits — an open breaker answers at once with how long to wait.
//!
//! # Where the pool uses breakers
//!
//! 1. **Spawning workers.** Spawn failures (and handshake timeouts) feed one
//!    breaker per pool, so a broken interpreter or a handler module that fails
//!    to import does not cause a spawn storm: while the breaker is open,
//!    replacement spawns wait for `retry_after`, and when it turns half-open a
//!    single probe spawn decides whether spawning works again.
//! 2. **Per command.** Failures that are the worker's or the downstream's
//!    fault (deadlines, crashes, a model API behind the handler returning
//!    errors) feed that command's breaker, so one failing downstream does not
//!    drown the pool in doomed requests: while it is open, the command is
//!    rejected fast with a typed error (`PoolError::CircuitOpen`) that says
//!    when to retry. The caller's own mistakes (invalid input) are recorded as
//!    successes or released, never as failures.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use pypool_breaker::{BreakerConfig, BreakerState, CallOutcome, CircuitBreaker};
//! use pypool_clock::ManualClock;
//!
//! let clock = ManualClock::new();
//! let config = BreakerConfig {
//!     consecutive_failures: 2,
//!     reset_timeout: Duration::from_secs(5),
//!     ..BreakerConfig::default()
//! };
//! let mut breaker = CircuitBreaker::new(config, Arc::new(clock.clone()));
//!
//! for _ in 0..2 {
//!     let permit = breaker.try_acquire()?;
//!     breaker.record(permit, CallOutcome::Failure);
//! }
//! assert_eq!(breaker.state(), BreakerState::Open);
//!
//! clock.advance(Duration::from_millis(3_800));
//! let rejected = breaker.try_acquire().unwrap_err();
//! assert_eq!(rejected.retry_after, Duration::from_millis(1_200));
//! assert_eq!(rejected.to_string(), "circuit open; retry in 1.2s");
//!
//! clock.advance(Duration::from_millis(1_200));
//! let probe = breaker.try_acquire()?;
//! assert!(probe.is_probe());
//! assert!(breaker.try_acquire().is_err(), "one probe at a time");
//! breaker.record(probe, CallOutcome::Success);
//! assert_eq!(breaker.state(), BreakerState::Closed);
//! # Ok::<(), pypool_breaker::Rejected>(())
//! ```

mod breaker;
mod config;
mod permit;
mod state;
mod window;

pub use breaker::CircuitBreaker;
pub use config::{BUCKETS_PER_WINDOW, BreakerConfig, ConfigError, RateTrip};
pub use permit::{CallOutcome, Permit, Rejected};
pub use state::{BreakerSnapshot, BreakerState};

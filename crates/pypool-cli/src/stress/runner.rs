//! Running the workload against a pool: bounded concurrency, a guard on
//! every request, chaos between completions, and an account of every
//! request started.

use std::sync::Arc;
use std::time::Duration;

use pypool::{Pool, PoolError, ProgramSpec, Session};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::chaos::{Chaos, Strike};
use super::check::{WRONG_RESULT, check};
use super::progress::{Bar, run_message};
use super::tally::{RequestEnd, Tally};
use super::workload::{
    GLOBAL_PROGRAMS, Op, SESSION_PROGRAM, SUMMARIZE_CALLABLE, global_program_id, session_id,
};

/// How many failures are logged one by one (at debug level) before the rest are only counted.
const LOGGED_FAILURES: u64 = 20;

/// What the workload runs against: the pool, its sessions (each owning a
/// program) and the global programs, all created by [`Target::prepare`].
#[derive(Debug)]
pub struct Target {
    pool: Pool,
    sessions: Vec<Session>,
}

impl Target {
    /// Creates the global programs and `sessions` sessions, each with its
    /// own program (all running [`SUMMARIZE_CALLABLE`]).
    pub async fn prepare(pool: Pool, sessions: usize) -> Result<Self, PoolError> {
        for index in 0..GLOBAL_PROGRAMS {
            pool.create_program(
                &global_program_id(index),
                ProgramSpec::python(SUMMARIZE_CALLABLE),
            )
            .await?;
        }
        let mut handles = Vec::with_capacity(sessions);
        for index in 0..sessions {
            let session = pool.session(&session_id(index))?;
            session
                .create_program(SESSION_PROGRAM, ProgramSpec::python(SUMMARIZE_CALLABLE))
                .await?;
            handles.push(session);
        }
        Ok(Self {
            pool,
            sessions: handles,
        })
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Runs one operation.
    pub async fn execute(&self, op: &Op) -> Result<Value, PoolError> {
        match op {
            Op::SessionProgram {
                session,
                text,
                max_words,
            } => {
                let inputs = json!({ "text": text, "max_words": max_words });
                match self.sessions.get(*session) {
                    Some(session) => session.execute_program(SESSION_PROGRAM, inputs).await,
                    // Not generated (indices stay below the session count);
                    // the pool's own error keeps the account typed.
                    None => self.pool.execute_program("", inputs).await,
                }
            }
            Op::GlobalProgram {
                program,
                text,
                max_words,
            } => {
                let inputs = json!({ "text": text, "max_words": max_words });
                self.pool
                    .execute_program(&global_program_id(*program), inputs)
                    .await
            }
            Op::Primes { limit } => {
                self.pool
                    .execute("demo.primes", json!({ "limit": limit }))
                    .await
            }
            Op::WordStats { text, top } => {
                self.pool
                    .execute("demo.word_stats", json!({ "text": text, "top": top }))
                    .await
            }
            Op::Digest { data, rounds } => {
                self.pool
                    .execute("demo.digest", json!({ "data": data, "rounds": rounds }))
                    .await
            }
            Op::Custom(custom) => {
                self.pool
                    .execute(&custom.name, Value::Object(custom.args.clone()))
                    .await
            }
        }
    }

    /// Deletes the sessions and global programs the run created.
    pub async fn clean_up(self) {
        for session in self.sessions {
            // Best effort: a store that is away leaves the run's sessions behind.
            if let Err(error) = session.delete().await {
                tracing::warn!(%error, "could not delete a stress-run session");
            }
        }
        for index in 0..GLOBAL_PROGRAMS {
            let _ = self.pool.delete_program(&global_program_id(index)).await;
        }
    }
}

/// How the workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunConfig {
    /// Requests to run.
    pub requests: u64,
    /// Requests at once.
    pub concurrency: usize,
    /// A request that has not ended this long after it started is hung.
    pub guard: Duration,
    /// Strike (see [`Chaos`]) after every N completed requests.
    pub kill_every: Option<u64>,
}

/// What a signal cut short (see [`crate::interrupt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CutShort {
    /// The signal's name.
    pub signal: &'static str,
    /// Requests of the run never started.
    pub not_started: u64,
    /// Requests in flight when the signal came.
    pub in_flight: u64,
    /// Of those, how many finished with a result in the grace period.
    pub finished: u64,
    /// Of those, how many ended otherwise (failed, or killed at the deadline).
    pub cut_short: u64,
    /// Whether the pool's shutdown drained before its deadline.
    pub drained: bool,
}

impl std::fmt::Display for CutShort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted by {}: {} requests not started; of {} in flight, {} finished and {} \
             were cut short ({})",
            self.signal,
            self.not_started,
            self.in_flight,
            self.finished,
            self.cut_short,
            if self.drained {
                "the pool drained"
            } else {
                "workers still busy at the deadline were killed"
            }
        )
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Every request's account.
    pub tally: Tally,
    /// Every chaos strike, in order.
    pub strikes: Vec<Strike>,
    /// From the first request's start to the last one's end.
    pub wall: Duration,
    /// Set when a SIGINT/SIGTERM stopped the run early.
    pub interrupted: Option<CutShort>,
}

/// Runs `config.requests` operations from `ops` against `target`, at most
/// `config.concurrency` at once. Every request runs in its own task under
/// a guard; every task is joined, so each request started ends up ended,
/// hung or (if its task vanished) lost.
pub async fn run(
    target: Arc<Target>,
    ops: impl Iterator<Item = Op>,
    config: RunConfig,
    chaos: &mut dyn Chaos,
    bar: &Bar,
) -> RunResult {
    let mut state = RunState {
        tally: Tally::new(),
        strikes: Vec::new(),
        completed: 0,
        config,
    };
    let concurrency = config.concurrency.max(1);
    let requests = usize::try_from(config.requests).unwrap_or(usize::MAX);
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    let mut launched: u64 = 0;
    let mut signalled = None;
    'launch: for op in ops.take(requests) {
        while tasks.len() >= concurrency {
            tokio::select! {
                biased;
                received = crate::interrupt::wait() => {
                    signalled = Some(received);
                    break 'launch;
                }
                joined = tasks.join_next() => match joined {
                    Some(joined) => state.record(joined, &target, chaos, bar),
                    None => break,
                },
            }
        }
        if let Some(received) = crate::interrupt::requested() {
            signalled = Some(received);
            break;
        }
        state.tally.start(op.kind());
        tasks.spawn(perform(Arc::clone(&target), op, config.guard));
        launched += 1;
    }
    if signalled.is_none() {
        loop {
            tokio::select! {
                biased;
                received = crate::interrupt::wait() => {
                    signalled = Some(received);
                    break;
                }
                joined = tasks.join_next() => match joined {
                    Some(joined) => state.record(joined, &target, chaos, bar),
                    None => break,
                },
            }
        }
    }
    let interrupted = match signalled {
        None => None,
        Some(received) => Some(
            cut_short(
                &mut state, &mut tasks, &target, received, launched, chaos, bar,
            )
            .await,
        ),
    };
    RunResult {
        tally: state.tally,
        strikes: state.strikes,
        wall: started.elapsed(),
        interrupted,
    }
}

/// After a signal: no new request; the pool shuts down with the grace
/// period as its deadline while the requests in flight end (finished, or
/// cut short when their worker is killed at the deadline).
async fn cut_short(
    state: &mut RunState,
    tasks: &mut JoinSet<RequestEnd>,
    target: &Target,
    received: crate::interrupt::Interruption,
    launched: u64,
    chaos: &mut dyn Chaos,
    bar: &Bar,
) -> CutShort {
    let in_flight = tasks.len() as u64;
    let ok_before = state.tally.succeeded;
    state.config.kill_every = None;
    let pool = target.pool().clone();
    let shutdown = tokio::spawn(async move { pool.shutdown(crate::interrupt::GRACE).await });
    while let Some(joined) = tasks.join_next().await {
        state.record(joined, target, chaos, bar);
    }
    let drained = shutdown.await.map(|report| report.drained).unwrap_or(false);
    let finished = state.tally.succeeded - ok_before;
    CutShort {
        signal: received.name(),
        not_started: state.config.requests.saturating_sub(launched),
        in_flight,
        finished,
        cut_short: in_flight.saturating_sub(finished),
        drained,
    }
}

/// The run's running account.
struct RunState {
    tally: Tally,
    strikes: Vec<Strike>,
    completed: u64,
    config: RunConfig,
}

impl RunState {
    fn record(
        &mut self,
        joined: Result<RequestEnd, tokio::task::JoinError>,
        target: &Target,
        chaos: &mut dyn Chaos,
        bar: &Bar,
    ) {
        match joined {
            Ok(end) => {
                if let RequestEnd::Ended {
                    outcome: Err((kind, detail)),
                    ..
                } = &end
                {
                    if self.tally.failed() < LOGGED_FAILURES {
                        tracing::debug!(kind, detail, "request failed");
                    }
                }
                self.tally.finish(end);
            }
            Err(error) => {
                tracing::error!(%error, "a request's task ended without an outcome");
                self.tally.vanish();
            }
        }
        self.completed += 1;
        if let Some(every) = self.config.kill_every {
            if every > 0 && self.completed % every == 0 && self.completed < self.config.requests {
                self.strikes.push(chaos.strike(target.pool()));
            }
        }
        bar.step();
        let kills = self
            .strikes
            .iter()
            .filter(|strike| matches!(strike, Strike::Killed { .. }))
            .count() as u64;
        bar.message(run_message(self.tally.failed(), self.tally.hung, kills));
    }
}

/// One request under its guard.
async fn perform(target: Arc<Target>, op: Op, guard: Duration) -> RequestEnd {
    let kind = op.kind();
    let started = Instant::now();
    match tokio::time::timeout(guard, target.execute(&op)).await {
        Err(_) => {
            tracing::warn!(?op, ?guard, "request hung: no outcome within its guard");
            RequestEnd::Hung { kind }
        }
        Ok(result) => {
            let latency = started.elapsed();
            let outcome = match result {
                Ok(value) => check(&op, &value).map_err(|detail| (WRONG_RESULT.to_owned(), detail)),
                Err(error) => Err((error.kind().to_owned(), error.to_string())),
            };
            RequestEnd::Ended {
                kind,
                latency,
                outcome,
            }
        }
    }
}

//! `pypool stress`: start a pool, run a mixed workload with bounded
//! concurrency (and optional chaos), account for every request, report.
//!
//! The run is split so it can be tested on mock workers: [`run`] takes a
//! [`Plan`] holding an unbuilt [`PoolBuilder`] (real Python, or a mock
//! spawner in tests) and a [`Chaos`].

pub mod chaos;
pub mod check;
pub mod hosts;
pub mod progress;
pub mod report;
pub mod rng;
pub mod runner;
pub mod tally;
pub mod verdict;
pub mod workload;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pypool::{Pool, PoolBuilder, PoolError, RecoveryConfig, Timeouts};
use tokio::time::Instant;

use crate::options::StressSettings;
use chaos::Chaos;
use progress::Bar;
use report::{AffinitySummary, PoolSummary, Report, ReportInputs, RunSettings};
use runner::{RunConfig, Target};
use workload::{GLOBAL_PROGRAMS, Workload, WorkloadSpec};

/// The stress pool's name (its metrics' `pool` label).
pub const POOL_NAME: &str = "stress";
/// How long the pool may take to get back to full size after the run
/// (a spawn timeout, with margin).
pub const SETTLE_LIMIT: Duration = Duration::from_secs(40);
/// How long in-flight requests may take to finish at shutdown.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);
/// Slack on top of the longest time the pool itself may take.
const GUARD_MARGIN: Duration = Duration::from_secs(10);

/// Everything a stress run needs.
pub struct Plan {
    /// The pool to build (its size must be `settings.pool.workers`).
    pub builder: PoolBuilder,
    /// What to run.
    pub settings: StressSettings,
    /// The workload seed (already drawn when `settings.seed` is `None`).
    pub seed: u64,
    /// A request without an outcome after this long is hung.
    pub guard: Duration,
    /// What to do every `kill_every` requests.
    pub chaos: Box<dyn Chaos>,
    /// Whether to draw progress bars.
    pub progress: bool,
    /// How long to wait for the pool to get back to full size after the run.
    pub settle_limit: Duration,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("settings", &self.settings)
            .field("seed", &self.seed)
            .field("guard", &self.guard)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// The longest a request can legitimately take in a pool with `request`
/// as its request timeout and otherwise default timeouts and recovery: the
/// checkout wait, then every attempt (each may ship a program definition
/// again: two worker calls) and the retry budget, plus a margin. Past it
/// the pool failed to end the request: it is counted as hung.
pub fn guard_for(request: Duration) -> Duration {
    let timeouts = Timeouts::default();
    let recovery = RecoveryConfig::default();
    timeouts.checkout + request * (2 * recovery.max_attempts) + recovery.max_elapsed + GUARD_MARGIN
}

/// Runs the plan: start-up (with a progress bar), the workload, the wait
/// for the pool to get back to full size, a graceful shutdown, the report.
pub async fn run(plan: Plan) -> anyhow::Result<Report> {
    let settings = &plan.settings;
    let workers = settings.pool.workers;
    let started = Instant::now();
    let pool = plan.builder.build().context("cannot build the pool")?;
    let startup_bar = Bar::startup(plan.progress, workers);
    let ready = wait_ready(&pool, &startup_bar).await;
    startup_bar.clear();
    if let Err(error) = ready {
        pool.shutdown(SHUTDOWN_DEADLINE).await;
        return Err(error).context("the pool did not start");
    }
    let startup = started.elapsed();

    let target = match Target::prepare(pool.clone(), settings.sessions).await {
        Ok(target) => Arc::new(target),
        Err(error) => {
            pool.shutdown(SHUTDOWN_DEADLINE).await;
            return Err(error).context("cannot create the stress programs and sessions");
        }
    };
    let workload = Workload::new(WorkloadSpec {
        seed: plan.seed,
        sessions: settings.sessions,
        global_programs: GLOBAL_PROGRAMS,
        custom_command: settings.command.clone().map(Arc::new),
    });
    let config = RunConfig {
        requests: settings.requests,
        concurrency: settings.concurrency,
        guard: plan.guard,
        kill_every: settings.kill_every,
    };
    let run_bar = Bar::run(plan.progress, settings.requests);
    let mut chaos = plan.chaos;
    let result = runner::run(
        Arc::clone(&target),
        workload,
        config,
        chaos.as_mut(),
        &run_bar,
    )
    .await;
    run_bar.clear();
    if let Some(cut) = result.interrupted {
        // The runner already shut the pool down (graceful, then killed).
        let status = pool.status();
        let mut report = Report::new(ReportInputs {
            settings: run_settings(settings, plan.seed, plan.guard),
            startup,
            wall: result.wall,
            tally: &result.tally,
            strikes: &result.strikes,
            pool: PoolSummary::of(workers, &status),
            affinity: AffinitySummary::of(&status.counters),
        });
        report.interrupted = Some(cut);
        return Ok(report);
    }

    let settled = tokio::time::timeout(
        plan.settle_limit,
        pool.wait_until(|status| {
            status.ready >= status.size && status.starting == 0 && status.retiring == 0
        }),
    )
    .await;
    let status = match settled {
        Ok(status) => status,
        Err(_) => pool.status(),
    };
    if let Ok(target) = Arc::try_unwrap(target) {
        target.clean_up().await;
    }
    pool.shutdown(SHUTDOWN_DEADLINE).await;

    Ok(Report::new(ReportInputs {
        settings: run_settings(settings, plan.seed, plan.guard),
        startup,
        wall: result.wall,
        tally: &result.tally,
        strikes: &result.strikes,
        pool: PoolSummary::of(workers, &status),
        affinity: AffinitySummary::of(&status.counters),
    }))
}

fn run_settings(settings: &StressSettings, seed: u64, guard: Duration) -> RunSettings {
    RunSettings {
        workers: settings.pool.workers,
        requests: settings.requests,
        concurrency: settings.concurrency,
        sessions: settings.sessions,
        kill_every: settings.kill_every,
        seed,
        command: settings
            .command
            .as_ref()
            .map(|command| command.name.clone()),
        handlers: settings.pool.handlers.clone(),
        request_timeout_s: settings.pool.request_timeout.as_secs_f64(),
        guard_s: guard.as_secs_f64(),
    }
}

/// Waits for the pool to be ready, moving the bar as workers come up.
async fn wait_ready(pool: &Pool, bar: &Bar) -> Result<(), PoolError> {
    let ready = pool.ready();
    tokio::pin!(ready);
    let mut shown = usize::MAX;
    loop {
        let current = shown;
        tokio::select! {
            biased;
            result = &mut ready => {
                bar.set(pool.status().ready as u64);
                return result;
            }
            status = pool.wait_until(move |status| status.ready != current) => {
                shown = status.ready;
                bar.set(shown as u64);
            }
        }
    }
}

//! The chaos workload: no-op throughput with a worker SIGKILLed after every
//! 1,000 answered requests, against the same pool without kills.
//!
//! The three contestants of each start method (no kills; kills with the
//! default settings; kills with the command breaker off) run side by side:
//! all three pools are started first, then each gets its turn in short
//! slices, the order rotating, until each has had its whole window. A change
//! in the machine's load during the run (other processes, frequency) meets
//! all three alike, so the ratio between them is steadier than with one long
//! run after another.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pypool::Pool;
use serde_json::Value;

use crate::load;
use crate::procfs;
use crate::report::{Goal, Workload};
use crate::startup::{Launch, Preload, fork_vs_spawn, ping_worker, pool, start};
use crate::workloads::{CALLERS, Context, NOOP_WORKERS, pool_error};

/// Requests between two SIGKILLs.
const KILL_EVERY: u64 = 1_000;

/// How many slices each contestant's window is cut into.
const SLICES: u32 = 8;

/// No-op throughput with a SIGKILL every 1,000 requests vs without.
pub async fn chaos(context: &Context) -> Workload {
    let window = context.plan.chaos_window;
    let mut workload = Workload::new(
        "chaos",
        "Chaos: no-op throughput with a SIGKILL every 1,000 requests",
        &format!(
            "pypool's built-in `ping`, {NOOP_WORKERS} stdlib workers, {CALLERS} callers, {:.0} s \
             each: without chaos; then with a worker's Python process SIGKILLed after every 1,000 \
             answered requests, once with the pool's default settings and once with the command \
             circuit breaker off (`consecutive_failures: u32::MAX`). The three pools run side by \
             side: each gets its turn in {SLICES} slices of {:.0} ms, the order rotating, so a \
             change in the machine's load meets all three alike. A killed worker fails the \
             requests it held (up to its capacity, 64); they are retried by the pool. Failed \
             requests are counted, not retried by the caller; the goal is held by the run without \
             the breaker (the cost of replacing workers).",
            window.as_secs_f64(),
            (window / SLICES).as_secs_f64() * 1000.0
        ),
    );
    workload.parameter("workers", NOOP_WORKERS);
    workload.parameter("callers", CALLERS);
    workload.parameter("window_s", window.as_secs_f64());
    workload.parameter("slices", SLICES);
    workload.parameter("kill_every", KILL_EVERY);
    for &launch in Launch::ALL {
        measure(context, launch, window, &mut workload).await;
    }
    for run in [ChaosRun::Calm, ChaosRun::BreakerOff] {
        fork_vs_spawn(
            &mut workload,
            run.name(),
            match run {
                ChaosRun::Calm => "answered without chaos",
                _ => "answered with chaos, command breaker off",
            },
            None,
        );
    }
    workload
}

/// The three contestants of one start method, interleaved; their figures and
/// ratios go into `workload`.
async fn measure(context: &Context, launch: Launch, window: Duration, workload: &mut Workload) {
    let prefix = launch.name();
    let mut contestants = Vec::new();
    for run in ChaosRun::ALL {
        match Contestant::start(context, launch, run).await {
            Ok(contestant) => contestants.push(contestant),
            Err(error) => workload.fail(format!("{prefix}_{}: {error}", run.name())),
        }
    }
    let slice = window / SLICES;
    let mut tallies: Vec<load::Throughput> = contestants
        .iter()
        .map(|_| load::Throughput::default())
        .collect();
    for round in 0..SLICES as usize {
        for turn in 0..contestants.len() {
            let index = (turn + round) % contestants.len();
            let measured = contestants[index].slice(slice).await;
            tallies[index].absorb(measured);
        }
    }
    for (contestant, throughput) in contestants.iter().zip(tallies) {
        contestant.pool.shutdown(Duration::from_secs(10)).await;
        report(workload, launch, contestant, &throughput);
    }
    workload.ratio(
        &format!("{prefix}_chaos_vs_calm"),
        &format!("chaos ÷ without chaos, command breaker off ({prefix})"),
        &format!("{prefix}_{}", ChaosRun::BreakerOff.name()),
        &format!("{prefix}_{}", ChaosRun::Calm.name()),
        launch.holds_goals().then_some(Goal::AtLeast(0.8)),
    );
    workload.ratio(
        &format!("{prefix}_chaos_defaults_vs_calm"),
        &format!("chaos ÷ without chaos, default settings ({prefix})"),
        &format!("{prefix}_{}", ChaosRun::Defaults.name()),
        &format!("{prefix}_{}", ChaosRun::Calm.name()),
        None,
    );
}

/// One contestant's figures.
fn report(
    workload: &mut Workload,
    launch: Launch,
    contestant: &Contestant,
    throughput: &load::Throughput,
) {
    let run = contestant.run;
    let id = format!("{}_{}", launch.name(), run.name());
    let label = format!("pypool ({}), {}", launch.name(), run.label());
    workload.figure(
        &id,
        &format!("{label}: answered"),
        throughput.per_second(),
        "requests/s",
        None,
    );
    if run == ChaosRun::Calm {
        if let Some(error) = &throughput.first_error {
            workload.fail(format!("{id}: a request failed without chaos: {error}"));
        }
        return;
    }
    if let Some(error) = &throughput.first_error {
        workload.parameter(&format!("{id}_first_error"), error.as_str());
    }
    workload.figure(
        &format!("{id}_kills"),
        &format!("{label}: workers killed"),
        contestant.kills.load(Ordering::Relaxed) as f64,
        "workers",
        None,
    );
    workload.figure(
        &format!("{id}_failed"),
        &format!("{label}: requests failed (typed errors)"),
        throughput.errors as f64,
        "requests",
        None,
    );
}

/// The three runs of the chaos workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChaosRun {
    /// No kills.
    Calm,
    /// Kills, the pool's default settings.
    Defaults,
    /// Kills, the command circuit breaker off.
    BreakerOff,
}

impl ChaosRun {
    const ALL: [ChaosRun; 3] = [ChaosRun::Calm, ChaosRun::Defaults, ChaosRun::BreakerOff];

    fn name(self) -> &'static str {
        match self {
            ChaosRun::Calm => "calm",
            ChaosRun::Defaults => "chaos_defaults",
            ChaosRun::BreakerOff => "chaos",
        }
    }

    fn label(self) -> &'static str {
        match self {
            ChaosRun::Calm => "without chaos",
            ChaosRun::Defaults => "a SIGKILL every 1,000 requests, default settings",
            ChaosRun::BreakerOff => "a SIGKILL every 1,000 requests, command breaker off",
        }
    }
}

/// A started pool and its kill schedule (which carries over between slices).
struct Contestant {
    run: ChaosRun,
    pool: Arc<Pool>,
    answered: Arc<AtomicU64>,
    kills: Arc<AtomicU64>,
}

impl Contestant {
    /// Starts the pool of `run` and warms each worker up.
    async fn start(context: &Context, launch: Launch, run: ChaosRun) -> Result<Self, String> {
        let mut builder = pool(context, launch, Preload::Stdlib, NOOP_WORKERS);
        if run == ChaosRun::BreakerOff {
            builder = builder.command_breaker(pypool::BreakerConfig {
                consecutive_failures: u32::MAX,
                ..pypool::BreakerConfig::default()
            });
        }
        let (pool, _) = start(builder).await?;
        for n in 0..NOOP_WORKERS as u64 * 4 {
            ping_worker(&pool, n).await?;
        }
        Ok(Self {
            run,
            pool: Arc::new(pool),
            answered: Arc::new(AtomicU64::new(0)),
            kills: Arc::new(AtomicU64::new(0)),
        })
    }

    /// `CALLERS` closed-loop callers for `window`; with chaos, the caller whose
    /// answer is the 1,000th since the last kill SIGKILLs a worker's Python
    /// process (the workers in turn).
    async fn slice(&self, window: Duration) -> load::Throughput {
        let with_chaos = self.run != ChaosRun::Calm;
        let (pool, answered, kills) = (
            Arc::clone(&self.pool),
            Arc::clone(&self.answered),
            Arc::clone(&self.kills),
        );
        load::closed_loop(CALLERS, window, move |n| {
            let (pool, answered, kills) =
                (Arc::clone(&pool), Arc::clone(&answered), Arc::clone(&kills));
            async move {
                let reply: Result<Value, String> = pool
                    .execute("ping", serde_json::json!({ "payload": n }))
                    .await
                    .map_err(pool_error);
                if reply.is_ok()
                    && with_chaos
                    && (answered.fetch_add(1, Ordering::Relaxed) + 1) % KILL_EVERY == 0
                {
                    kill_one(&pool, &kills);
                }
                reply.map(drop)
            }
        })
        .await
    }
}

/// SIGKILLs the Python process of one of `pool`'s workers (the next in turn).
fn kill_one(pool: &Pool, kills: &AtomicU64) {
    let pids: Vec<u32> = pool
        .status()
        .worker_details
        .iter()
        .filter_map(|worker| worker.reported_pid)
        .collect();
    if pids.is_empty() {
        return;
    }
    let victim = pids[(kills.load(Ordering::Relaxed) % pids.len() as u64) as usize];
    if procfs::sigkill(victim).is_ok() {
        kills.fetch_add(1, Ordering::Relaxed);
    }
}

//! The workloads about worker processes rather than requests: start-up of
//! 1/8/64 workers, replacement after SIGKILL and the PSS of 8 workers (the
//! chaos workload, in `chaos.rs`, borrows its pool helpers).
//!
//! Each runs once per [`Launch`] (how the pool starts its workers) and per
//! [`Preload`] (stdlib only, or DSPy imported before the handshake).

use std::path::Path;
use std::time::{Duration, Instant};

use pypool::{Pool, PoolBuilder, StartMethod};

use crate::procfs;
use crate::report::{Chart, Goal, Scale, Series, Workload};
use crate::workloads::{Context, pool_error, python_pool, script};

/// How the pool starts its workers; every workload of this module measures
/// each, and the goals are held by `fork` with `spawn` as its baseline.
/// Both set the builder's start method explicitly (its default depends on
/// the platform).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// Forked from a template that imported the preload once.
    Fork,
    /// A fresh interpreter per worker.
    Spawn,
}

impl Launch {
    /// The start modes measured, in order.
    pub const ALL: &'static [Launch] = &[Launch::Fork, Launch::Spawn];

    /// Short name used in figure ids.
    pub fn name(self) -> &'static str {
        match self {
            Launch::Fork => "fork",
            Launch::Spawn => "spawn",
        }
    }

    /// `builder` set to start its workers this way.
    pub fn configure(self, builder: PoolBuilder) -> PoolBuilder {
        match self {
            Launch::Fork => builder.start_method(StartMethod::Fork),
            Launch::Spawn => builder.start_method(StartMethod::Spawn),
        }
    }

    /// Whether the goals are judged on this mode's figures (the other is a
    /// baseline).
    pub(crate) fn holds_goals(self) -> bool {
        self == Launch::Fork
    }
}

/// Adds `fork ÷ spawn` of the figures `{fork,spawn}_{suffix}`.
pub(crate) fn fork_vs_spawn(
    workload: &mut Workload,
    suffix: &str,
    label: &str,
    goal: Option<Goal>,
) {
    workload.ratio(
        &format!("fork_vs_spawn_{suffix}"),
        &format!("fork ÷ spawn, {label}"),
        &format!("fork_{suffix}"),
        &format!("spawn_{suffix}"),
        goal,
    );
}

/// What a worker imports before its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preload {
    /// The worker runtime only (standard library).
    Stdlib,
    /// `dspy` preloaded.
    Dspy,
}

impl Preload {
    /// Both, in order.
    pub const ALL: [Preload; 2] = [Preload::Stdlib, Preload::Dspy];

    /// Short name used in figure ids.
    pub fn name(self) -> &'static str {
        match self {
            Preload::Stdlib => "stdlib",
            Preload::Dspy => "dspy",
        }
    }

    /// For a person.
    pub fn label(self) -> &'static str {
        match self {
            Preload::Stdlib => "stdlib",
            Preload::Dspy => "DSPy-preloaded",
        }
    }

    /// The module preloaded, if any.
    pub fn module(self) -> Option<&'static str> {
        match self {
            Preload::Stdlib => None,
            Preload::Dspy => Some("dspy"),
        }
    }

    fn builder(self, builder: PoolBuilder) -> PoolBuilder {
        match self.module() {
            Some(module) => builder.preload(module),
            None => builder,
        }
    }

    /// Whether `context`'s interpreter can run this preload; else why not.
    fn available(self, context: &Context) -> Result<(), String> {
        if self == Preload::Dspy && context.dspy_version.is_none() {
            return Err(format!(
                "DSPy is not installed for `{}`: run `cargo xtask venv`; the DSPy-preloaded \
                 contestants were left out",
                context.python
            ));
        }
        Ok(())
    }
}

/// A pool of `size` workers started `launch`'s way with `preload`.
pub(crate) fn pool(
    context: &Context,
    launch: Launch,
    preload: Preload,
    size: usize,
) -> PoolBuilder {
    launch.configure(preload.builder(python_pool(context, size)))
}

/// Builds the pool and waits until every worker is ready; the pool and the time it took.
pub(crate) async fn start(builder: PoolBuilder) -> Result<(Pool, Duration), String> {
    let started = Instant::now();
    let pool = builder.build().map_err(|error| error.to_string())?;
    match pool.ready().await {
        Ok(()) => Ok((pool, started.elapsed())),
        Err(error) => {
            pool.shutdown(Duration::from_secs(10)).await;
            Err(pool_error(error))
        }
    }
}

/// The arguments that make the start-up baseline import what a worker imports.
fn baseline_args(context: &Context, mode: &str, workers: usize, preload: Preload) -> Vec<String> {
    let python_dir = context
        .scripts
        .parent()
        .unwrap_or(Path::new("."))
        .display()
        .to_string();
    let mut args = vec![
        "--mode".into(),
        mode.into(),
        "--workers".into(),
        workers.to_string(),
        "--import".into(),
        "pypool_worker.server".into(),
        "--path".into(),
        python_dir,
    ];
    if let Some(module) = preload.module() {
        args.extend(["--preload".into(), module.into()]);
    }
    if preload == Preload::Dspy {
        // pypool's `--preload dspy` imports LiteLLM too (it prices LM usage).
        args.extend(["--import".into(), "litellm".into()]);
    }
    args
}

// ---------------------------------------------------------------- start-up

/// Start-up of 1, 8 and 64 workers vs starting them one after another and
/// vs Python's forkserver with the same preload; with `with_memory`, also
/// the memory workload, measured on the 8-worker pools and forkserver runs
/// (which saves starting them twice).
pub async fn startup(context: &Context, with_memory: bool) -> (Workload, Option<Workload>) {
    let plan = context.plan;
    let mut memory = with_memory.then(memory_workload);
    let mut workload = Workload::new(
        "startup",
        "Start-up: 1, 8 and 64 workers ready",
        "Time from `Pool::builder().build()` until `ready()` (every worker through its handshake), \
         stdlib workers and workers with `dspy` preloaded; against the same number of interpreters \
         importing the same modules (`pypool_worker.server` and the preload; with DSPy, LiteLLM \
         too, as pypool's preload does) started one after \
         another, and `multiprocessing`'s forkserver with those modules preloaded (timed from \
         nothing, the forkserver's own import included; `warm`: the forkserver already running).",
    );
    workload.parameter(
        "stdlib_workers",
        plan.startup_stdlib
            .iter()
            .map(|&n| n as u64)
            .collect::<Vec<_>>(),
    );
    workload.parameter(
        "dspy_workers",
        plan.startup_dspy
            .iter()
            .map(|&n| n as u64)
            .collect::<Vec<_>>(),
    );
    for preload in Preload::ALL {
        if let Err(why) = preload.available(context) {
            if let Some(memory) = &mut memory {
                memory.fail(why.clone());
            }
            workload.fail(why);
            continue;
        }
        let counts = match preload {
            Preload::Stdlib => plan.startup_stdlib,
            Preload::Dspy => plan.startup_dspy,
        };
        let sequential_max = match preload {
            Preload::Stdlib => plan.sequential_max_stdlib,
            Preload::Dspy => plan.sequential_max_dspy,
        };
        let mut series = Vec::new();
        for &launch in Launch::ALL {
            let mut points = Vec::new();
            for &n in counts {
                let id = format!("{}_{}_{n}", launch.name(), preload.name());
                match start(pool(context, launch, preload, n)).await {
                    Ok((pool, took)) => {
                        if let Some(memory) = memory.as_mut().filter(|_| n == MEMORY_WORKERS) {
                            memory_pool_figure(memory, launch, preload, pool_pss(&pool));
                        }
                        pool.shutdown(Duration::from_secs(10)).await;
                        workload.figure(
                            &id,
                            &format!(
                                "pypool ({}), {n} {} workers",
                                launch.name(),
                                preload.label()
                            ),
                            took.as_secs_f64(),
                            "s",
                            None,
                        );
                        points.push([n as f64, took.as_secs_f64()]);
                    }
                    Err(error) => workload.fail(format!("{id}: {error}")),
                }
            }
            series.push(Series {
                label: format!("pypool ({})", launch.name()),
                points,
            });
        }
        for (mode, label) in [
            ("sequential", "one after another"),
            ("forkserver", "forkserver"),
        ] {
            let mut points = Vec::new();
            let mut warm_points = Vec::new();
            for &n in counts {
                if mode == "sequential" && n > sequential_max {
                    continue;
                }
                let id = format!("{mode}_{}_{n}", preload.name());
                let mut args = baseline_args(context, mode, n, preload);
                let pss_here = mode == "forkserver" && n == MEMORY_WORKERS && memory.is_some();
                if pss_here {
                    args.push("--pss".into());
                }
                let result = script(context, "startup_baseline.py", args).await;
                if let Some(memory) = memory.as_mut().filter(|_| pss_here) {
                    let pss = result
                        .as_ref()
                        .map_err(Clone::clone)
                        .and_then(|result| crate::python::number(result, "pss_bytes"));
                    memory_forkserver_figure(memory, preload, pss);
                }
                match result.and_then(|result| {
                    let seconds = crate::python::number(&result, "seconds")?;
                    Ok((seconds, result["warm_seconds"].as_f64()))
                }) {
                    Ok((seconds, warm)) => {
                        workload.figure(
                            &id,
                            &format!("{label}, {n} {} interpreters", preload.label()),
                            seconds,
                            "s",
                            None,
                        );
                        points.push([n as f64, seconds]);
                        if let Some(warm) = warm {
                            workload.figure(
                                &format!("{mode}_warm_{}_{n}", preload.name()),
                                &format!(
                                    "{label} already running, {n} {} processes",
                                    preload.label()
                                ),
                                warm,
                                "s",
                                None,
                            );
                            warm_points.push([n as f64, warm]);
                        }
                    }
                    Err(error) => workload.fail(format!("{id}: {error}")),
                }
            }
            series.push(Series {
                label: label.to_owned(),
                points,
            });
            if !warm_points.is_empty() {
                series.push(Series {
                    label: format!("{label} (already running)"),
                    points: warm_points,
                });
            }
        }
        for &launch in Launch::ALL {
            let prefix = format!("{}_{}", launch.name(), preload.name());
            for &n in counts.iter().filter(|&&n| n > 1) {
                let goal = match (preload, n) {
                    (Preload::Dspy, 8) => Some(Goal::AtMost(1.3)),
                    (Preload::Stdlib, 64) => Some(Goal::AtMost(3.0)),
                    _ => None,
                }
                .filter(|_| launch.holds_goals());
                workload.ratio(
                    &format!("{prefix}_{n}_vs_1"),
                    &format!(
                        "pypool ({}): {n} {} workers ÷ 1",
                        launch.name(),
                        preload.label()
                    ),
                    &format!("{prefix}_{n}"),
                    &format!("{prefix}_1"),
                    goal,
                );
            }
            for &n in counts {
                for mode in ["sequential", "forkserver"] {
                    if mode == "sequential" && n > sequential_max {
                        continue;
                    }
                    workload.ratio(
                        &format!("{prefix}_{n}_vs_{mode}"),
                        &format!(
                            "pypool ({}) ÷ {mode}, {n} {} workers",
                            launch.name(),
                            preload.label()
                        ),
                        &format!("{prefix}_{n}"),
                        &format!("{mode}_{}_{n}", preload.name()),
                        None,
                    );
                }
            }
        }
        for &n in counts {
            fork_vs_spawn(
                &mut workload,
                &format!("{}_{n}", preload.name()),
                &format!("{n} {} workers ready", preload.label()),
                None,
            );
        }
        if let Some(memory) = &mut memory {
            if !counts.contains(&MEMORY_WORKERS) {
                memory.fail(format!(
                    "{}: the start-up workload ran no {MEMORY_WORKERS}-worker pool",
                    preload.label()
                ));
            }
            memory_ratios(memory, preload);
        }
        workload.chart(Chart {
            id: preload.name().to_owned(),
            title: format!("Start-up vs worker count, {} workers", preload.label()),
            x_label: "workers".to_owned(),
            y_label: "seconds until all are ready (log)".to_owned(),
            x_scale: Scale::Log2,
            y_scale: Scale::Log,
            series,
        });
    }
    (workload, memory)
}

// ---------------------------------------------------------------- replacement

/// Time from a worker's SIGKILL until the pool answers on its replacement.
pub async fn replacement(context: &Context) -> Workload {
    let kills = context.plan.replacements;
    let mut workload = Workload::new(
        "replacement",
        "Replacement after SIGKILL",
        &format!(
            "A 1-worker pool (so an answer means the pool is back at full size): the worker's \
             Python process is SIGKILLed, then `ping` is sent until a replacement answers; {kills} \
             kills per contestant. Baseline: the same pool's cold start (build until ready), \
             measured just before."
        ),
    );
    workload.parameter("kills", kills);
    for preload in Preload::ALL {
        if let Err(why) = preload.available(context) {
            workload.fail(why);
            continue;
        }
        for &launch in Launch::ALL {
            let prefix = format!("{}_{}", launch.name(), preload.name());
            match replacements(context, launch, preload, kills).await {
                Ok((cold, mut times)) => {
                    times.sort();
                    let median = times[times.len() / 2];
                    let max = times[times.len() - 1];
                    workload.figure(
                        &format!("{prefix}_cold"),
                        &format!(
                            "cold start, 1 {} worker ({})",
                            preload.label(),
                            launch.name()
                        ),
                        ms(cold),
                        "ms",
                        None,
                    );
                    workload.figure(
                        &format!("{prefix}_median"),
                        &format!(
                            "replaced and answering, {} worker ({}): median",
                            preload.label(),
                            launch.name()
                        ),
                        ms(median),
                        "ms",
                        (preload == Preload::Dspy && launch.holds_goals())
                            .then_some(Goal::AtMost(50.0)),
                    );
                    workload.figure(
                        &format!("{prefix}_max"),
                        &format!(
                            "replaced and answering, {} worker ({}): slowest",
                            preload.label(),
                            launch.name()
                        ),
                        ms(max),
                        "ms",
                        None,
                    );
                    workload.ratio(
                        &format!("{prefix}_vs_cold"),
                        &format!(
                            "replacement ÷ cold start, {} ({})",
                            preload.label(),
                            launch.name()
                        ),
                        &format!("{prefix}_median"),
                        &format!("{prefix}_cold"),
                        None,
                    );
                }
                Err(error) => workload.fail(format!("{prefix}: {error}")),
            }
        }
        for stat in ["cold", "median"] {
            fork_vs_spawn(
                &mut workload,
                &format!("{}_{stat}", preload.name()),
                &format!(
                    "{} worker, {}",
                    preload.label(),
                    if stat == "cold" {
                        "cold start"
                    } else {
                        "replacement (median)"
                    }
                ),
                None,
            );
        }
    }
    workload
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

/// The cold start of a 1-worker pool, then the time of each of `kills`
/// replacements.
async fn replacements(
    context: &Context,
    launch: Launch,
    preload: Preload,
    kills: u64,
) -> Result<(Duration, Vec<Duration>), String> {
    let (pool, cold) = start(pool(context, launch, preload, 1)).await?;
    let result = async {
        for n in 0..20 {
            ping_worker(&pool, n).await?;
        }
        let mut times = Vec::new();
        for _ in 0..kills {
            times.push(replace_one(&pool).await?);
        }
        Ok((cold, times))
    }
    .await;
    pool.shutdown(Duration::from_secs(10)).await;
    result
}

/// Pings; the id of the worker that answered.
pub(crate) async fn ping_worker(pool: &Pool, n: u64) -> Result<u64, String> {
    let reply = pool
        .execute("ping", serde_json::json!({ "payload": n }))
        .await
        .map_err(pool_error)?;
    reply["worker_id"]
        .as_u64()
        .ok_or_else(|| format!("ping answered without a worker id: {reply}"))
}

/// SIGKILLs the pool's one worker; the time until a ping is answered by another.
async fn replace_one(pool: &Pool) -> Result<Duration, String> {
    let status = pool.status();
    let worker = status
        .worker_details
        .iter()
        .find(|worker| worker.reported_pid.is_some())
        .ok_or("the pool has no running worker to kill")?;
    let (old, pid) = (worker.id, worker.reported_pid.unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed = Instant::now();
    procfs::sigkill(pid)?;
    let mut n = 0;
    loop {
        n += 1;
        match ping_worker(pool, n).await {
            Ok(id) if id != old => return Ok(killed.elapsed()),
            // The kill had not landed yet, or the request met the dying worker.
            Ok(_) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            Ok(_) => return Err(format!("worker {old} still answers after its SIGKILL")),
            Err(error) => return Err(format!("no replacement answered within 120 s: {error}")),
        }
    }
}

// ---------------------------------------------------------------- memory

/// The memory workload, empty: its figures come from [`memory`] alone or
/// from [`startup`], which measures them on its own 8-worker pools.
fn memory_workload() -> Workload {
    let mut workload = Workload::new(
        "memory",
        "Memory: PSS of 8 workers",
        &format!(
            "The proportional set size (`Pss` of `/proc/<pid>/smaps_rollup`, which splits shared \
             pages among the processes sharing them) summed over every process of {MEMORY_WORKERS} \
             ready workers (each worker's whole process tree: the guardian, the worker and its \
             children; with fork, the whole template tree: the template and its guardian, every \
             worker and the standby), stdlib and DSPy-preloaded; against `multiprocessing`'s forkserver with the \
             same modules preloaded ({MEMORY_WORKERS} children and the forkserver itself)."
        ),
    );
    workload.parameter("workers", MEMORY_WORKERS);
    workload
}

/// The PSS of every process the pool started: each worker's tree, and with
/// the fork start method the whole template tree the workers hang from (the
/// template, its guardian and the standby included).
fn pool_pss(pool: &Pool) -> Result<u64, String> {
    let proc = Path::new("/proc");
    let host = std::process::id();
    let mut roots: Vec<u32> = pool
        .status()
        .worker_details
        .iter()
        .filter_map(|worker| worker.pid)
        .map(|pid| procfs::root_below(proc, pid, host))
        .collect();
    roots.sort_unstable();
    roots.dedup();
    procfs::pss_of_trees(proc, &roots)
}

fn memory_pool_figure(
    workload: &mut Workload,
    launch: Launch,
    preload: Preload,
    pss: Result<u64, String>,
) {
    let id = format!("{}_{}", launch.name(), preload.name());
    match pss {
        Ok(bytes) => workload.figure(
            &id,
            &format!(
                "pypool ({}), {MEMORY_WORKERS} {} workers",
                launch.name(),
                preload.label()
            ),
            mib(bytes),
            "MiB",
            None,
        ),
        Err(error) => workload.fail(format!("{id}: {error}")),
    }
}

fn memory_forkserver_figure(workload: &mut Workload, preload: Preload, pss: Result<f64, String>) {
    let id = format!("forkserver_{}", preload.name());
    match pss {
        Ok(bytes) => workload.figure(
            &id,
            &format!("forkserver, {MEMORY_WORKERS} {} processes", preload.label()),
            bytes / f64::from(1u32 << 20),
            "MiB",
            None,
        ),
        Err(error) => workload.fail(format!("{id}: {error}")),
    }
}

fn memory_ratios(workload: &mut Workload, preload: Preload) {
    fork_vs_spawn(
        workload,
        preload.name(),
        &format!("PSS of {MEMORY_WORKERS} {} workers", preload.label()),
        Some(Goal::AtMost(0.5)),
    );
    for &launch in Launch::ALL {
        workload.ratio(
            &format!("{}_{}_vs_forkserver", launch.name(), preload.name()),
            &format!(
                "pypool ({}) ÷ forkserver, {}",
                launch.name(),
                preload.label()
            ),
            &format!("{}_{}", launch.name(), preload.name()),
            &format!("forkserver_{}", preload.name()),
            None,
        );
    }
}

/// The PSS of 8 workers (all their processes) vs the forkserver's, when
/// the start-up workload does not run (it measures them on its own pools).
pub async fn memory(context: &Context) -> Workload {
    let mut workload = memory_workload();
    for preload in Preload::ALL {
        if let Err(why) = preload.available(context) {
            workload.fail(why);
            continue;
        }
        for &launch in Launch::ALL {
            let pss = async {
                let (pool, _) = start(pool(context, launch, preload, MEMORY_WORKERS)).await?;
                let pss = pool_pss(&pool);
                pool.shutdown(Duration::from_secs(10)).await;
                pss
            }
            .await;
            memory_pool_figure(&mut workload, launch, preload, pss);
        }
        let mut args = baseline_args(context, "forkserver", MEMORY_WORKERS, preload);
        args.push("--pss".into());
        let pss = script(context, "startup_baseline.py", args)
            .await
            .and_then(|result| crate::python::number(&result, "pss_bytes"));
        memory_forkserver_figure(&mut workload, preload, pss);
        memory_ratios(&mut workload, preload);
    }
    workload
}

/// Workers of the memory workload.
pub const MEMORY_WORKERS: usize = 8;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

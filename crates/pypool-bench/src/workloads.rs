//! The workloads: pypool's side of each (through the public API of `pypool`
//! and `pypool-mock`) next to its baselines, measured in the same run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pypool::{Pool, PoolBuilder, PoolError, ProgramKind, ProgramSpec};
use pypool_mock::{Behaviour, MockSpawner};
use pypool_process::PythonSpawner;
use pypool_seam::{Outcome, Request, SpawnRequest, WorkerSpawner};
use serde_json::{Map, Value, json};

use crate::cli::Plan;
use crate::load;
use crate::python::{self, FakeLm};
use crate::report::{Goal, Workload};

/// Callers in flight in the throughput workloads (LM-bound, no-op, facade).
pub const CALLERS: usize = 256;
/// Workers of the LM-bound pool.
pub const LM_WORKERS: usize = 8;
/// Workers of the no-op pool and of each Python process pool baseline.
pub const NOOP_WORKERS: usize = 2;
/// Frames in flight on the raw framed pipe baseline.
pub const RAW_IN_FLIGHT: usize = 64;
/// Instant mock workers of the facade workload.
pub const FACADE_WORKERS: usize = 8;

/// What every workload needs.
#[derive(Debug, Clone)]
pub struct Context {
    /// The interpreter of workers and baselines.
    pub python: String,
    /// The folder of the Python baseline scripts.
    pub scripts: PathBuf,
    /// Durations and counts.
    pub plan: Plan,
    /// The fake LM's latency, ms.
    pub lm_latency_ms: u64,
    /// DSPy's version in `python`, if installed (the LM-bound workload needs it).
    pub dspy_version: Option<String>,
}

/// THE place every real-Python pool of the benchmark is configured.
///
/// Worker capacity: on today's protocol every worker holds one request at a
/// time. When the pool (or its spawner config) gains a per-worker capacity
/// setting (issue 11), set it here, once, and every workload uses it; no
/// workload assumes a capacity (the callers in flight are fixed, the pool
/// decides how they meet the workers).
pub(crate) fn python_pool(context: &Context, size: usize) -> PoolBuilder {
    Pool::builder()
        .size(size)
        .interpreter(&context.python)
        .log_level("warning")
}

/// A pool error as `kind: message`.
pub(crate) fn pool_error(error: PoolError) -> String {
    format!("{}: {error}", error.kind())
}

/// Runs a baseline script off the async runtime.
pub(crate) async fn script(
    context: &Context,
    name: &str,
    args: Vec<String>,
) -> Result<Value, String> {
    let (python, path) = (context.python.clone(), context.scripts.join(name));
    tokio::task::spawn_blocking(move || python::run_script(&python, &path, &args))
        .await
        .map_err(|error| format!("{name}: {error}"))?
}

/// A script result's rate, refused when any call failed.
fn script_rate(result: &Value, rate_key: &str) -> Result<f64, String> {
    let errors = result["errors"].as_u64().unwrap_or(0);
    if errors > 0 {
        return Err(format!(
            "{errors} calls failed, the first with: {}",
            result["first_error"]
        ));
    }
    python::number(result, rate_key)
}

// ---------------------------------------------------------------- LM-bound

/// LM-bound: DSPy `Predict` against the loopback fake LM.
pub async fn lm(context: &Context) -> Workload {
    let mut workload = Workload::new(
        "lm",
        "LM-bound: DSPy `Predict` against a loopback fake LM",
        &format!(
            "`dspy.Predict(\"question: str -> answer: str\")` against an OpenAI-compatible server on \
             127.0.0.1 that answers after {} ms, {CALLERS} calls in flight, {:.0} s per contestant.",
            context.lm_latency_ms,
            context.plan.lm_window.as_secs_f64()
        ),
    );
    workload.parameter("workers", LM_WORKERS);
    workload.parameter("callers", CALLERS);
    workload.parameter("window_s", context.plan.lm_window.as_secs_f64());
    workload.parameter("lm_latency_ms", context.lm_latency_ms);
    if context.dspy_version.is_none() {
        workload.fail(format!(
            "DSPy is not installed for `{}`: run `cargo xtask venv` (or `{} -m pip install dspy`), \
             or leave this workload out with `--only`",
            context.python, context.python
        ));
        return workload;
    }
    let lm = match FakeLm::start(&context.python, &context.scripts, context.lm_latency_ms) {
        Ok(lm) => lm,
        Err(error) => {
            workload.fail(error);
            return workload;
        }
    };
    let seconds = context.plan.lm_window.as_secs_f64().to_string();
    for (id, label, mode) in [
        ("threads", "one Python process, 256 threads", "threads"),
        (
            "asyncio",
            "one Python process, `acall` under asyncio, 256 tasks",
            "asyncio",
        ),
    ] {
        let args = vec![
            "--api-base".into(),
            lm.api_base(),
            "--mode".into(),
            mode.into(),
            "--concurrency".into(),
            CALLERS.to_string(),
            "--seconds".into(),
            seconds.clone(),
        ];
        match script(context, "lm_baseline.py", args)
            .await
            .and_then(|result| script_rate(&result, "calls_per_second"))
        {
            Ok(rate) => workload.figure(id, label, rate, "calls/s", None),
            Err(error) => workload.fail(format!("{label}: {error}")),
        }
    }
    match lm_through_pool(context, &lm).await {
        Ok(rate) => workload.figure(
            "pypool",
            &format!("pypool, {LM_WORKERS} workers (DSPy preloaded), `execute_program`"),
            rate,
            "calls/s",
            None,
        ),
        Err(error) => workload.fail(format!("pypool: {error}")),
    }
    let best = ["threads", "asyncio"]
        .into_iter()
        .filter_map(|id| workload.value(id))
        .fold(None, |best: Option<f64>, rate| {
            Some(best.map_or(rate, |best| best.max(rate)))
        });
    if let Some(best) = best {
        workload.figure(
            "best_single",
            "best single Python process (threads or asyncio)",
            best,
            "calls/s",
            None,
        );
    }
    workload.ratio(
        "pypool_vs_best_single",
        "pypool ÷ best single process",
        "pypool",
        "best_single",
        Some(Goal::AtLeast(1.5)),
    );
    workload.ratio(
        "pypool_vs_threads",
        "pypool ÷ threads",
        "pypool",
        "threads",
        None,
    );
    workload.ratio(
        "pypool_vs_asyncio",
        "pypool ÷ asyncio",
        "pypool",
        "asyncio",
        None,
    );
    workload
}

async fn lm_through_pool(context: &Context, lm: &FakeLm) -> Result<f64, String> {
    let pool = python_pool(context, LM_WORKERS)
        .preload("dspy")
        .env("PYPOOL_BENCH_LM_KEY", "sk-bench")
        .build()
        .map_err(|error| error.to_string())?;
    let result = async {
        pool.ready().await.map_err(pool_error)?;
        let mut settings = Map::new();
        settings.insert(
            "lm".into(),
            json!({
                "model": "openai/fake-model",
                "api_base": lm.api_base(),
                "api_key_env": "PYPOOL_BENCH_LM_KEY",
                "cache": false,
                "num_retries": 0,
            }),
        );
        configure(&pool, settings);
        pool.create_program(
            "qa",
            ProgramSpec::new(
                ProgramKind::Dspy,
                json!({ "module": "Predict", "signature": "question: str -> answer: str" }),
            ),
        )
        .await
        .map_err(pool_error)?;
        // Warm every worker (build the program, open its LM connection).
        let warm = (0..LM_WORKERS * 2).map(|n| {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.execute_program("qa", json!({ "question": format!("warm-up {n}") }))
                    .await
            })
        });
        for task in warm.collect::<Vec<_>>() {
            task.await
                .map_err(|error| error.to_string())?
                .map_err(pool_error)?;
        }
        let throughput = load::closed_loop(CALLERS, context.plan.lm_window, {
            let pool = pool.clone();
            move |n| {
                let pool = pool.clone();
                async move {
                    pool.execute_program("qa", json!({ "question": format!("q{n}") }))
                        .await
                        .map(drop)
                        .map_err(pool_error)
                }
            }
        })
        .await;
        throughput.check("execute_program")
    }
    .await;
    pool.shutdown(Duration::from_secs(10)).await;
    result
}

/// Sends the LM settings to every worker. (If `Pool::configure` comes to
/// return a `Result`, as issue 11 asks, this is the one call to adapt.)
fn configure(pool: &Pool, settings: Map<String, Value>) {
    let _version = pool.configure(settings);
}

// ---------------------------------------------------------------- no-op

/// No-op: the built-in `ping` through the pool vs Python's process pools
/// and a raw framed pipe.
pub async fn noop(context: &Context) -> Workload {
    let window = context.plan.noop_window;
    let mut workload = Workload::new(
        "noop",
        "No-op throughput: built-in `ping`, 2 workers",
        &format!(
            "pypool's built-in `ping` with {NOOP_WORKERS} workers and {CALLERS} concurrent callers; \
             Python's `multiprocessing.Pool({NOOP_WORKERS}).apply_async` and \
             `ProcessPoolExecutor({NOOP_WORKERS})` running an empty function with {CALLERS} \
             outstanding; a raw framed pipe to a minimal Python echo loop with {RAW_IN_FLIGHT} \
             frames in flight (the sender batches writes while frames are in flight). {:.0} s per \
             contestant.",
            window.as_secs_f64()
        ),
    );
    workload.parameter("workers", NOOP_WORKERS);
    workload.parameter("callers", CALLERS);
    workload.parameter("raw_in_flight", RAW_IN_FLIGHT);
    workload.parameter("window_s", window.as_secs_f64());
    match ping_throughput(context, window).await {
        Ok(rate) => workload.figure(
            "pypool",
            &format!("pypool `ping`, {NOOP_WORKERS} workers, {CALLERS} callers"),
            rate,
            "requests/s",
            None,
        ),
        Err(error) => workload.fail(format!("pypool: {error}")),
    }
    let seconds = window.as_secs_f64().to_string();
    for (id, label, mode) in [
        (
            "mp_pool",
            "`multiprocessing.Pool(2).apply_async`, 256 outstanding",
            "mp_pool",
        ),
        ("ppe", "`ProcessPoolExecutor(2)`, 256 outstanding", "ppe"),
    ] {
        let args = vec![
            "--mode".into(),
            mode.into(),
            "--workers".into(),
            NOOP_WORKERS.to_string(),
            "--outstanding".into(),
            CALLERS.to_string(),
            "--seconds".into(),
            seconds.clone(),
        ];
        match script(context, "noop_baseline.py", args)
            .await
            .and_then(|result| script_rate(&result, "requests_per_second"))
        {
            Ok(rate) => workload.figure(id, label, rate, "requests/s", None),
            Err(error) => workload.fail(format!("{label}: {error}")),
        }
    }
    match load::raw_pipe_throughput(&context.python, &context.scripts, RAW_IN_FLIGHT, window)
        .await
        .and_then(|throughput| throughput.check("raw pipe"))
    {
        Ok(rate) => workload.figure(
            "raw_pipe",
            &format!("raw framed pipe, 1 Python echo loop, {RAW_IN_FLIGHT} frames in flight"),
            rate,
            "frames/s",
            None,
        ),
        Err(error) => workload.fail(format!("raw pipe: {error}")),
    }
    workload.ratio(
        "pypool_vs_mp_pool",
        "pypool ÷ `multiprocessing.Pool`",
        "pypool",
        "mp_pool",
        Some(Goal::AtLeast(1.5)),
    );
    workload.ratio(
        "pypool_vs_ppe",
        "pypool ÷ `ProcessPoolExecutor`",
        "pypool",
        "ppe",
        Some(Goal::AtLeast(5.0)),
    );
    workload.ratio(
        "pypool_vs_raw_pipe",
        "pypool ÷ raw framed pipe",
        "pypool",
        "raw_pipe",
        None,
    );
    scaling(context, &mut workload).await;
    workload
}

/// Callers in flight (frames, for the raw pipe) of the throughput-vs-concurrency curve.
pub const SCALING_LEVELS: [usize; 6] = [1, 4, 16, 64, 128, 256];

/// Throughput vs concurrency: pypool's `ping` (the same 2-worker pool at every
/// level) and the raw framed pipe, each level for the plan's scaling window.
async fn scaling(context: &Context, workload: &mut Workload) {
    let window = context.plan.scaling_window;
    workload.parameter("scaling_window_s", window.as_secs_f64());
    let mut pypool_points = Vec::new();
    let measured = async {
        let pool = python_pool(context, NOOP_WORKERS)
            .build()
            .map_err(|error| error.to_string())?;
        let result = async {
            pool.ready().await.map_err(pool_error)?;
            for n in 0..NOOP_WORKERS as u64 * 4 {
                ping(&pool, n).await?;
            }
            for callers in SCALING_LEVELS {
                let rate = load::closed_loop(callers, window, {
                    let pool = pool.clone();
                    move |n| {
                        let pool = pool.clone();
                        async move { ping(&pool, n).await }
                    }
                })
                .await
                .check("ping")?;
                pypool_points.push([callers as f64, rate]);
            }
            Ok::<(), String>(())
        }
        .await;
        pool.shutdown(Duration::from_secs(5)).await;
        result
    }
    .await;
    if let Err(error) = measured {
        workload.fail(format!("pypool, throughput vs concurrency: {error}"));
    }
    let mut raw_points = Vec::new();
    for in_flight in SCALING_LEVELS {
        match load::raw_pipe_throughput(&context.python, &context.scripts, in_flight, window)
            .await
            .and_then(|throughput| throughput.check("raw pipe"))
        {
            Ok(rate) => raw_points.push([in_flight as f64, rate]),
            Err(error) => {
                workload.fail(format!("raw pipe, {in_flight} in flight: {error}"));
                break;
            }
        }
    }
    for &[callers, rate] in &pypool_points {
        workload.figure(
            &format!("pypool_c{callers}"),
            &format!("pypool `ping`, {NOOP_WORKERS} workers, {callers} callers"),
            rate,
            "requests/s",
            None,
        );
    }
    for &[in_flight, rate] in &raw_points {
        workload.figure(
            &format!("raw_pipe_c{in_flight}"),
            &format!("raw framed pipe, {in_flight} frames in flight"),
            rate,
            "frames/s",
            None,
        );
    }
    workload.chart(crate::report::Chart {
        id: "scaling".to_owned(),
        title: "No-op throughput vs concurrency".to_owned(),
        x_label: "callers (frames) in flight".to_owned(),
        y_label: "answers per second".to_owned(),
        x_scale: crate::report::Scale::Log2,
        y_scale: crate::report::Scale::Linear,
        series: vec![
            crate::report::Series {
                label: format!("pypool ping, {NOOP_WORKERS} workers"),
                points: pypool_points,
            },
            crate::report::Series {
                label: "raw framed pipe, 1 echo loop".to_owned(),
                points: raw_points,
            },
        ],
    });
}

async fn ping_throughput(context: &Context, window: Duration) -> Result<f64, String> {
    let pool = python_pool(context, NOOP_WORKERS)
        .build()
        .map_err(|error| error.to_string())?;
    let result = async {
        pool.ready().await.map_err(pool_error)?;
        for n in 0..NOOP_WORKERS as u64 * 4 {
            ping(&pool, n).await?;
        }
        load::closed_loop(CALLERS, window, {
            let pool = pool.clone();
            move |n| {
                let pool = pool.clone();
                async move { ping(&pool, n).await }
            }
        })
        .await
        .check("ping")
    }
    .await;
    pool.shutdown(Duration::from_secs(5)).await;
    result
}

async fn ping(pool: &Pool, n: u64) -> Result<(), String> {
    pool.execute("ping", json!({ "payload": n }))
        .await
        .map(drop)
        .map_err(pool_error)
}

// ---------------------------------------------------------------- facade

/// Facade overhead: the whole pool on instant in-process mock workers.
pub async fn facade(context: &Context) -> Workload {
    let mut workload = Workload::new(
        "facade",
        "Facade overhead: instant in-process mock workers",
        &format!(
            "The pool facade over {FACADE_WORKERS} `pypool-mock` workers that answer inside the call (`Behaviour::instant`, no worker task): \
             {CALLERS} callers in flight for {:.0} s, then one caller's {} sequential calls.",
            context.plan.facade_window.as_secs_f64(),
            context.plan.facade_sequential
        ),
    );
    workload.parameter("workers", FACADE_WORKERS);
    workload.parameter("callers", CALLERS);
    workload.parameter("window_s", context.plan.facade_window.as_secs_f64());
    workload.parameter("sequential_calls", context.plan.facade_sequential);
    match facade_figures(context).await {
        Ok((rate, p50, p99)) => {
            workload.figure(
                "throughput",
                &format!("{FACADE_WORKERS} mock workers, {CALLERS} in flight"),
                rate,
                "requests/s",
                Some(Goal::AtLeast(300_000.0)),
            );
            workload.figure(
                "sequential_p50",
                "one caller, sequential: p50",
                p50,
                "µs",
                Some(Goal::AtMost(5.0)),
            );
            workload.figure(
                "sequential_p99",
                "one caller, sequential: p99",
                p99,
                "µs",
                None,
            );
        }
        Err(error) => workload.fail(error),
    }
    workload
}

async fn facade_figures(context: &Context) -> Result<(f64, f64, f64), String> {
    let spawner = MockSpawner::with_behaviour(Behaviour::default().instant(true))
        .map_err(|e| e.to_string())?;
    let pool = Pool::builder()
        .size(FACADE_WORKERS)
        .health_check_interval(None)
        .spawner(spawner)
        .build()
        .map_err(|error| error.to_string())?;
    let pool = Arc::new(pool);
    let result = async {
        pool.ready().await.map_err(pool_error)?;
        for n in 0..1_000 {
            ping(&pool, n).await?;
        }
        let rate = load::closed_loop(CALLERS, context.plan.facade_window, {
            let pool = Arc::clone(&pool);
            move |n| {
                let pool = Arc::clone(&pool);
                async move { ping(&pool, n).await }
            }
        })
        .await
        .check("mock ping")?;
        let latencies =
            load::sequential(context.plan.facade_sequential, |n| ping(&pool, n)).await?;
        Ok((
            rate,
            load::quantile_us(&latencies, 0.5),
            load::quantile_us(&latencies, 0.99),
        ))
    }
    .await;
    pool.shutdown(Duration::from_secs(5)).await;
    result
}

// ---------------------------------------------------------------- ping latency

/// Ping latency: one caller through the pool vs a raw framed pipe.
pub async fn ping_latency(context: &Context) -> Workload {
    let pings = context.plan.pings;
    let mut workload = Workload::new(
        "ping",
        "Ping latency: one caller, one worker",
        &format!(
            "{pings} sequential built-in `ping`s through a 1-worker pool, {pings} on one \
             `pypool-process` worker connection without the pool, {pings} written straight to \
             `python -m pypool_worker` (the worker runtime alone: a framed pipe driven from the \
             benchmark's task, no `pypool-process`), {pings} to a minimal Python loop that only \
             decodes each request's JSON and encodes its reply (the floor of any JSON protocol; \
             `python/bench/json_echo.py`), and {pings} frames of the same bytes through a \
             raw framed pipe to a minimal Python echo loop; interleaved in blocks of {PING_BLOCK} \
             (each contestant in turn, the order rotating) so a change in the machine's load meets \
             all alike; each after a warm-up. The steps from one to the next say where a ping's \
             time goes: the pool facade, the connection (`pypool-process`), the Python runtime."
        ),
    );
    workload.parameter("pings", pings);
    workload.parameter("block", PING_BLOCK);
    let histograms = match interleaved_pings(context, pings).await {
        Ok(histograms) => histograms,
        Err(error) => {
            workload.fail(error);
            return workload;
        }
    };
    let names = [
        ("pypool", "through the pool"),
        ("process", "one `pypool-process` connection, no pool"),
        (
            "runtime",
            "`python -m pypool_worker` over a bare framed pipe",
        ),
        (
            "json_floor",
            "minimal JSON loop: decode the request, encode the reply",
        ),
        ("raw", "raw framed pipe"),
    ];
    let mut series = Vec::new();
    for ((id, label), histogram) in names.iter().zip(&histograms) {
        for (suffix, quantile) in [("p50", 0.5), ("p99", 0.99)] {
            workload.figure(
                &format!("{id}_{suffix}"),
                &format!("{label}: {suffix}"),
                load::quantile_us(histogram, quantile),
                "µs",
                None,
            );
        }
        series.push(crate::report::Series {
            label: (*label).replace('`', ""),
            points: load::percentile_points(histogram),
        });
    }
    workload.ratio(
        "p50_vs_raw",
        "pool p50 ÷ raw pipe p50",
        "pypool_p50",
        "raw_p50",
        Some(Goal::AtMost(1.3)),
    );
    workload.ratio(
        "process_p50_vs_raw",
        "`pypool-process` p50 ÷ raw pipe p50",
        "process_p50",
        "raw_p50",
        None,
    );
    workload.ratio(
        "p50_vs_process",
        "pool p50 ÷ `pypool-process` p50 (the facade's share)",
        "pypool_p50",
        "process_p50",
        None,
    );
    workload.ratio(
        "process_p50_vs_runtime",
        "`pypool-process` p50 ÷ bare-pipe worker p50 (the connection's share)",
        "process_p50",
        "runtime_p50",
        None,
    );
    workload.ratio(
        "runtime_p50_vs_raw",
        "bare-pipe worker p50 ÷ raw pipe p50 (the Python runtime's share)",
        "runtime_p50",
        "raw_p50",
        None,
    );
    workload.ratio(
        "json_floor_p50_vs_raw",
        "minimal JSON loop p50 ÷ raw pipe p50 (the least any JSON protocol in Python costs)",
        "json_floor_p50",
        "raw_p50",
        None,
    );
    workload.ratio(
        "runtime_p50_vs_json_floor",
        "bare-pipe worker p50 ÷ minimal JSON loop p50 (the runtime beyond its JSON)",
        "runtime_p50",
        "json_floor_p50",
        None,
    );
    workload.ratio(
        "p50_vs_json_floor",
        "pool p50 ÷ minimal JSON loop p50",
        "pypool_p50",
        "json_floor_p50",
        None,
    );
    workload.ratio(
        "p99_vs_raw",
        "pool p99 ÷ raw pipe p99",
        "pypool_p99",
        "raw_p99",
        None,
    );
    workload.chart(crate::report::Chart {
        id: "latency".to_owned(),
        title: "Ping latency by percentile, one caller".to_owned(),
        x_label: "percentile".to_owned(),
        y_label: "round trip, µs".to_owned(),
        x_scale: crate::report::Scale::Nines,
        y_scale: crate::report::Scale::Log,
        series,
    });
    workload
}

/// Pings per contestant in a row before the next contestant's turn.
pub const PING_BLOCK: u64 = 100;

/// How many contestants the ping workload has.
const CONTESTANTS: usize = 5;

/// The contestants' latencies (pool, `pypool-process`, the worker runtime on
/// a bare pipe, the minimal JSON loop, the raw echo pipe), measured in
/// interleaved blocks.
async fn interleaved_pings(
    context: &Context,
    pings: u64,
) -> Result<[hdrhistogram::Histogram<u64>; CONTESTANTS], String> {
    let pool = python_pool(context, 1)
        .build()
        .map_err(|error| error.to_string())?;
    let spawner = PythonSpawner::new(
        pypool::PythonSpawnerConfig::new()
            .with_interpreter(&context.python)
            .with_log_level("warning"),
    );
    let worker = spawner.spawn(SpawnRequest {
        worker_id: 1,
        handshake_timeout: Duration::from_secs(60),
    });
    let (ready, worker, runtime, json_floor, raw) = tokio::join!(
        pool.ready(),
        worker,
        load::RawEcho::start_worker(&context.python, &context.scripts),
        load::RawEcho::start_json_floor(&context.python, &context.scripts),
        load::RawEcho::start(&context.python, &context.scripts)
    );
    let result = async {
        ready.map_err(pool_error)?;
        let worker = worker.map_err(|error| format!("pypool-process: {error}"))?;
        let mut runtime = runtime?;
        let mut json_floor = json_floor?;
        let mut raw = raw?;
        let measured = async {
            let mut histograms: [hdrhistogram::Histogram<u64>; CONTESTANTS] =
                std::array::from_fn(|_| load::histogram());
            for n in 0..100 {
                ping(&pool, n).await?;
                process_ping(&worker, n).await?;
                runtime.round_trip(n).await?;
                json_floor.round_trip(n).await?;
                raw.round_trip(n).await?;
            }
            let mut n = 100;
            for round in 0..pings.div_ceil(PING_BLOCK) {
                for turn in 0..CONTESTANTS {
                    let contestant = (turn + round as usize) % CONTESTANTS;
                    for _ in 0..PING_BLOCK {
                        n += 1;
                        let sent = std::time::Instant::now();
                        match contestant {
                            0 => ping(&pool, n).await?,
                            1 => process_ping(&worker, n).await?,
                            2 => runtime.round_trip(n).await?,
                            3 => json_floor.round_trip(n).await?,
                            _ => raw.round_trip(n).await?,
                        }
                        load::record(&mut histograms[contestant], sent.elapsed());
                    }
                }
            }
            Ok::<_, String>(histograms)
        }
        .await;
        worker.terminate();
        runtime.stop().await;
        json_floor.stop().await;
        raw.stop().await;
        measured
    }
    .await;
    pool.shutdown(Duration::from_secs(5)).await;
    result
}

/// One ping on a `pypool-process` connection, without the pool.
async fn process_ping(
    worker: &Arc<dyn pypool_seam::WorkerConnection>,
    n: u64,
) -> Result<(), String> {
    let mut args = Map::new();
    args.insert("payload".into(), n.into());
    match worker
        .call(Request {
            id: n + 1,
            command: "ping".into(),
            args,
        })
        .await
    {
        Ok(Outcome::Ok { result }) if result["payload"] == n => Ok(()),
        Ok(other) => Err(format!("ping {n} got a wrong reply: {other:?}")),
        Err(error) => Err(format!("pypool-process: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_result_with_failed_calls_is_refused() {
        let ok = json!({ "calls": 10, "errors": 0, "calls_per_second": 5.0 });
        assert_eq!(script_rate(&ok, "calls_per_second"), Ok(5.0));
        let failed =
            json!({ "calls": 9, "errors": 1, "first_error": ["boom"], "calls_per_second": 4.5 });
        let error = script_rate(&failed, "calls_per_second").expect_err("failures are refused");
        assert!(error.contains("boom"), "{error}");
        let missing = json!({ "calls": 9 });
        assert!(script_rate(&missing, "calls_per_second").is_err());
    }

    #[test]
    fn a_throughput_rate_is_answers_per_second() {
        let throughput = load::Throughput {
            ok: 500,
            errors: 0,
            first_error: None,
            elapsed: Duration::from_millis(250),
        };
        assert_eq!(throughput.per_second(), 2_000.0);
    }

    #[tokio::test]
    async fn the_facade_workload_measures_mock_workers_without_python() {
        let context = Context {
            python: "no-such-python".into(),
            scripts: PathBuf::from("/nonexistent"),
            plan: Plan {
                lm_window: Duration::from_millis(10),
                noop_window: Duration::from_millis(10),
                facade_window: Duration::from_millis(50),
                facade_sequential: 200,
                pings: 10,
                scaling_window: Duration::from_millis(10),
                startup_stdlib: &[1],
                startup_dspy: &[1],
                sequential_max_stdlib: 1,
                sequential_max_dspy: 1,
                replacements: 1,
                chaos_window: Duration::from_millis(10),
            },
            lm_latency_ms: 1,
            dspy_version: None,
        };
        let workload = facade(&context).await;
        assert!(workload.failures.is_empty(), "{:?}", workload.failures);
        assert!(workload.value("throughput").is_some_and(|rate| rate > 0.0));
        assert!(
            workload
                .value("sequential_p50")
                .is_some_and(|p50| p50 > 0.0)
        );
    }
}

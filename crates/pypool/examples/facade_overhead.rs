//! The facade's own overhead: requests per second and one caller's latency
//! on instant in-process mock workers (no Python, no pipes), so what is
//! measured is the pool's checkout, bookkeeping and check-in.
//!
//! ```text
//! cargo run --release -p pypool --example facade_overhead -- --workers 8 --in-flight 256
//! ```
//!
//! Prints one JSON object: `requests_per_second` with `in_flight` concurrent
//! callers, and the latency percentiles (µs) of one caller alone.
//!
//! Options: `--workers N` (8), `--in-flight N` (256), `--requests N` per
//! concurrent phase (200000), `--single N` requests of the lone caller
//! (20000), `--threads N` runtime worker threads (2), `--instant 1|0`
//! (1: mock workers answer inside the call, so only the pool is measured;
//! 0: each mock worker is a task answering through a channel).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark binary"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pypool::Pool;
use pypool_mock::{Behaviour, MockSpawner};
use serde_json::json;

struct Options {
    workers: usize,
    in_flight: usize,
    requests: u64,
    single: usize,
    threads: usize,
    instant: bool,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        workers: 8,
        in_flight: 256,
        requests: 200_000,
        single: 20_000,
        threads: 2,
        instant: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number: u64 = value
            .parse()
            .map_err(|_| format!("{flag} needs a whole number, got {value:?}"))?;
        let as_usize = usize::try_from(number).map_err(|error| error.to_string())?;
        match flag.as_str() {
            "--workers" => options.workers = as_usize.max(1),
            "--in-flight" => options.in_flight = as_usize.max(1),
            "--requests" => options.requests = number.max(1),
            "--single" => options.single = as_usize.max(1),
            "--threads" => options.threads = as_usize.max(1),
            "--instant" => options.instant = number != 0,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

async fn concurrent(pool: &Pool, in_flight: usize, requests: u64) -> Duration {
    let remaining = Arc::new(AtomicU64::new(requests));
    let started = Instant::now();
    let mut callers = Vec::with_capacity(in_flight);
    for _ in 0..in_flight {
        let pool = pool.clone();
        let remaining = Arc::clone(&remaining);
        callers.push(tokio::spawn(async move {
            while remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(1)
                })
                .is_ok()
            {
                pool.execute("ping", json!(null)).await.expect("ping");
            }
        }));
    }
    for caller in callers {
        caller.await.expect("caller");
    }
    started.elapsed()
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    let last = sorted.len().saturating_sub(1);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short list"
    )]
    let index = ((last as f64) * fraction).round() as usize;
    sorted
        .get(index.min(last))
        .map_or(0.0, |took| took.as_secs_f64() * 1e6)
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("facade_overhead: {message}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let spawner = MockSpawner::with_behaviour(Behaviour::default().instant(options.instant))
            .expect("behaviour");
        let pool = Pool::builder()
            .size(options.workers)
            .queue_bound(options.in_flight * 2)
            .health_check_interval(None)
            .spawner(spawner)
            .build()
            .expect("pool");
        pool.ready().await.expect("ready");
        // Warm up: allocate, fill caches, settle the runtime's threads.
        concurrent(&pool, options.in_flight, options.requests / 10 + 1).await;
        let took = concurrent(&pool, options.in_flight, options.requests).await;
        #[allow(clippy::cast_precision_loss, reason = "a rate")]
        let per_second = options.requests as f64 / took.as_secs_f64();

        let mut latencies = Vec::with_capacity(options.single);
        for _ in 0..options.single / 10 {
            pool.execute("ping", json!(null)).await.expect("ping");
        }
        for _ in 0..options.single {
            let started = Instant::now();
            pool.execute("ping", json!(null)).await.expect("ping");
            latencies.push(started.elapsed());
        }
        latencies.sort_unstable();
        let report = json!({
            "workload": "facade_overhead",
            "workers": options.workers,
            "in_flight": options.in_flight,
            "threads": options.threads,
            "instant_mock": options.instant,
            "requests": options.requests,
            "seconds": took.as_secs_f64(),
            "requests_per_second": per_second.round(),
            "single_caller_requests": options.single,
            "single_caller_p50_us": percentile(&latencies, 0.50),
            "single_caller_p90_us": percentile(&latencies, 0.90),
            "single_caller_p99_us": percentile(&latencies, 0.99),
        });
        println!("{report}");
        pool.shutdown(Duration::from_secs(5)).await;
    });
}

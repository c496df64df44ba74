//! Session call latency, Redis on loopback vs the in-memory stores, in the
//! same run: two pools of the same kind, one on each store, called in
//! alternation (the order flips every round), the same session program.
//!
//! ```text
//! cargo run --release -p pypool-redis --example session_latency -- [CALLS]
//! PYPOOL_PYTHON=python3 cargo run --release -p pypool-redis --example session_latency
//! ```
//!
//! Without `PYPOOL_PYTHON` the workers are in-process mocks (the store's
//! cost against a near-zero call); with it, real Python workers run
//! `pypool_worker.demo:summarize`. Starts its own `redis-server`.

#![allow(clippy::unwrap_used, clippy::panic)] // an example: a panic is a failure report

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pypool::{Pool, PoolBuilder, ProgramSpec};
use serde_json::json;

fn builder(python: Option<&str>) -> PoolBuilder {
    let builder = Pool::builder().size(2);
    match python {
        Some(python) => builder.interpreter(python),
        None => builder.spawner(
            pypool_mock::MockSpawner::with_behaviour(pypool_mock::Behaviour::default()).unwrap(),
        ),
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Redis's own count of the commands it ran, by command (`INFO
/// commandstats`), read on a connection of its own.
async fn command_stats(server: &support::RedisServer) -> BTreeMap<String, u64> {
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// The commands Redis ran per session call between the two counts (the
/// commands inside a script count too; `info` is this example's own; the
/// heartbeat's `set` is in the count).
fn print_commands_per_call(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    calls: usize,
) {
    let mut line = String::new();
    for (name, count) in after {
        let ran = count - before.get(name).copied().unwrap_or(0);
        if ran > 0 && name != "info" {
            line.push_str(&format!(
                " {name} {ran} ({:.3}/call)",
                ran as f64 / calls as f64
            ));
        }
    }
    if line.is_empty() {
        line.push_str(" none");
    }
    println!("redis commands during the {calls} timed session calls on Redis:{line}");
}

fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .map_or(5_000, |n| n.parse().unwrap());
    let python = std::env::var("PYPOOL_PYTHON").ok();
    let server = support::RedisServer::start();
    support::runtime().block_on(async {
        // The default refresh resolution (the tests' configuration has none).
        let config = support::config(&server, "bench-host")
            .with_refresh_resolution(pypool_redis::RedisConfig::DEFAULT_REFRESH_RESOLUTION);
        let stores = pypool_redis::RedisStores::connect(&config, std::sync::Arc::new(pypool_redis::SystemClock))
            .await
            .unwrap();
        let memory = builder(python.as_deref()).name("memory").build().unwrap();
        let redis = builder(python.as_deref())
            .name("redis")
            .affinity_store(stores.affinity.clone())
            .program_store(stores.programs.clone())
            .session_data_store(stores.session_data.clone())
            .build()
            .unwrap();
        let callable = if python.is_some() { "pypool_worker.demo:summarize" } else { "m:f" };
        let mut sessions = Vec::new();
        for pool in [&memory, &redis] {
            pool.ready().await.unwrap();
            let session = pool.session("bench").unwrap();
            session.create_program("p", ProgramSpec::python(callable)).await.unwrap();
            sessions.push(session);
        }
        let inputs = json!({"text": "one two three four five six", "max_words": 3});
        for _ in 0..200 {
            for session in &sessions {
                session.execute_program("p", inputs.clone()).await.unwrap();
            }
        }
        let before = command_stats(&server).await;
        let mut times = [Vec::with_capacity(calls), Vec::with_capacity(calls)];
        for round in 0..calls {
            for which in [round % 2, 1 - round % 2] {
                let started = Instant::now();
                sessions[which].execute_program("p", inputs.clone()).await.unwrap();
                times[which].push(started.elapsed());
            }
        }
        let after = command_stats(&server).await;
        print_commands_per_call(&before, &after, calls);
        let workers = if python.is_some() { "python" } else { "mock" };
        let mut p50 = [Duration::ZERO; 2];
        for (which, name) in [(0, "memory"), (1, "redis")] {
            times[which].sort();
            let t = &times[which];
            p50[which] = percentile(t, 0.5);
            println!(
                "{name:>6} ({workers} workers, {calls} session calls): p50 {:?}  p90 {:?}  p99 {:?}",
                p50[which],
                percentile(t, 0.9),
                percentile(t, 0.99)
            );
        }
        println!(
            "p50 ratio redis / memory: {:.2}",
            p50[1].as_secs_f64() / p50[0].as_secs_f64()
        );
        memory.shutdown(Duration::from_secs(5)).await;
        redis.shutdown(Duration::from_secs(5)).await;
    });
}

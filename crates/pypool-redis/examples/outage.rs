//! Redis goes away for a while in the middle of a run: are any requests
//! hung, is every failure typed, how soon is service full again?
//!
//! ```text
//! cargo run --release -p pypool-redis --example outage -- [pause|kill] [OUTAGE_SECONDS]
//! ```
//!
//! A pool (mock workers; `PYPOOL_PYTHON` for real ones) on the Redis stores
//! (operation timeout 500 ms), 16 sessions calling their programs in a loop.
//! After 2 s Redis is frozen with SIGSTOP (`pause`, the default: nothing
//! answers, connections stay open) or killed (`kill`: restarted on the same
//! port from its append-only file) for OUTAGE_SECONDS (default 5); the run
//! goes on 5 s after it returns. A request is hung if it takes past 10 s.
//! Full service: from the first request started after Redis returned that
//! succeeded and after which every request succeeded.

#![allow(clippy::unwrap_used, clippy::panic)] // an example: a panic is a failure report

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pypool::{Pool, ProgramSpec};
use pypool_redis::{RedisStores, SystemClock};
use serde_json::json;
use tokio::sync::Mutex;

const SESSIONS: usize = 16;
const HANG: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Record {
    start: Duration,
    end: Duration,
    outcome: Result<(), String>,
}

fn main() {
    let mode = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "pause".to_owned());
    let outage =
        Duration::from_secs_f64(std::env::args().nth(2).map_or(5.0, |s| s.parse().unwrap()));
    let python = std::env::var("PYPOOL_PYTHON").ok();
    let mut server = support::RedisServer::start_persistent();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = support::config(&server, "outage-host")
            .with_timeout(Duration::from_millis(500))
            .with_refresh_resolution(pypool_redis::RedisConfig::DEFAULT_REFRESH_RESOLUTION);
        let stores = RedisStores::connect(&config, Arc::new(SystemClock))
            .await
            .unwrap();
        let builder = Pool::builder().size(4);
        let builder = match &python {
            Some(python) => builder.interpreter(python.as_str()),
            None => builder.spawner(
                pypool_mock::MockSpawner::with_behaviour(pypool_mock::Behaviour::default())
                    .unwrap(),
            ),
        };
        let pool = builder
            .affinity_store(stores.affinity.clone())
            .program_store(stores.programs.clone())
            .session_data_store(stores.session_data.clone())
            .build()
            .unwrap();
        pool.ready().await.unwrap();
        let callable = if python.is_some() {
            "pypool_worker.demo:summarize"
        } else {
            "m:f"
        };
        for index in 0..SESSIONS {
            let session = pool.session(&format!("s{index}")).unwrap();
            session
                .create_program("p", ProgramSpec::python(callable))
                .await
                .unwrap();
        }
        let origin = Instant::now();
        let stop_at = Duration::from_secs(2);
        let end_at = stop_at + outage + Duration::from_secs(5);
        let records = Arc::new(Mutex::new(Vec::new()));
        let mut clients = Vec::new();
        for index in 0..SESSIONS {
            let session = pool.session(&format!("s{index}")).unwrap();
            let records = Arc::clone(&records);
            clients.push(tokio::spawn(async move {
                while origin.elapsed() < end_at {
                    let start = origin.elapsed();
                    let call =
                        session.execute_program("p", json!({"text": "a b c", "max_words": 2}));
                    let outcome = match tokio::time::timeout(HANG, call).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(error)) => Err(error.kind().to_owned()),
                        Err(_) => Err("HUNG".to_owned()),
                    };
                    let failed = outcome.is_err();
                    records.lock().await.push(Record {
                        start,
                        end: origin.elapsed(),
                        outcome,
                    });
                    if failed {
                        // Do not spin on a fast failure.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }));
        }
        tokio::time::sleep_until((origin + stop_at).into()).await;
        match mode.as_str() {
            "kill" => server.stop(),
            _ => server.pause(),
        }
        let away = origin.elapsed();
        tokio::time::sleep(outage).await;
        match mode.as_str() {
            "kill" => server.restart(),
            _ => server.resume(),
        }
        let back = origin.elapsed();
        for client in clients {
            client.await.unwrap();
        }
        let records = records.lock().await;
        let mut failures: BTreeMap<String, usize> = BTreeMap::new();
        let mut longest = Duration::ZERO;
        for record in records.iter() {
            longest = longest.max(record.end - record.start);
            if let Err(kind) = &record.outcome {
                *failures.entry(kind.clone()).or_default() += 1;
            }
        }
        let ok = records.iter().filter(|r| r.outcome.is_ok()).count();
        let mut after: Vec<&Record> = records.iter().filter(|r| r.start >= back).collect();
        after.sort_by_key(|r| r.start);
        let last_failure = after.iter().rposition(|r| r.outcome.is_err());
        let full_from = match last_failure {
            None => after.first().map(|r| r.start),
            Some(index) => after.get(index + 1).map(|r| r.start),
        };
        println!("mode {mode}: Redis away from {away:.2?} to {back:.2?} ({outage:?})");
        println!("requests {}: ok {ok}, failed {:?}", records.len(), failures);
        println!(
            "hung (> {HANG:?}): {}; longest request {longest:.2?}",
            failures.get("HUNG").copied().unwrap_or(0)
        );
        let untyped: usize = failures
            .iter()
            .filter(|(kind, _)| kind.as_str() != "store_unavailable")
            .map(|(_, n)| n)
            .sum();
        println!("failures not typed store_unavailable: {untyped}");
        match full_from {
            Some(from) => println!(
                "full service {:.2?} after Redis returned",
                from.saturating_sub(back)
            ),
            None => println!("full service: never after Redis returned"),
        }
        pool.shutdown(Duration::from_secs(5)).await;
    });
}

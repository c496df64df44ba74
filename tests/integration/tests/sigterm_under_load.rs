//! SIGTERM to every worker of a busy pool, three times, fails no request
//! (issue 10, item 4): a stopping worker tells the host it is draining,
//! finishes the request it runs, and answers requests it never started with
//! `not_started`, which the pool retries elsewhere without an error.
#![cfg(feature = "real-python")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pypool_integration::pool_builder;
use serde_json::json;

const WORKERS: usize = 8;
const CLIENTS: usize = 24;
const ROUNDS: usize = 3;
/// Generous bound for anything the test waits for on a loaded machine.
const BOUND: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_every_worker_under_load_fails_no_request() {
    let pool = pool_builder(&["handlers_hostile.py"])
        .size(WORKERS)
        .build()
        .expect("pool builds");
    pool.ready().await.expect("workers start");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (pool, stop, ok) = (pool.clone(), Arc::clone(&stop), Arc::clone(&ok));
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                // Not idempotent: only a request that never started may be retried.
                match pool
                    .execute("work", json!({ "seconds": 0.002, "tag": n }))
                    .await
                {
                    Ok(result) => {
                        assert_eq!(result, json!({ "tag": n }), "client {client}");
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => failures.push(error.to_string()),
                }
            }
            failures
        }));
    }
    let mut signalled = 0;
    for round in 0..ROUNDS {
        // Under load: wait until requests are flowing on a full pool.
        let served = ok.load(Ordering::Relaxed);
        tokio::time::timeout(BOUND, async {
            while ok.load(Ordering::Relaxed) < served + 200 {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(5)).await; // allowed: poll interval, bounded by BOUND
            }
        })
        .await
        .expect("requests keep being served");
        let status = tokio::time::timeout(
            BOUND,
            pool.wait_until(|status| status.ready + status.busy == WORKERS),
        )
        .await
        .expect("the pool is back to full size");
        let pids: Vec<u32> = status
            .worker_details
            .iter()
            .filter_map(|worker| worker.pid)
            .collect();
        assert_eq!(pids.len(), WORKERS, "round {round}: {status:?}");
        for pid in &pids {
            let pid = i32::try_from(*pid).expect("a pid fits i32");
            kill(Pid::from_raw(pid), Signal::SIGTERM).expect("signal sent");
            signalled += 1;
        }
        // Every signalled worker leaves the pool (exits) before the next round.
        tokio::time::timeout(
            BOUND,
            pool.wait_until(|status| {
                status
                    .worker_details
                    .iter()
                    .all(|worker| worker.pid.is_none_or(|pid| !pids.contains(&pid)))
            }),
        )
        .await
        .expect("the signalled workers exit");
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.expect("client task"));
    }
    let served = ok.load(Ordering::Relaxed);
    eprintln!(
        "{signalled} workers sent SIGTERM under load: {served} requests ok, {} failed",
        failures.len()
    );
    for failure in failures.iter().take(5) {
        eprintln!("  failed: {failure}");
    }
    assert_eq!(signalled, WORKERS * ROUNDS);
    assert!(failures.is_empty(), "{} requests failed", failures.len());
    pool.shutdown(Duration::from_secs(10)).await;
}

//! A pool of real workers: one is killed with SIGKILL mid-request. Its caller
//! gets a typed error naming the signal, and the pool replaces the worker.
#![cfg(feature = "real-python")]

use std::time::Duration;

use pypool::PoolError;
use pypool_integration::{bounded, pool_builder};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_request_is_reported_and_the_worker_replaced() {
    let pool = pool_builder(&["handlers_basic.py"])
        .size(2)
        .build()
        .expect("pool builds");
    pool.ready().await.expect("workers start");
    let before: Vec<u32> = pool
        .status()
        .worker_details
        .iter()
        .filter_map(|w| w.pid)
        .collect();
    assert_eq!(before.len(), 2);

    let slow = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.execute("sleep", json!({ "seconds": 60 })).await })
    };
    let busy = bounded("a busy worker", pool.wait_until(|status| status.busy == 1)).await;
    let victim = busy
        .worker_details
        .iter()
        .find(|w| w.state == pypool::WorkerState::Busy)
        .and_then(|w| w.pid)
        .expect("busy worker has a pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");

    let error = slow.await.expect("task").expect_err("the worker died");
    let PoolError::WorkerExited { exit, command, .. } = &error else {
        panic!("expected WorkerExited, got {error:?}")
    };
    assert_eq!(exit.signal, Some(9));
    assert_eq!(command, "sleep");
    assert!(
        error
            .to_string()
            .contains("was killed by signal 9 while running `sleep`"),
        "{error}"
    );

    // The pool replaces the worker and is back to two ready workers, none of them the victim.
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        pool.wait_until(|status| status.ready == 2 && status.workers == 2),
    )
    .await
    .expect("replacement within a minute");
    assert!(status.worker_details.iter().all(|w| w.pid != Some(victim)));
    assert_eq!(status.counters.replaced, 1);
    assert_eq!(
        pool.execute("add", json!({ "a": 1, "b": 2 }))
            .await
            .expect("served"),
        json!(3)
    );
    pool.shutdown(Duration::from_secs(5)).await;
}

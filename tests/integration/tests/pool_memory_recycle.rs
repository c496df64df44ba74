//! A memory limit recycles a worker whose resident memory grew past it,
//! counting the worker's whole process tree: memory held by a process a
//! handler started counts too.
#![cfg(feature = "real-python")]

use std::time::Duration;

use pypool::Pool;
use pypool_integration::{bounded, pool_builder};
use serde_json::json;

const MIB: u64 = 1024 * 1024;

/// Far above an idle worker (a Python interpreter with the runtime loaded,
/// some 20-40 MiB), far below what the handlers hold.
const LIMIT: u64 = 150 * MIB;

/// What the handlers hold, in MiB.
const HELD_MB: u64 = 250;

fn pool() -> Pool {
    pool_builder(&["memory_hog.py"])
        .size(1)
        .health_check_interval(None)
        .max_memory_bytes(LIMIT)
        .build()
        .expect("pool builds")
}

fn worker_pid(pool: &Pool) -> u32 {
    pool.status().worker_details[0].pid.expect("a live worker")
}

/// Waits until the pool recycled a worker and its replacement is ready;
/// returns the replacement's pid.
async fn recycled_and_replaced(pool: &Pool, old_pid: u32) -> u32 {
    let status = bounded(
        "recycling for memory, then a ready replacement",
        pool.wait_until(|status| {
            status.counters.recycled == 1
                && status.ready == 1
                && status.worker_details[0]
                    .pid
                    .is_some_and(|pid| pid != old_pid)
        }),
    )
    .await;
    status.worker_details[0].pid.expect("a live worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_over_the_memory_limit_is_recycled() {
    let pool = pool();
    bounded("the worker's start", pool.ready())
        .await
        .expect("worker starts");
    let pid = worker_pid(&pool);

    // Under the limit: no recycling.
    pool.execute("hold_memory", json!({ "mb": 1 }))
        .await
        .expect("holds 1 MiB");
    assert_eq!(
        pool.status().counters.recycled,
        0,
        "an idle-sized worker is kept"
    );
    assert_eq!(worker_pid(&pool), pid);

    pool.execute("hold_memory", json!({ "mb": HELD_MB }))
        .await
        .expect("holds the memory");
    let replacement = recycled_and_replaced(&pool, pid).await;
    assert_ne!(replacement, pid);
    pool.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_held_by_a_process_the_handler_started_counts() {
    let pool = pool();
    bounded("the worker's start", pool.ready())
        .await
        .expect("worker starts");
    let pid = worker_pid(&pool);

    let result = pool
        .execute("child_holds_memory", json!({ "mb": HELD_MB }))
        .await
        .expect("the child holds the memory");
    assert_eq!(result["child"], json!("holding"), "{result}");
    // The worker itself stays small; its child holds the memory.
    let replacement = recycled_and_replaced(&pool, pid).await;
    assert_ne!(replacement, pid);
    pool.shutdown(Duration::from_secs(5)).await;
}

//! A real handler that sleeps past the request deadline: its caller gets a
//! typed error, the worker is killed and replaced, other requests are fine.
#![cfg(feature = "real-python")]

use std::time::Duration;

use pypool::{PoolError, Timeouts};
use pypool_integration::{bounded, pool_builder, process_alive};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_kills_only_its_worker() {
    let timeouts = Timeouts {
        request: Duration::from_secs(2),
        ..Timeouts::default()
    };
    let pool = pool_builder(&["handlers_basic.py"])
        .size(2)
        .timeouts(timeouts)
        .build()
        .expect("pool builds");
    pool.ready().await.expect("workers start");

    let slow = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.execute("sleep", json!({ "seconds": 600 })).await })
    };
    let busy = bounded("a busy worker", pool.wait_until(|status| status.busy == 1)).await;
    let victim = busy
        .worker_details
        .iter()
        .find(|w| w.state == pypool::WorkerState::Busy)
        .and_then(|w| w.pid)
        .expect("pid");
    // Meanwhile the other worker keeps serving.
    for n in 0..20 {
        assert_eq!(
            pool.execute("add", json!({ "a": n, "b": 1 }))
                .await
                .expect("served"),
            json!(n + 1)
        );
    }
    let error = slow.await.expect("task").expect_err("deadline");
    assert!(
        matches!(error, PoolError::DeadlineExceeded { .. }),
        "{error:?}"
    );
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        pool.wait_until(|status| status.ready == 2 && status.retiring == 0),
    )
    .await
    .expect("replacement");
    assert!(
        !process_alive(victim),
        "the timed-out worker {victim} was killed"
    );
    assert!(status.worker_details.iter().all(|w| w.pid != Some(victim)));
    pool.shutdown(Duration::from_secs(5)).await;
}

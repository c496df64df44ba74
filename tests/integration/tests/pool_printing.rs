//! Handlers that print through a pool of real workers leave every reply intact.
#![cfg(feature = "real-python")]

use std::time::Duration;

use pypool_integration::pool_builder;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printing_handlers_through_the_pool() {
    let pool = pool_builder(&["handlers_basic.py"])
        .size(3)
        .build()
        .expect("pool builds");
    pool.ready().await.expect("workers start");
    let calls = (0..300).map(|n| {
        let pool = pool.clone();
        async move {
            let command = ["noisy_print", "noisy_fd1", "echo"][n % 3];
            (
                n,
                pool.execute(command, json!({ "text": format!("{n}\n") }))
                    .await,
            )
        }
    });
    for (n, result) in futures::future::join_all(calls).await {
        let result = result.unwrap_or_else(|error| panic!("call {n} failed: {error}"));
        assert!(!result.is_null(), "call {n} returned null");
    }
    let status = pool.status();
    assert_eq!(status.counters.requests_ok, 300);
    assert_eq!(
        status.counters.replaced, 0,
        "no worker died of its own output"
    );
    pool.shutdown(Duration::from_secs(5)).await;
}

//! Lazy start: no worker until a request needs one, then up to `size`.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use pypool::{Pool, StartMode};
use pypool_mock::{Behaviour, MockSpawner};
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn workers_are_spawned_on_demand() {
    let spawner =
        MockSpawner::with_behaviour(Behaviour::default().fixed_latency(Duration::from_millis(10)))
            .unwrap();
    let stats = spawner.stats();
    let pool = Pool::builder()
        .size(3)
        .start_mode(StartMode::Lazy)
        .health_check_interval(None)
        .spawner(spawner)
        .build()
        .unwrap();
    pool.ready().await.unwrap();
    assert_eq!(
        stats.spawns(),
        0,
        "nothing is spawned before the first request"
    );
    assert_eq!(pool.status().workers, 0);

    assert!(pool.execute("echo", json!({})).await.is_ok());
    assert_eq!(stats.spawns(), 1, "one request, one worker");

    let burst = (0..10).map(|n| {
        let pool = pool.clone();
        async move { pool.execute("echo", json!({ "n": n })).await }
    });
    for result in futures::future::join_all(burst).await {
        assert!(result.is_ok());
    }
    assert_eq!(
        stats.spawns(),
        3,
        "a burst grows the pool up to its size, no further"
    );
    assert_eq!(pool.status().workers, 3);
}

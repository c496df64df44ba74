//! The basic path: build on behaviour mocks, become ready, execute.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use pypool::Pool;
use pypool_mock::{Behaviour, MockSpawner};
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn a_pool_of_mocks_answers() {
    let spawner =
        MockSpawner::with_behaviour(Behaviour::default().fixed_latency(Duration::from_millis(5)))
            .unwrap();
    let stats = spawner.stats();
    let pool = Pool::builder().size(3).spawner(spawner).build().unwrap();
    pool.ready().await.unwrap();
    assert_eq!(stats.spawns(), 3);
    let status = pool.status();
    assert_eq!((status.workers, status.ready), (3, 3));
    for n in 0..10 {
        let result = pool.execute("echo", json!({ "n": n })).await.unwrap();
        assert_eq!(result["echo"]["n"], json!(n));
    }
    assert_eq!(pool.status().counters.requests_ok, 10);
    let report = pool.shutdown(Duration::from_secs(5)).await;
    assert!(report.drained);
    assert_eq!(pool.status().workers, 0);
}

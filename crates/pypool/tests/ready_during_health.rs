//! `Status.ready` counts healthy idle workers even while a health check
//! holds them: it must not flap to 0 every health-check interval (a
//! `wait_until(ready == size)` would flicker).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::NO_TIME;
use support::scripted::scripted_pool;
use support::within;

#[tokio::test(start_paused = true)]
async fn ready_stays_at_size_while_health_checks_run() {
    let interval = Duration::from_secs(10);
    let (pool, _spawns, mut workers) =
        scripted_pool(2, |builder| builder.health_check_interval(Some(interval))).await;
    assert_eq!(pool.status().ready, 2);

    tokio::time::advance(interval).await;
    let mut pings = Vec::new();
    for worker in &mut workers {
        let ping = within(NO_TIME, "a health check", worker.next_request())
            .await
            .unwrap();
        assert_eq!(ping.command(), "ping");
        pings.push(ping);
    }
    assert_eq!(
        pool.status().ready,
        2,
        "both workers are healthy and idle while their health checks run"
    );
    for ping in pings {
        let _ = ping.reply(json!({"pong": true}));
    }
    let status = within(
        NO_TIME,
        "the checks to end",
        pool.wait_until(|s| s.ready == 2),
    )
    .await;
    assert_eq!(status.ready, 2);
}

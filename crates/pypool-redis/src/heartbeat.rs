//! The host heartbeat: a key with a time-to-live, refreshed while the host lives.

use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::connection::Redis;

/// Refreshes `{prefix}:host:{host}` every third of its time-to-live, from a
/// tokio task that stops when this value is dropped (or on
/// [`stop`](Self::stop)). If the process dies, the key expires on its own.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Heartbeat {
    /// Starts beating now (the first beat is sent before this returns, so
    /// the host is alive as soon as its stores exist).
    pub(crate) async fn start(redis: Redis, key: String, ttl: Duration) -> Self {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let beat = move |redis: Redis, key: String| async move {
            let sent = redis
                .run("heartbeat", |mut connection| async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg("alive")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async::<()>(&mut connection)
                        .await
                })
                .await;
            if let Err(error) = sent {
                tracing::warn!(%error, "host heartbeat not sent");
            }
        };
        beat(redis.clone(), key.clone()).await;
        let period = (ttl / 3).max(Duration::from_millis(10));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                beat(redis.clone(), key.clone()).await;
            }
        });
        Self {
            task: Mutex::new(Some(task)),
        }
    }

    /// Stops beating; the key expires after its time-to-live.
    pub(crate) fn stop(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop();
    }
}

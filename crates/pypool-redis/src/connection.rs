//! One shared, self-healing connection with a bound on every operation.

use std::future::Future;
use std::time::Duration;

use pypool_store::StoreError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::{RedisConfig, RedisStoreError};

/// A cheap-to-clone handle on Redis: the client's `ConnectionManager`
/// (one multiplexed connection, pipelined, re-established in the
/// background after an I/O error) plus the operation timeout.
#[derive(Clone)]
pub(crate) struct Redis {
    manager: ConnectionManager,
    timeout: Duration,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Creates the connection manager and checks with a `PING` that Redis
    /// answers within the timeout.
    pub(crate) async fn connect(config: &RedisConfig) -> Result<Self, RedisStoreError> {
        let url = config.url();
        let unreachable = |reason: String| RedisStoreError::Unreachable {
            url: url.redacted(),
            timeout_ms: config.timeout.as_millis(),
            reason: redact(&reason, url.expose_secret(), &url.redacted()),
        };
        let client = redis::Client::open(url.expose_secret())
            .map_err(|error| unreachable(error.to_string()))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            // Retry quickly and few times: an operation waits at most the
            // timeout anyway, and the next operation after a failed
            // reconnect starts another one.
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|error| unreachable(error.to_string()))?;
        let redis = Self {
            manager,
            timeout: config.timeout,
        };
        let ping = redis.run("ping", |mut connection| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        });
        ping.await.map_err(|error| unreachable(error.to_string()))?;
        Ok(redis)
    }

    /// Runs `operation` on a clone of the connection, bounded by the
    /// timeout. Any Redis error, and running out of time, is
    /// [`StoreError::StoreUnavailable`] naming `name`.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        name: &'static str,
        operation: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, operation(self.manager.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(StoreError::StoreUnavailable {
                operation: name,
                reason: error.to_string(),
            }),
            Err(_) => Err(StoreError::StoreUnavailable {
                operation: name,
                reason: format!(
                    "Redis did not answer within {} ms",
                    self.timeout.as_millis()
                ),
            }),
        }
    }
}

/// `text` with the full URL (which may carry a password) replaced by its
/// redacted form.
fn redact(text: &str, url: &str, redacted: &str) -> String {
    text.replace(url, redacted)
}

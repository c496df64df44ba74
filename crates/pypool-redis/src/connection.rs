//! One shared, self-healing connection with a bound on every operation.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pypool_store::StoreError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo};
use tokio::task::JoinHandle;

use crate::coherence::Coherence;
use crate::{RedisConfig, RedisStoreError};

/// A cheap-to-clone handle on Redis: the client's `ConnectionManager`
/// (one multiplexed RESP3 connection, pipelined, re-established in the
/// background after an I/O error), the operation timeout, and the local
/// copies kept coherent through that connection ([`Coherence`]).
#[derive(Clone)]
pub(crate) struct Redis {
    manager: ConnectionManager,
    timeout: Duration,
    coherence: Arc<Coherence>,
}

/// Keeps key tracking on for the stores' connection while any store that
/// serves local copies lives (a task, stopped on drop).
#[derive(Debug)]
pub(crate) struct Tracking {
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Tracking {
    fn drop(&mut self) {
        let task = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
        }
    }
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
        // RESP3, for the invalidation pushes of client-side caching.
        let info = url
            .expose_secret()
            .into_connection_info()
            .map_err(|error| unreachable(error.to_string()))?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))
            .map_err(|error| unreachable(error.to_string()))?;
        let coherence = Coherence::new(config.prefix.clone());
        let pushes = Arc::clone(&coherence);
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            // Retry quickly and few times: an operation waits at most the
            // timeout anyway, and the next operation after a failed
            // reconnect starts another one.
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200))
            .set_push_sender(move |push: PushInfo| {
                pushes.on_push(&push);
                Ok::<(), std::convert::Infallible>(())
            });
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|error| unreachable(error.to_string()))?;
        let redis = Self {
            manager,
            timeout: config.timeout,
            coherence,
        };
        let ping = redis.run("ping", |mut connection| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        });
        ping.await.map_err(|error| unreachable(error.to_string()))?;
        Ok(redis)
    }

    /// The local copies kept coherent through this connection.
    pub(crate) fn coherence(&self) -> &Arc<Coherence> {
        &self.coherence
    }

    /// Starts keeping key tracking on (see [`Coherence`]); it stops when the
    /// returned guard is dropped.
    pub(crate) fn start_tracking(&self) -> Tracking {
        let redis = self.clone();
        let coherence = Arc::clone(&self.coherence);
        let task = tokio::spawn(coherence.keep_tracking(move || {
            let redis = redis.clone();
            async move {
                let [programs, bindings] = redis.coherence.tracked_prefixes();
                let switched = redis
                    .run("client tracking", |mut connection| async move {
                        // Off, then on: one pipeline, so both reach the same connection.
                        redis::pipe()
                            .cmd("CLIENT")
                            .arg("TRACKING")
                            .arg("OFF")
                            .ignore()
                            .cmd("CLIENT")
                            .arg(&["TRACKING", "ON", "BCAST", "NOLOOP", "PREFIX"][..])
                            .arg(&programs)
                            .arg("PREFIX")
                            .arg(&bindings)
                            .ignore()
                            .query_async::<()>(&mut connection)
                            .await
                    })
                    .await;
                if let Err(error) = &switched {
                    tracing::debug!(%error, "key tracking not switched on yet");
                }
                switched.is_ok()
            }
        }));
        Tracking {
            task: Mutex::new(Some(task)),
        }
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
        let outcome = tokio::time::timeout(self.timeout, operation(self.manager.clone())).await;
        if !matches!(outcome, Ok(Ok(_))) {
            // Redis may be away, so invalidations may be missed.
            self.coherence.lose();
        }
        match outcome {
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

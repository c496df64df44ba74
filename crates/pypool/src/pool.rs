//! The pool handle.

use std::sync::Arc;
use std::time::Duration;

use pypool_wire::json_type;
use serde_json::Value;

use crate::inner::Inner;
use crate::{PoolBuilder, PoolError, Status, health};

/// A supervised pool of Python workers. Cheap to clone; all clones share the
/// same workers. When the last clone is dropped, every worker's process
/// group is killed.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
    _owner: Arc<Owner>,
}

/// Kills the pool's workers when the last [`Pool`] handle goes.
#[derive(Debug)]
struct Owner {
    inner: Arc<Inner>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.inner.abandon();
    }
}

/// What [`Pool::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ShutdownReport {
    /// Whether every in-flight request finished before the deadline.
    pub drained: bool,
    /// Workers that had to be killed (SIGKILL) rather than exiting on SIGTERM.
    pub killed: usize,
}

impl Pool {
    /// A builder with sensible defaults.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    pub(crate) fn start(inner: Arc<Inner>) -> Self {
        inner.decide(|books, fx| books.core.start(fx));
        if let Some(interval) = inner.config.health_check_interval {
            health::start(Arc::downgrade(&inner), interval);
        }
        // Sweep sessions a few times per TTL, so a lapsed binding goes soon after it lapses.
        let sweep_every = (inner.config.session_ttl / 4).max(std::time::Duration::from_millis(100));
        crate::session::start_sweeper(Arc::downgrade(&inner), sweep_every);
        Self {
            _owner: Arc::new(Owner {
                inner: Arc::clone(&inner),
            }),
            inner,
        }
    }

    /// Resolves when `min_ready` workers (by default: all of them, in eager
    /// mode) have completed their handshake. A spawn failure (interpreter
    /// missing, a handler module raising on import) is returned as that
    /// error rather than waited out.
    pub async fn ready(&self) -> Result<(), PoolError> {
        let minimum = self.inner.config.min_ready;
        let mut readiness = self.inner.readiness.subscribe();
        loop {
            {
                let seen = readiness.borrow_and_update();
                if seen.live >= minimum {
                    return Ok(());
                }
                if let Some(error) = &seen.spawn_error {
                    return Err(PoolError::Spawn(error.clone()));
                }
            }
            if self.inner.lock().core.is_shutting_down() {
                return Err(PoolError::ShuttingDown {
                    command: "ready".to_owned(),
                });
            }
            if readiness.changed().await.is_err() {
                return Err(PoolError::ShuttingDown {
                    command: "ready".to_owned(),
                });
            }
        }
    }

    /// Runs `command` with keyword arguments `args` (a JSON object, or null
    /// for none) on any ready worker and returns its result.
    ///
    /// Requests wait for a worker in a bounded FIFO queue; a full queue fails
    /// at once with [`PoolError::Overloaded`]. Dropping the returned future
    /// never leaks a worker: a request already sent runs to its end (or its
    /// deadline) in the background and its worker is checked back in.
    ///
    /// Commands named `pypool.*` are the runtime's own (running programs,
    /// applying settings) and are refused with [`PoolError::ReservedCommand`]:
    /// use [`execute_program`](Self::execute_program) and
    /// [`configure`](Self::configure) instead.
    pub async fn execute(&self, command: &str, args: Value) -> Result<Value, PoolError> {
        check_command(command)?;
        let args = object_args(command, args)?;
        self.inner.execute(command, args).await
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// A snapshot of the pool and each worker.
    pub fn status(&self) -> Status {
        self.inner.status()
    }

    /// Waits until `condition` holds for the pool's status, re-checking each
    /// time workers change state; returns the status that satisfied it.
    /// Wrap it in `tokio::time::timeout` to bound the wait.
    ///
    /// ```no_run
    /// # async fn demo(pool: pypool::Pool) {
    /// // After a crash: wait for the replacement to be ready.
    /// let status = pool.wait_until(|status| status.ready == status.size).await;
    /// # }
    /// ```
    pub async fn wait_until(&self, mut condition: impl FnMut(&Status) -> bool) -> Status {
        let mut changes = self.inner.readiness.subscribe();
        loop {
            changes.borrow_and_update();
            let status = self.status();
            if condition(&status) {
                return status;
            }
            if changes.changed().await.is_err() {
                return self.status();
            }
        }
    }

    /// Changes the pool's size at runtime: grows at once; shrinks by dropping
    /// workers still starting, then retiring idle workers now (SIGTERM) and
    /// busy ones when their request ends.
    pub fn resize(&self, size: usize) {
        self.inner.decide(|books, fx| books.core.resize(size, fx));
    }

    /// Stops the pool: refuses new requests at once, lets in-flight ones
    /// finish until `deadline`, then asks every worker to stop (SIGTERM) and
    /// kills (SIGKILL) the process groups of those still running after the
    /// terminate grace.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let inner = &self.inner;
        inner.decide(|books, fx| books.core.begin_shutdown(fx));
        let drained = self.wait_until_empty(deadline).await;
        let mut killed = 0;
        if !drained {
            killed = inner.decide(|books, fx| books.core.force_shutdown(fx));
        }
        let _ = self
            .wait_until_empty(inner.config.timeouts.terminate_grace * 2)
            .await;
        ShutdownReport { drained, killed }
    }

    /// Waits until no worker is left (in the table or being stopped).
    async fn wait_until_empty(&self, limit: Duration) -> bool {
        let mut readiness = self.inner.readiness.subscribe();
        let empty = readiness.wait_for(|seen| seen.remaining == 0);
        matches!(tokio::time::timeout(limit, empty).await, Ok(Ok(_)))
    }
}

impl Inner {
    /// The last handle is gone: kill everything, synchronously.
    fn abandon(&self) {
        self.decide(|books, fx| books.core.abandon(fx));
    }
}

/// Refuses the runtime's reserved commands (`pypool.*`): a caller that could
/// send `pypool.run_program` itself could plant its own code under another
/// session's program.
#[allow(clippy::result_large_err, reason = "returned to the caller as is")]
pub(crate) fn check_command(command: &str) -> Result<(), PoolError> {
    if command.starts_with(crate::job::RESERVED_PREFIX) {
        return Err(PoolError::ReservedCommand {
            command: command.to_owned(),
        });
    }
    Ok(())
}

/// Refuses arguments nested deeper than the protocol allows (they would never
/// reach a worker intact). `enclosing` counts the levels around `args` in the
/// request (1 for a program's inputs, inside `pypool.run_program`'s args).
#[allow(clippy::result_large_err, reason = "returned to the caller as is")]
pub(crate) fn check_depth(
    command: &str,
    args: &serde_json::Map<String, Value>,
    enclosing: usize,
) -> Result<(), PoolError> {
    let limit = pypool_seam::MAX_NESTING_DEPTH;
    let deepest = args
        .values()
        .map(pypool_seam::nesting_depth)
        .max()
        .unwrap_or(0);
    if 1 + deepest + enclosing > limit {
        return Err(PoolError::ArgumentsTooDeep {
            command: command.to_owned(),
            limit: limit.saturating_sub(enclosing),
        });
    }
    Ok(())
}

/// Keyword arguments from a JSON object (or null for none).
#[allow(clippy::result_large_err, reason = "returned to the caller as is")]
pub(crate) fn object_args(
    command: &str,
    args: Value,
) -> Result<serde_json::Map<String, Value>, PoolError> {
    match args {
        Value::Object(map) => {
            check_depth(command, &map, 0)?;
            Ok(map)
        }
        Value::Null => Ok(serde_json::Map::new()),
        other => Err(PoolError::InvalidArguments {
            command: command.to_owned(),
            got: json_type(&other),
        }),
    }
}

//! The pool as a [`tower::Service`] (feature `tower`), so it composes with
//! tower's middleware: timeouts, concurrency and rate limits, load shedding,
//! retries.
//!
//! ```no_run
//! # async fn demo(pool: pypool::Pool) -> Result<(), tower::BoxError> {
//! use pypool::{PoolRequest, PoolService};
//! use tower::{Service, ServiceExt};
//!
//! let mut service = PoolService::new(pool);
//! let result = service
//!     .ready()
//!     .await?
//!     .call(PoolRequest::command("demo.add", serde_json::json!({"a": 1, "b": 2})))
//!     .await?;
//! # let _ = result;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::Value;

use crate::core::Room;
use crate::inner::Inner;
use crate::{Pool, PoolError};

/// One request to a [`PoolService`].
#[derive(Debug, Clone, PartialEq)]
pub enum PoolRequest {
    /// Run a registered command ([`Pool::execute`]).
    Command {
        /// The command's name, e.g. `demo.add`.
        command: String,
        /// Its keyword arguments: a JSON object, or null for none.
        args: Value,
    },
    /// Run a global program ([`Pool::execute_program`]).
    Program {
        /// The program's id.
        program: String,
        /// Its inputs: a JSON object.
        inputs: Value,
    },
}

impl PoolRequest {
    /// A request to run `command` with `args`.
    pub fn command(command: impl Into<String>, args: Value) -> Self {
        Self::Command {
            command: command.into(),
            args,
        }
    }

    /// A request to run global program `program` on `inputs`.
    pub fn program(program: impl Into<String>, inputs: Value) -> Self {
        Self::Program {
            program: program.into(),
            inputs,
        }
    }
}

/// The future a [`PoolService`] call returns.
pub type PoolFuture = Pin<Box<dyn Future<Output = Result<Value, PoolError>> + Send + 'static>>;

/// A wait for the pool's next state change (queue, workers, shutdown).
type Change = Pin<Box<dyn Future<Output = bool> + Send + 'static>>;

/// A [`Pool`] as a [`tower::Service`] of [`PoolRequest`]s.
///
/// [`poll_ready`](tower::Service::poll_ready) reflects the pool's queue:
/// it is ready while a request would be taken at once or queued (an idle
/// worker, or fewer than the builder's
/// [`queue_bound`](crate::PoolBuilder::queue_bound) requests waiting), and
/// pending while the queue is full — so tower's `LoadShed` sheds at once and
/// `Buffer` or `ConcurrencyLimit` wait — until the pool changes. A pool that
/// is shutting down makes it fail with [`PoolError::ShuttingDown`].
///
/// Readiness is advisory: clones share one pool, so another caller may fill
/// the queue between `poll_ready` and `call`; that call then fails with
/// [`PoolError::Overloaded`] like [`Pool::execute`] would.
pub struct PoolService {
    pool: Pool,
    change: Option<Change>,
}

impl PoolService {
    /// A service sending its requests to `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool, change: None }
    }

    /// The pool behind the service.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl Clone for PoolService {
    fn clone(&self) -> Self {
        Self::new(self.pool.clone())
    }
}

impl std::fmt::Debug for PoolService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PoolService")
            .field("pool", &self.pool)
            .field("waiting_for_room", &self.change.is_some())
            .finish()
    }
}

impl From<Pool> for PoolService {
    fn from(pool: Pool) -> Self {
        Self::new(pool)
    }
}

impl Inner {
    fn capacity(&self) -> Room {
        self.lock().core.room()
    }
}

impl tower::Service<PoolRequest> for PoolService {
    type Response = Value;
    type Error = PoolError;
    type Future = PoolFuture;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), PoolError>> {
        loop {
            if let Some(change) = self.change.as_mut() {
                match change.as_mut().poll(context) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(alive) => {
                        self.change = None;
                        if !alive {
                            return Poll::Ready(Err(closed()));
                        }
                    }
                }
            }
            // Subscribe before looking, so a change in between is not lost.
            let mut changes = self.pool.inner().readiness.subscribe();
            changes.borrow_and_update();
            match self.pool.inner().capacity() {
                Room::Open => return Poll::Ready(Ok(())),
                Room::Closed => return Poll::Ready(Err(closed())),
                Room::Full => {
                    self.change = Some(Box::pin(async move { changes.changed().await.is_ok() }));
                }
            }
        }
    }

    fn call(&mut self, request: PoolRequest) -> PoolFuture {
        let pool = self.pool.clone();
        Box::pin(async move {
            match request {
                PoolRequest::Command { command, args } => pool.execute(&command, args).await,
                PoolRequest::Program { program, inputs } => {
                    pool.execute_program(&program, inputs).await
                }
            }
        })
    }
}

fn closed() -> PoolError {
    PoolError::ShuttingDown {
        command: "poll_ready".to_owned(),
    }
}

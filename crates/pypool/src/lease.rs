//! A worker lent to one request, and the breaker permit of its attempt.
//!
//! Neither takes the pool's lock when dropped: a drop can happen anywhere
//! (even while the lock is held, for example a lease inside a waiter's
//! channel dropped by a pruning pass), so settling a dropped one is handed to
//! a task of its own ([`defer`]).

use std::sync::Arc;

use pypool_breaker::Permit;
use pypool_recovery::WorkerAction;
use pypool_seam::{WorkerConnection, WorkerId};

use crate::core::BreakerKey;
use crate::inner::Inner;

/// A worker checked out for one request. It goes back to the pool exactly
/// once: settled by the core with the outcome of the request,
/// or, if the lease is dropped unused (its caller went away before sending
/// anything), as an unused worker — settled by a task, never in `Drop`.
#[derive(Debug)]
pub(crate) struct Lease {
    inner: Arc<Inner>,
    worker_id: WorkerId,
    connection: Arc<dyn WorkerConnection>,
    /// The settings version the worker had applied when it was lent.
    settings_applied: u64,
    armed: bool,
}

impl Lease {
    pub(crate) fn new(
        inner: Arc<Inner>,
        worker_id: WorkerId,
        connection: Arc<dyn WorkerConnection>,
        settings_applied: u64,
    ) -> Self {
        Self {
            inner,
            worker_id,
            connection,
            settings_applied,
            armed: true,
        }
    }

    pub(crate) fn worker_id(&self) -> WorkerId {
        self.worker_id
    }

    pub(crate) fn connection(&self) -> &Arc<dyn WorkerConnection> {
        &self.connection
    }

    pub(crate) fn settings_applied(&self) -> u64 {
        self.settings_applied
    }

    /// Forgets the lease without returning the worker (the caller puts it
    /// back in the pool's books itself, under the lock it holds).
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            let inner = Arc::clone(&self.inner);
            let id = self.worker_id;
            defer(move || {
                inner.decide(|books, fx| books.core.release(id, false, WorkerAction::Keep, fx));
            });
        }
    }
}

/// A command breaker's permit that is always settled: recorded with the
/// attempt's outcome when the attempt is settled, or released (by a task,
/// see [`defer`]) if the attempt never ran.
#[derive(Debug)]
pub(crate) struct CommandPermit {
    inner: Arc<Inner>,
    permit: Option<(BreakerKey, Permit)>,
}

impl CommandPermit {
    pub(crate) fn new(inner: Arc<Inner>, permit: Option<(BreakerKey, Permit)>) -> Self {
        Self { inner, permit }
    }

    /// The permit, for settling it under the lock the caller holds.
    pub(crate) fn take(mut self) -> Option<(BreakerKey, Permit)> {
        self.permit.take()
    }
}

impl Drop for CommandPermit {
    fn drop(&mut self) {
        if let Some((key, permit)) = self.permit.take() {
            let inner = Arc::clone(&self.inner);
            defer(move || inner.lock().core.release_permit(&key, permit));
        }
    }
}

/// Runs `settle` outside whatever the dropping code holds: on the tokio
/// runtime if there is one, else on a short-lived thread.
fn defer(settle: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move { settle() });
        }
        Err(_) => {
            std::thread::spawn(settle);
        }
    }
}

//! A worker lent to one request.

use std::sync::Arc;

use pypool_recovery::WorkerAction;
use pypool_seam::{WorkerConnection, WorkerId};

use crate::inner::Inner;

/// A worker checked out for one request. It goes back to the pool exactly
/// once: through [`Lease::finish`] with the outcome of the request, or, if
/// the lease is dropped unused (its caller went away before sending
/// anything), as an unused worker.
#[derive(Debug)]
pub(crate) struct Lease {
    inner: Arc<Inner>,
    worker_id: WorkerId,
    connection: Arc<dyn WorkerConnection>,
    armed: bool,
}

impl Lease {
    pub(crate) fn new(
        inner: Arc<Inner>,
        worker_id: WorkerId,
        connection: Arc<dyn WorkerConnection>,
    ) -> Self {
        Self {
            inner,
            worker_id,
            connection,
            armed: true,
        }
    }

    pub(crate) fn worker_id(&self) -> WorkerId {
        self.worker_id
    }

    pub(crate) fn connection(&self) -> &Arc<dyn WorkerConnection> {
        &self.connection
    }

    /// Returns the worker; `replied` says whether the request produced a
    /// reply, `action` is the recovery policy's verdict on the worker.
    pub(crate) fn finish(mut self, replied: bool, action: WorkerAction) {
        self.armed = false;
        self.inner.release(self.worker_id, replied, action);
    }

    /// Forgets the lease without returning the worker (the caller already
    /// put it back in the pool's books).
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.armed {
            self.inner
                .release(self.worker_id, false, WorkerAction::Keep);
        }
    }
}

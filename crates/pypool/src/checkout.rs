//! The shell of checkout: one core decision under the lock, then (if the
//! caller queued) the wait for a worker, bounded.

use std::sync::Arc;
use std::time::Duration;

use pypool_seam::WorkerId;

use crate::PoolError;
use crate::core::{Checkout, Refusal};
use crate::inner::{Books, Inner, WaitGuard};
use crate::job::JobKey;
use crate::lease::{CommandPermit, Lease};

impl Inner {
    /// Takes a worker for one request, waiting in the FIFO queue if none is
    /// free (tests check out without a request).
    #[cfg(test)]
    pub(crate) async fn checkout(&self, command: &str) -> Result<Lease, PoolError> {
        self.checkout_inner(command, None, self.config.timeouts.checkout, None)
            .await
            .map(|(lease, _)| lease)
    }

    /// Admits a request keyed `key` through its breaker and takes any
    /// worker for it, both in one lock take (waiting in the FIFO queue if
    /// none is free).
    pub(crate) async fn checkout_admitted(
        self: &Arc<Self>,
        command: &str,
        key: &JobKey,
    ) -> Result<(Lease, CommandPermit), PoolError> {
        self.checkout_inner(command, None, self.config.timeouts.checkout, Some(key))
            .await
    }

    /// Takes worker `wanted` (or any worker when `None`) for one request,
    /// waiting up to `limit` in the FIFO queue; admits the request through
    /// its breaker first, in the same lock take, when `admit` names its key.
    pub(crate) async fn checkout_inner(
        &self,
        command: &str,
        wanted: Option<WorkerId>,
        limit: Duration,
        admit: Option<&JobKey>,
    ) -> Result<(Lease, CommandPermit), PoolError> {
        let shutting_down = || PoolError::ShuttingDown {
            command: command.to_owned(),
        };
        let inner = self.strong().ok_or_else(shutting_down)?;
        let mut waiting = None;
        let (checkout, permit) = {
            let mut books = self.lock();
            let mut fx = Vec::new();
            let Books { core, shelf } = &mut *books;
            let decided = core.checkout(
                admit,
                wanted,
                || {
                    let (ticket, receiver, gone) = shelf.ticket();
                    waiting = Some((receiver, gone));
                    ticket
                },
                &mut fx,
            );
            self.carry_out(books, fx);
            decided
        };
        let permit = CommandPermit::new(Arc::clone(&inner), permit);
        let (receiver, gone) = match checkout {
            Checkout::Lent(lent) => {
                let lease = Lease::new(inner, lent.worker, lent.handle, lent.settings_applied);
                return Ok((lease, permit));
            }
            Checkout::Refused(refusal) => {
                return Err(match refusal {
                    Refusal::CircuitOpen { retry_after } => PoolError::CircuitOpen {
                        command: command.to_owned(),
                        retry_after,
                    },
                    Refusal::ShuttingDown => shutting_down(),
                    Refusal::Overloaded { queued, bound } => {
                        PoolError::Overloaded { queued, bound }
                    }
                });
            }
            Checkout::Queued => match waiting {
                Some(waiting) => waiting,
                None => return Err(shutting_down()),
            },
        };
        let guard = WaitGuard(gone);
        let waited = tokio::time::timeout(limit, receiver).await;
        match waited {
            // The pool refuses queued requests without knowing their command: name it here.
            Ok(Ok(Err(PoolError::ShuttingDown { .. }))) | Ok(Err(_)) => Err(shutting_down()),
            Ok(Ok(result)) => result.map(|lease| (lease, permit)),
            Err(_elapsed) => {
                // The caller leaves the queue (watchers see it shrink) and
                // its permit goes back.
                drop(guard);
                let permit = permit.take();
                self.decide(|books, fx| books.core.waiter_left(permit, fx));
                Err(PoolError::CheckoutTimeout {
                    command: command.to_owned(),
                    waited: limit,
                })
            }
        }
    }

    /// Whether worker `id` is in the pool and could take a request now
    /// (idle, or partially busy with room).
    pub(crate) fn has_room(&self, id: WorkerId) -> bool {
        self.lock().core.has_room(id)
    }

    /// Whether worker `id` is still in the pool.
    pub(crate) fn has_worker(&self, id: WorkerId) -> bool {
        self.lock().core.has_worker(id)
    }
}

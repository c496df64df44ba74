//! Health-check bookkeeping: idle workers are lent to the checker and come
//! back with its verdict.

use pypool_lifecycle::{Event, State};
use pypool_seam::WorkerId;

use super::{Core, Effect, Effects, WaiterToken, WorkerHandle};

/// What follows a health check's first answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HealthNext {
    /// The worker is back in the pool's hands (or gone).
    Done,
    /// The check timed out but the worker may still answer: wait for the
    /// late reply (up to the request deadline), then call
    /// [`Core::health_late`].
    AwaitLate,
}

impl<H: WorkerHandle, T: WaiterToken> Core<H, T> {
    /// Lends every idle worker to a health check (it is not handed to
    /// requests meanwhile); returns them for the shell to check.
    pub(crate) fn health_round(&mut self) -> Vec<(WorkerId, H)> {
        let idle: Vec<WorkerId> = self.idle.drain(..).collect();
        let mut checks = Vec::with_capacity(idle.len());
        for id in idle {
            let Some(worker) = self.workers.get_mut(&id) else {
                continue;
            };
            let Some(handle) = worker.handle.clone() else {
                continue;
            };
            worker.health_checking = true;
            checks.push((id, handle));
        }
        checks
    }

    /// Worker `id`'s health check answered (`healthy`) or timed out.
    pub(crate) fn health_checked(
        &mut self,
        id: WorkerId,
        healthy: bool,
        timed_out: bool,
        fx: &mut Effects<H, T>,
    ) -> HealthNext {
        if healthy {
            self.confirm_spawn(id);
        }
        self.apply(
            id,
            if healthy {
                Event::HealthOk
            } else {
                Event::HealthFailed
            },
        );
        // A worker that reached the failure threshold is never lent
        // again: retire it now rather than wait for a late reply.
        let doomed = self
            .workers
            .get(&id)
            .is_some_and(|worker| worker.lifecycle.state() == State::Terminating);
        if !timed_out || doomed {
            self.return_from_health_check(id, fx);
            return HealthNext::Done;
        }
        tracing::warn!(worker_id = id, "health check timed out");
        HealthNext::AwaitLate
    }

    /// A timed-out health check's ping ended (`answered`) or never did: a
    /// worker that never answered is killed.
    pub(crate) fn health_late(&mut self, id: WorkerId, answered: bool, fx: &mut Effects<H, T>) {
        if !answered {
            if let Some(handle) = self
                .workers
                .get(&id)
                .and_then(|worker| worker.handle.clone())
            {
                fx.push(Effect::Kill(handle));
            }
            self.apply(id, Event::Shutdown);
        }
        self.return_from_health_check(id, fx);
    }

    fn return_from_health_check(&mut self, id: WorkerId, fx: &mut Effects<H, T>) {
        if let Some(worker) = self.workers.get_mut(&id) {
            worker.health_checking = false;
        }
        self.settle(id, fx);
    }
}

//! Health checks on idle workers.

use std::sync::{Arc, Weak};
use std::time::Duration;

use pypool_lifecycle::{Event, State as WorkerState};
use pypool_seam::{Outcome, Request, WorkerConnection, WorkerId};

use crate::inner::Inner;

/// The command a health check sends; every worker serves it.
const HEALTH_COMMAND: &str = "ping";

/// Checks idle workers every `interval` until the pool is gone or shuts down.
pub(crate) fn start(inner: Weak<Inner>, interval: Duration) {
    crate::periodic::every(inner, interval, |inner| async move {
        inner.check_idle_workers();
    });
}

impl Inner {
    /// Lends every idle worker to a health check (it is not handed to
    /// requests meanwhile) and checks them concurrently.
    pub(crate) fn check_idle_workers(self: &Arc<Self>) {
        let mut state = self.lock();
        let idle: Vec<WorkerId> = state.idle.drain(..).collect();
        for id in idle {
            let Some(slot) = state.workers.get_mut(&id) else {
                continue;
            };
            let Some(connection) = slot.connection.clone() else {
                continue;
            };
            slot.health_checking = true;
            let inner = Arc::clone(self);
            tokio::spawn(async move { inner.check_one(id, connection).await });
        }
    }

    async fn check_one(self: Arc<Self>, id: WorkerId, connection: Arc<dyn WorkerConnection>) {
        let request = Request {
            id: self.next_request_id(),
            command: HEALTH_COMMAND.to_owned(),
            args: serde_json::Map::new(),
        };
        let call = connection.call(request);
        tokio::pin!(call);
        let first = tokio::time::timeout(self.config.timeouts.health_check, &mut call).await;
        let healthy = matches!(first, Ok(Ok(Outcome::Ok { .. })));
        let timed_out = first.is_err();
        {
            let mut state = self.lock();
            if healthy {
                self.confirm_spawn(&mut state, id);
            }
            self.apply(
                &mut state,
                id,
                if healthy {
                    Event::HealthOk
                } else {
                    Event::HealthFailed
                },
            );
            // A worker that reached the failure threshold is never lent
            // again: retire it now rather than wait for a late reply.
            let doomed = state
                .workers
                .get(&id)
                .is_some_and(|slot| slot.lifecycle.state() == WorkerState::Terminating);
            if !timed_out || doomed {
                self.return_from_health_check(&mut state, id);
                return;
            }
        }
        tracing::warn!(worker_id = id, "health check timed out");
        // The ping is still pending on the worker: wait for it (up to the
        // request deadline) so the worker is never lent with a reply pending.
        let late = tokio::time::timeout(self.config.timeouts.request, &mut call).await;
        let mut state = self.lock();
        if late.is_err() {
            if let Some(slot) = state.workers.get(&id) {
                if let Some(connection) = &slot.connection {
                    connection.kill();
                }
            }
            self.apply(&mut state, id, Event::Shutdown);
        }
        self.return_from_health_check(&mut state, id);
    }

    fn return_from_health_check(&self, state: &mut crate::inner::State, id: WorkerId) {
        if let Some(slot) = state.workers.get_mut(&id) {
            slot.health_checking = false;
        }
        self.settle(state, id);
    }
}

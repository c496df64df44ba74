//! Starting workers: concurrently, behind the spawn breaker, with bounded
//! backoff between failed attempts.

use std::sync::Arc;

use pypool_breaker::{CallOutcome, Permit};
use pypool_lifecycle::{Event, ExitInfo};
use pypool_recovery::RandomSource;
use pypool_seam::{SpawnError, SpawnRequest, WorkerConnection, WorkerExit, WorkerId};

use crate::inner::{Inner, State};
use crate::slot::Slot;
use crate::{PoolError, metrics};

impl Inner {
    /// Adds a Starting slot and spawns its worker in the background.
    pub(crate) fn start_spawn(&self, state: &mut State, overflow: bool) {
        let Some(inner) = self.strong() else {
            return;
        };
        let id = self.next_worker_id();
        state
            .workers
            .insert(id, Slot::starting(self.new_lifecycle(), overflow));
        tokio::spawn(async move { inner.spawn_until_started(id).await });
    }

    /// Spawns worker `id` until it starts, the slot is no longer wanted, or
    /// the pool shuts down. Failures are paced by the spawn breaker and the
    /// recovery policy's backoff, so a broken interpreter cannot cause a
    /// spawn storm.
    async fn spawn_until_started(self: Arc<Self>, id: WorkerId) {
        let mut attempt: u32 = 0;
        loop {
            let permit = {
                let mut state = self.lock();
                if state.shutting_down || !state.workers.contains_key(&id) {
                    state.workers.remove(&id);
                    self.publish(&state);
                    return;
                }
                let admitted = state.spawn_breaker.try_acquire();
                metrics::breaker_state(&self.config.name, "spawn", state.spawn_breaker.state());
                admitted
            };
            let permit: Permit = match permit {
                Ok(permit) => permit,
                Err(rejected) => {
                    tracing::debug!(worker_id = id, %rejected, "spawn breaker open; waiting");
                    tokio::time::sleep(rejected.retry_after).await;
                    continue;
                }
            };
            attempt = attempt.saturating_add(1);
            let spawned = self
                .spawner
                .spawn(SpawnRequest {
                    worker_id: id,
                    handshake_timeout: self.config.timeouts.spawn,
                })
                .await;
            let delay = match spawned {
                Ok(connection) => {
                    self.on_spawned(id, permit, connection);
                    return;
                }
                Err(error) => {
                    let mut state = self.lock();
                    let delay = self.on_spawn_failed(&mut state, id, permit, attempt, error);
                    drop(state);
                    delay
                }
            };
            tokio::time::sleep(delay).await;
        }
    }

    fn on_spawned(&self, id: WorkerId, permit: Permit, connection: Arc<dyn WorkerConnection>) {
        let mut state = self.lock();
        metrics::spawned(&self.config.name, true);
        let wanted = !state.shutting_down && state.workers.contains_key(&id);
        if !wanted {
            // Shut down or resized away while starting: the connection's drop kills it.
            state.spawn_breaker.release(permit);
            state.workers.remove(&id);
            self.publish(&state);
            drop(state);
            connection.kill();
            return;
        }
        for command in &connection.handshake().commands {
            let idempotent = state
                .idempotent
                .entry(command.name.clone())
                .or_insert(false);
            *idempotent |= command.idempotent;
        }
        state.counters.spawned += 1;
        self.readiness
            .send_modify(|readiness| readiness.spawn_error = None);
        let watcher = self.watch_exit(id, Arc::clone(&connection));
        let capacity = connection.capacity().max(1);
        state.any_shared |= capacity > 1;
        if let Some(slot) = state.workers.get_mut(&id) {
            slot.capacity = capacity;
            slot.connection = Some(connection);
            slot.exit_watch = Some(watcher);
            // The spawn counts as a success for the spawn breaker only once
            // the worker has proved itself (see `Inner::confirm_spawn`).
            slot.spawn_permit = Some(permit);
        }
        self.apply(&mut state, id, Event::HandshakeOk);
        tracing::debug!(worker_id = id, "worker ready");
        self.settle(&mut state, id);
    }

    /// Records a failed spawn; returns how long to wait before the next attempt.
    fn on_spawn_failed(
        &self,
        state: &mut State,
        id: WorkerId,
        permit: Permit,
        attempt: u32,
        error: SpawnError,
    ) -> std::time::Duration {
        state.spawn_breaker.record(permit, CallOutcome::Failure);
        state.counters.spawn_failures += 1;
        metrics::spawned(&self.config.name, false);
        tracing::warn!(worker_id = id, %error, attempt, "worker failed to start");
        // The state machine sees the failure; the slot gets a fresh one for
        // the next attempt.
        self.apply(state, id, Event::HandshakeFailed);
        let fresh = self.new_lifecycle();
        if let Some(slot) = state.workers.get_mut(&id) {
            slot.lifecycle = fresh;
        }
        self.readiness
            .send_modify(|readiness| readiness.spawn_error = Some(error.clone()));
        // Requests waiting while no worker is alive would otherwise only
        // learn of a broken interpreter from a checkout timeout.
        if state.live_workers() == 0 {
            for waiter in state.waiters.drain(..) {
                let _ = waiter.sender.send(Err(PoolError::Spawn(error.clone())));
            }
        }
        self.publish(state);
        let rng: &mut dyn RandomSource = &mut state.rng;
        self.recovery.backoff(attempt, rng)
    }

    /// Worker `id` completed a request or passed a health check: its spawn
    /// was a success. A worker that dies before that counts as a failed
    /// spawn (see `retire`), so workers crashing on arrival cannot cause a
    /// respawn storm.
    pub(crate) fn confirm_spawn(&self, state: &mut State, id: WorkerId) {
        if let Some(permit) = state
            .workers
            .get_mut(&id)
            .and_then(|slot| slot.spawn_permit.take())
        {
            state.spawn_breaker.record(permit, CallOutcome::Success);
        }
    }

    /// Watches worker `id`'s process; when it ends, the slot goes and a
    /// replacement starts. The task is aborted when the slot is removed.
    fn watch_exit(
        &self,
        id: WorkerId,
        connection: Arc<dyn WorkerConnection>,
    ) -> tokio::task::JoinHandle<()> {
        let inner = self.myself.clone();
        tokio::spawn(async move {
            let exit = connection.exited().await;
            drop(connection);
            if let Some(inner) = inner.upgrade() {
                inner.on_exit(id, exit);
            }
        })
    }

    fn on_exit(&self, id: WorkerId, exit: WorkerExit) {
        let mut state = self.lock();
        let Some(slot) = state.workers.get_mut(&id) else {
            return;
        };
        // This task is the slot's exit watch: detach it rather than abort itself.
        drop(slot.exit_watch.take());
        let was = slot.lifecycle.state();
        self.apply(
            &mut state,
            id,
            Event::ProcessExited(ExitInfo {
                code: exit.code,
                signal: exit.signal,
            }),
        );
        tracing::warn!(worker_id = id, %exit, state = %was, "worker process ended");
        metrics::worker_exit(&self.config.name, &exit);
        self.retire(&mut state, id, crate::dispatch::Retirement::Failed);
    }
}

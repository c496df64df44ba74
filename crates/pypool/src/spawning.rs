//! The shell of spawning: the spawn attempts the core allows (behind the
//! spawn breaker, paced by the recovery policy's backoff), exit watches, and
//! stopping retired workers' processes.

use std::sync::Arc;
use std::time::Duration;

use pypool_lifecycle::ExitInfo;
use pypool_seam::{SpawnRequest, WorkerConnection, WorkerExit, WorkerId};

use crate::core::{Retirement, SpawnGate};
use crate::inner::{Conn, Inner};
use crate::metrics;

impl Inner {
    /// Spawns worker `id` until it starts, the slot is no longer wanted, or
    /// the pool shuts down. Failures are paced by the spawn breaker and the
    /// recovery policy's backoff, so a broken interpreter cannot cause a
    /// spawn storm.
    pub(crate) async fn spawn_until_started(self: Arc<Self>, id: WorkerId) {
        let mut attempt: u32 = 0;
        loop {
            let permit = match self.decide(|books, fx| books.core.spawn_gate(id, fx)) {
                SpawnGate::Go(permit) => permit,
                SpawnGate::Abandon => return,
                SpawnGate::Wait(retry_after) => {
                    tracing::debug!(worker_id = id, "spawn breaker open; waiting");
                    tokio::time::sleep(retry_after).await;
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
            match spawned {
                Ok(connection) => {
                    self.on_spawned(id, permit, connection);
                    return;
                }
                Err(error) => {
                    metrics::spawned(&self.config.name, false);
                    let delay = self.decide(|books, fx| {
                        books.core.spawn_failed(id, permit, attempt, &error, fx)
                    });
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn on_spawned(&self, id: WorkerId, permit: pypool_breaker::Permit, connection: Conn) {
        metrics::spawned(&self.config.name, true);
        let capacity = connection.capacity();
        let mut books = self.lock();
        let mut fx = Vec::new();
        let handshake = connection.handshake();
        let commands = handshake
            .commands
            .iter()
            .map(|command| (command.name.as_str(), command.idempotent));
        let wanted = books.core.spawned(
            id,
            permit,
            Arc::clone(&connection),
            commands,
            capacity,
            &mut fx,
        );
        if wanted {
            let watcher = self.watch_exit(id, Arc::clone(&connection));
            books.shelf.watch_exit(id, watcher);
            self.readiness
                .send_modify(|readiness| readiness.spawn_error = None);
        }
        self.carry_out(books, fx);
        if !wanted {
            // Shut down or resized away while starting: kill it.
            connection.kill();
        }
    }

    /// Watches worker `id`'s process; when it ends, the slot goes and a
    /// replacement starts. The task is aborted when the slot is removed.
    fn watch_exit(&self, id: WorkerId, connection: Conn) -> tokio::task::JoinHandle<()> {
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
        let info = ExitInfo {
            code: exit.code,
            signal: exit.signal,
        };
        let known = self.decide(|books, fx| {
            // This task is the worker's exit watch: detach it rather than abort itself.
            books.shelf.detach_exit_watch(id);
            books.core.exited(id, info, fx)
        });
        if known {
            tracing::warn!(worker_id = id, %exit, "worker process ended");
            metrics::worker_exit(&self.config.name, &exit);
        }
    }
}

/// Stops a removed worker: SIGTERM and a grace period when graceful, SIGKILL otherwise.
pub(crate) async fn stop_process(
    connection: Arc<dyn WorkerConnection>,
    how: Retirement,
    grace: Duration,
) {
    if how == Retirement::Graceful {
        connection.terminate();
        if tokio::time::timeout(grace, connection.exited())
            .await
            .is_ok()
        {
            return;
        }
    }
    connection.kill();
    let _ = tokio::time::timeout(grace, connection.exited()).await;
}

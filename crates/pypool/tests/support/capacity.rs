//! Pools of scripted workers that announce a capacity above 1, for the
//! capacity test files.
#![allow(clippy::unwrap_used, clippy::panic)]

use pypool::{Pool, PoolBuilder, Status, WorkerId};
use pypool_mock::{MockSpawner, PendingRequest, SpawnHandle, WorkerHandle};

use super::{NO_TIME, status_until, within};

/// Accepts the pool's next spawn with a handshake announcing `capacity`,
/// and waits until the worker is in the pool and in service.
pub async fn accept_with_capacity(
    pool: &Pool,
    spawns: &mut SpawnHandle,
    capacity: u32,
) -> WorkerHandle {
    let spawn = within(NO_TIME, "a spawn", spawns.next_spawn())
        .await
        .unwrap();
    let mut handshake = spawn.default_handshake();
    handshake.capacity = capacity;
    let worker = spawn.accept_with(handshake);
    let id = worker.worker_id();
    // Ready, or already serving callers that waited for it.
    status_until(pool, "the worker to be in service", |status| {
        status.worker_details.iter().any(|w| {
            w.id == id
                && matches!(
                    w.state,
                    pypool::WorkerState::Ready | pypool::WorkerState::Busy
                )
        })
    })
    .await;
    worker
}

/// A ready pool of `size` scripted workers of capacity `capacity`, no
/// overflow and no health checks, built by `configure`; workers by id.
pub async fn pool_of(
    size: usize,
    capacity: u32,
    commands: &[(&str, bool)],
    configure: impl FnOnce(PoolBuilder) -> PoolBuilder,
) -> (Pool, SpawnHandle, Vec<WorkerHandle>) {
    let (spawner, mut spawns) = MockSpawner::scripted_with_commands(
        commands
            .iter()
            .map(|(name, idempotent)| pypool_mock::command(name, *idempotent)),
    );
    let builder = super::scripted::builder(spawner, size).max_overflow(0);
    let pool = configure(builder).build().unwrap();
    let mut workers = Vec::new();
    for _ in 0..size {
        workers.push(accept_with_capacity(&pool, &mut spawns, capacity).await);
    }
    pool.ready().await.unwrap();
    workers.sort_by_key(WorkerHandle::worker_id);
    (pool, spawns, workers)
}

/// The next request worker `worker` receives, without time passing.
pub async fn request_on(worker: &mut WorkerHandle) -> PendingRequest {
    within(NO_TIME, "a request on the worker", worker.next_request())
        .await
        .unwrap()
}

/// How many requests the status shows in flight on worker `id`.
pub fn in_flight_on(status: &Status, id: WorkerId) -> usize {
    status
        .worker_details
        .iter()
        .find(|worker| worker.id == id)
        .map_or(0, |worker| worker.in_flight)
}

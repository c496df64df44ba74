//! Pools of scripted mock workers for the failure-mode test files: the test
//! accepts every spawn and answers every request itself through the
//! [`WorkerHandle`]s these helpers hand back.
#![allow(clippy::unwrap_used, clippy::panic)]

use pypool::{Pool, PoolBuilder, Status};
use pypool_mock::{MockSpawner, PendingRequest, PendingSpawn, SpawnHandle, WorkerHandle};
use serde_json::Value;

use super::{NO_TIME, PATIENCE, spawn_execute, status_until, until_ready, within};

/// A builder for a pool of `size` workers from `spawner`, without health
/// checks (so the only requests workers see are the test's).
pub fn builder(spawner: MockSpawner, size: usize) -> PoolBuilder {
    Pool::builder()
        .size(size)
        .spawner(spawner)
        .health_check_interval(None)
}

/// A pool of `size` scripted workers without health checks (unless
/// `configure` turns them on), all ready, sorted by id.
pub async fn scripted_pool(
    size: usize,
    configure: impl FnOnce(PoolBuilder) -> PoolBuilder,
) -> (Pool, SpawnHandle, Vec<WorkerHandle>) {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = configure(builder(spawner, size)).build().unwrap();
    let workers = accept_all(&pool, &mut spawns, size).await;
    (pool, spawns, workers)
}

/// [`scripted_pool`] whose workers announce `commands` in their handshake
/// (each command gets its own breaker; unannounced ones share one).
pub async fn scripted_pool_announcing(
    size: usize,
    commands: &[&str],
    configure: impl FnOnce(PoolBuilder) -> PoolBuilder,
) -> (Pool, SpawnHandle, Vec<WorkerHandle>) {
    let (spawner, mut spawns) = MockSpawner::scripted_with_commands(
        commands
            .iter()
            .map(|name| pypool_mock::command(name, false)),
    );
    let pool = configure(builder(spawner, size)).build().unwrap();
    let workers = accept_all(&pool, &mut spawns, size).await;
    (pool, spawns, workers)
}

/// Accepts the pool's next `count` spawns and waits until the pool is ready;
/// returns the workers sorted by id.
pub async fn accept_all(pool: &Pool, spawns: &mut SpawnHandle, count: usize) -> Vec<WorkerHandle> {
    let mut workers = Vec::new();
    for _ in 0..count {
        workers.push(accept_spawn(spawns).await);
    }
    pool.ready().await.unwrap();
    workers.sort_by_key(WorkerHandle::worker_id);
    workers
}

/// The pool's next spawn, not yet answered.
pub async fn next_spawn(spawns: &mut SpawnHandle) -> PendingSpawn {
    within(PATIENCE, "a spawn", spawns.next_spawn())
        .await
        .unwrap()
}

/// Accepts the pool's next spawn.
pub async fn accept_spawn(spawns: &mut SpawnHandle) -> WorkerHandle {
    next_spawn(spawns).await.accept()
}

/// Accepts the pool's next spawn, which must come without any time passing,
/// and waits until that worker is idle in the pool.
pub async fn accept_next(pool: &Pool, spawns: &mut SpawnHandle) -> WorkerHandle {
    let spawn = within(NO_TIME, "a spawn", spawns.next_spawn()).await;
    let worker = spawn.unwrap().accept();
    until_ready(pool, worker.worker_id()).await;
    worker
}

/// Accepts the replacement the pool spawns on its own after losing a worker,
/// and waits until the pool is back at `size` ready workers, both without
/// any time passing; returns the replacement and the pool's status then.
pub async fn refill(pool: &Pool, spawns: &mut SpawnHandle, size: usize) -> (WorkerHandle, Status) {
    let replacement = within(NO_TIME, "the replacement spawn", spawns.next_spawn())
        .await
        .unwrap()
        .accept();
    let status = status_until(pool, "the pool back at full size", |status| {
        status.ready == size
    })
    .await;
    (replacement, status)
}

/// The next request `worker` receives.
pub async fn next_request(worker: &mut WorkerHandle) -> PendingRequest {
    within(PATIENCE, "a request", worker.next_request())
        .await
        .unwrap()
}

/// Sends `command` with `args` through the pool, answers it on `worker`
/// (which must receive it without any time passing) with `reply`, and
/// asserts that the caller gets that reply.
pub async fn serve(
    pool: &Pool,
    worker: &mut WorkerHandle,
    command: &str,
    args: Value,
    reply: Value,
) {
    let call = spawn_execute(pool, command, args);
    let pending = within(NO_TIME, "a request", worker.next_request())
        .await
        .unwrap();
    let _ = pending.reply(reply.clone());
    assert_eq!(call.await.unwrap().unwrap(), reply);
}

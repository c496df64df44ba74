//! Helpers shared by the facade's test files: small waiting and spawning
//! helpers, pools of scripted mock workers for the failure-mode files
//! ([`scripted`]), and a fake Python runtime behind scripted mock workers for
//! the session, program and settings files ([`fake_runtime`]).
#![allow(
    dead_code,
    unused_imports,
    reason = "each test file is its own crate and uses only part of the helpers"
)]
#![allow(clippy::unwrap_used, clippy::panic)]

pub mod capacity;
pub mod fake_runtime;
pub mod scripted;

use std::future::Future;
use std::time::Duration;

use pypool::{
    Pool, PoolBuilder, PoolError, Session, ShutdownReport, Status, WorkerId, WorkerState,
};
use pypool_mock::{MockSpawner, SpawnHandle, command};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub use fake_runtime::{Answer, FakeRuntime, ProgramCall, Seen};

/// Events the pool produces without any (paused) time passing.
pub const NO_TIME: Duration = Duration::from_millis(1);

/// Ten minutes of (paused) time: the budget for events that may wait on the
/// pool's own timers, so that a test fails rather than hangs.
pub const PATIENCE: Duration = Duration::from_secs(600);

/// Awaits `future`, failing the test if it needs more than `budget` of
/// tokio's (paused) time.
pub async fn within<F: Future>(budget: Duration, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(budget, future).await {
        Ok(output) => output,
        Err(_elapsed) => panic!("{what} did not happen within {budget:?}"),
    }
}

/// A builder for a pool of scripted workers without health checks (so the
/// only requests workers see are the test's), announcing the commands the
/// fake runtime serves.
pub fn scripted_builder(size: usize) -> (PoolBuilder, SpawnHandle) {
    let (spawner, spawns) = MockSpawner::scripted_with_commands([
        command(fake_runtime::RUN_PROGRAM, false),
        command(fake_runtime::APPLY_SETTINGS, true),
        command(fake_runtime::OCCUPY, false),
        command("echo", true),
    ]);
    (scripted::builder(spawner, size), spawns)
}

/// Builds the pool, serves its first `size` workers with a fake runtime and
/// waits until they are all ready.
pub async fn start_pool(
    builder: PoolBuilder,
    mut spawns: SpawnHandle,
    size: usize,
) -> (Pool, SpawnHandle, FakeRuntime) {
    let pool = builder.build().unwrap();
    let runtime = FakeRuntime::new();
    for _ in 0..size {
        runtime.accept_next(&mut spawns).await;
    }
    within(NO_TIME, "the pool to be ready", pool.ready())
        .await
        .unwrap();
    (pool, spawns, runtime)
}

/// A ready pool of `size` fake-runtime workers with the default settings.
pub async fn fake_pool(size: usize) -> (Pool, SpawnHandle, FakeRuntime) {
    let (builder, spawns) = scripted_builder(size);
    start_pool(builder, spawns, size).await
}

/// Runs `pool.execute(command, args)` in its own task.
pub fn spawn_execute(
    pool: &Pool,
    command: &str,
    args: Value,
) -> JoinHandle<Result<Value, PoolError>> {
    let pool = pool.clone();
    let command = command.to_owned();
    tokio::spawn(async move { pool.execute(&command, args).await })
}

/// The error the caller of `call` gets, without any time passing.
pub async fn caller_error(call: JoinHandle<Result<Value, PoolError>>) -> PoolError {
    within(NO_TIME, "the caller's answer", call)
        .await
        .unwrap()
        .unwrap_err()
}

/// Runs `pool.ready()` in its own task.
pub fn spawn_ready(pool: &Pool) -> JoinHandle<Result<(), PoolError>> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.ready().await })
}

/// Runs `pool.shutdown(deadline)` in its own task.
pub fn spawn_shutdown(pool: &Pool, deadline: Duration) -> JoinHandle<ShutdownReport> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.shutdown(deadline).await })
}

/// Runs `session.execute(command, args)` in its own task.
pub fn spawn_session_execute(
    session: &Session,
    command: &str,
    args: Value,
) -> JoinHandle<Result<Value, PoolError>> {
    let session = session.clone();
    let command = command.to_owned();
    tokio::spawn(async move { session.execute(&command, args).await })
}

/// The worker that produced a fake-runtime result.
pub fn served_by(result: &Value) -> WorkerId {
    result["worker_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no worker_id in {result}"))
}

/// Waits, without letting time pass, until the pool's status satisfies
/// `condition`; returns the status that satisfied it.
pub async fn status_until(
    pool: &Pool,
    what: &str,
    condition: impl FnMut(&Status) -> bool,
) -> Status {
    within(NO_TIME, what, pool.wait_until(condition)).await
}

/// The ids of the pool's workers, in the order the status lists them.
pub fn worker_ids(status: &Status) -> Vec<WorkerId> {
    status
        .worker_details
        .iter()
        .map(|worker| worker.id)
        .collect()
}

/// The id of the (first) worker the status shows busy.
pub fn busy_worker_id(status: &Status) -> WorkerId {
    status
        .worker_details
        .iter()
        .find(|worker| worker.state == WorkerState::Busy)
        .unwrap()
        .id
}

/// Waits until the pool's status satisfies `condition`, checking it again
/// after each yield to the scheduler but never letting (paused) time pass;
/// returns the status that satisfied it.
pub async fn eventually(pool: &Pool, what: &str, condition: impl Fn(&Status) -> bool) -> Status {
    for _ in 0..1_000 {
        let status = pool.status();
        if condition(&status) {
            return status;
        }
        tokio::task::yield_now().await;
    }
    panic!("never true: {what}; last status: {:#?}", pool.status());
}

/// Waits until worker `id` is idle in the pool.
pub async fn until_ready(pool: &Pool, id: WorkerId) {
    status_until(pool, "the worker to be ready", |status| {
        status
            .worker_details
            .iter()
            .any(|worker| worker.id == id && worker.state == WorkerState::Ready)
    })
    .await;
}

/// Waits until worker `id` has left the pool.
pub async fn until_gone(pool: &Pool, id: WorkerId) {
    status_until(pool, "the worker to leave the pool", |status| {
        status.worker_details.iter().all(|worker| worker.id != id)
    })
    .await;
}

/// Workers kept busy by `occupy` requests until released.
pub struct Occupation {
    calls: Vec<JoinHandle<Result<Value, PoolError>>>,
    /// The workers holding an `occupy` request.
    pub workers: Vec<WorkerId>,
}

impl Occupation {
    /// Releases every occupied worker and waits until each `occupy` call has
    /// returned (so its worker is back in the pool).
    pub async fn release(self, runtime: &FakeRuntime) {
        runtime.release_all();
        for call in self.calls {
            let result = within(NO_TIME, "an occupy call to return", call).await;
            result.unwrap().unwrap();
        }
    }
}

/// Sends `count` anonymous `occupy` requests and waits until `count` workers
/// hold one.
pub async fn occupy(pool: &Pool, runtime: &FakeRuntime, count: usize) -> Occupation {
    let calls = (0..count)
        .map(|_| spawn_execute(pool, fake_runtime::OCCUPY, json!({})))
        .collect();
    let workers = within(
        NO_TIME,
        "the workers to be occupied",
        runtime.wait_occupied(count),
    )
    .await;
    Occupation { calls, workers }
}

/// Occupies every worker but `free` (the pool has `size` ready workers):
/// occupies them all, then releases `free` alone.
pub async fn occupy_all_but(
    pool: &Pool,
    runtime: &FakeRuntime,
    size: usize,
    free: WorkerId,
) -> Occupation {
    let calls: Vec<_> = (0..size)
        .map(|_| spawn_execute(pool, fake_runtime::OCCUPY, json!({})))
        .collect();
    let all = within(
        NO_TIME,
        "every worker to be occupied",
        runtime.wait_occupied(size),
    )
    .await;
    assert!(all.contains(&free), "worker {free} is not in the pool");
    runtime.release(free);
    let (finished, _index, kept) = within(
        NO_TIME,
        "the freed worker's occupy call to return",
        futures::future::select_all(calls),
    )
    .await;
    assert_eq!(served_by(&finished.unwrap().unwrap()), free);
    until_ready(pool, free).await;
    let busy: Vec<WorkerId> = all.into_iter().filter(|worker| *worker != free).collect();
    Occupation {
        calls: kept,
        workers: busy,
    }
}

/// Runs `test` on a paused current-thread runtime with a local metrics
/// recorder installed; returns what the request path recorded.
pub fn record_metrics<Fut: Future<Output = ()>>(
    test: impl FnOnce() -> Fut,
) -> metrics_util::debugging::Snapshot {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(test());
    });
    snapshotter.snapshot()
}

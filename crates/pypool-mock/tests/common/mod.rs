//! Helpers shared by the mock's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use pypool_mock::{MockSpawner, SpawnHandle, WorkerHandle};
use pypool_seam::{
    CallError, Outcome, Request, RequestId, SpawnError, SpawnRequest, WorkerConnection,
    WorkerSpawner,
};
use serde_json::{Map, Value};
use tokio::task::JoinHandle;

/// The handshake timeout the helpers ask for.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A spawn request for `worker_id` with [`HANDSHAKE_TIMEOUT`].
pub fn spawn_request(worker_id: u64) -> SpawnRequest {
    SpawnRequest {
        worker_id,
        handshake_timeout: HANDSHAKE_TIMEOUT,
    }
}

/// A request with no arguments.
pub fn request(id: RequestId, command: &str) -> Request {
    Request {
        id,
        command: command.to_owned(),
        args: Map::new(),
    }
}

/// A request whose arguments are the JSON object `args`.
pub fn request_with(id: RequestId, command: &str, args: Value) -> Request {
    let Value::Object(args) = args else {
        panic!("arguments must be a JSON object")
    };
    Request {
        id,
        command: command.to_owned(),
        args,
    }
}

/// Starts a `spawn` of `worker_id` on its own task.
pub fn start_spawn(
    spawner: &MockSpawner,
    request: SpawnRequest,
) -> JoinHandle<Result<Arc<dyn WorkerConnection>, SpawnError>> {
    let spawner = spawner.clone();
    tokio::spawn(async move { spawner.spawn(request).await })
}

/// A scripted spawner with one accepted worker (id 1).
pub async fn scripted_worker() -> (
    MockSpawner,
    SpawnHandle,
    Arc<dyn WorkerConnection>,
    WorkerHandle,
) {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let spawning = start_spawn(&spawner, spawn_request(1));
    let worker = spawns.next_spawn().await.unwrap().accept();
    let connection = spawning.await.unwrap().unwrap();
    (spawner, spawns, connection, worker)
}

/// Starts `connection.call(request(id, command))` on its own task.
pub fn start_call(
    connection: &Arc<dyn WorkerConnection>,
    id: RequestId,
    command: &str,
) -> JoinHandle<Result<Outcome, CallError>> {
    let connection = Arc::clone(connection);
    let request = request(id, command);
    tokio::spawn(async move { connection.call(request).await })
}

/// The result of an `Ok` outcome.
pub fn ok_result(outcome: Result<Outcome, CallError>) -> Value {
    match outcome {
        Ok(Outcome::Ok { result }) => result,
        other => panic!("expected an ok outcome, got {other:?}"),
    }
}

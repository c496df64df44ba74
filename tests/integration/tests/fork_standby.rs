//! Fork start mode's standby: after a fork-started worker the spawner keeps
//! one worker forked ahead of need, which the next spawn adopts (it announces
//! the adopted id); a standby that died is replaced by a plain fork; nothing
//! of it outlives the spawner.
#![cfg(feature = "real-python")]
#![allow(clippy::panic, reason = "a test fails by panicking")]

use std::sync::Arc;

use pypool_integration::{bounded, config, poll_until, process_alive, request, spawn_from};
use pypool_process::{PythonSpawner, StartMethod};
use pypool_seam::{Outcome, SpawnRequest, WorkerConnection, WorkerSpawner};
use serde_json::json;

async fn ping_answers_as(worker: &Arc<dyn WorkerConnection>, worker_id: u64) {
    match bounded("a ping", worker.call(request(1, "ping", json!({})))).await {
        Ok(Outcome::Ok { result }) => assert_eq!(result["worker_id"], json!(worker_id)),
        other => panic!("ping failed: {other:?}"),
    }
}

async fn standby_of(spawner: &PythonSpawner) -> u32 {
    let mut pid = None;
    poll_until("a standby is forked", || {
        pid = spawner.standby_pid();
        pid.is_some()
    })
    .await;
    pid.unwrap_or_default()
}

fn fork_spawner(standby: bool) -> PythonSpawner {
    PythonSpawner::new(
        config(&[])
            .with_start_method(StartMethod::Fork)
            .with_standby(standby),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_spawn_adopts_the_standby_which_announces_its_new_id() {
    let spawner = fork_spawner(true);
    let first = spawn_from(&spawner, 1).await;
    ping_answers_as(&first, 1).await;
    let standby = standby_of(&spawner).await;
    assert_ne!(first.process_id(), Some(standby));

    let second = spawn_from(&spawner, 2).await;
    assert_eq!(
        second.process_id(),
        Some(standby),
        "the standby was not adopted"
    );
    assert_eq!(second.handshake().worker_id, 2);
    ping_answers_as(&second, 2).await;
    // A new standby replaces the adopted one.
    let next = standby_of(&spawner).await;
    assert_ne!(next, standby);
    assert!(process_alive(next));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_that_died_is_replaced_by_a_fork() {
    let spawner = fork_spawner(true);
    let first = spawn_from(&spawner, 1).await;
    let standby = standby_of(&spawner).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(standby).expect("a pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("the standby can be killed");
    poll_until("the dead standby is noticed", || {
        spawner.standby_pid() != Some(standby)
    })
    .await;

    let second = spawn_from(&spawner, 2).await;
    assert_ne!(second.process_id(), Some(standby));
    assert_eq!(second.handshake().worker_id, 2);
    ping_answers_as(&second, 2).await;
    ping_answers_as(&first, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_standby_no_process_is_forked_ahead() {
    let spawner = fork_spawner(false);
    let first = spawn_from(&spawner, 1).await;
    let second = spawn_from(&spawner, 2).await;
    ping_answers_as(&first, 1).await;
    ping_answers_as(&second, 2).await;
    assert_eq!(spawner.standby_pid(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_ends_with_the_spawner() {
    let spawner = fork_spawner(true);
    let first = spawn_from(&spawner, 1).await;
    let standby = standby_of(&spawner).await;
    drop(first);
    drop(spawner);
    poll_until("the standby exits", || !process_alive(standby)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_id_already_forked_is_refused_and_the_first_worker_is_untouched() {
    // Forked, not adopted: the template's events name a forked worker by its
    // id (an adopted standby keeps its own name, which no pool id reaches).
    let spawner = fork_spawner(false);
    let first = spawn_from(&spawner, 1).await;
    let again = bounded(
        "a second spawn under the same id",
        spawner.spawn(SpawnRequest {
            worker_id: 1,
            handshake_timeout: pypool_integration::HANDSHAKE_TIMEOUT,
        }),
    )
    .await;
    let error = match again {
        Ok(_) => panic!("a second worker under id 1 was started"),
        Err(error) => error,
    };
    assert!(error.to_string().contains("already in use"), "{error}");
    ping_answers_as(&first, 1).await;
}

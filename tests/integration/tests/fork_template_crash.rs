//! Fork start mode, the template dies (SIGKILL): spawns waiting for a fork
//! get a typed `TemplateExited` error, the workers forked from it end, and
//! the next spawn starts a new template — in a pool too, whose replacements
//! go through its spawn path (and breaker) as any spawn does.
#![cfg(feature = "real-python")]
#![allow(clippy::panic, reason = "a test fails by panicking")]

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pypool_integration::{HANDSHAKE_TIMEOUT, bounded, config, pool_builder, request};
use pypool_process::{PythonSpawner, StartMethod};
use pypool_seam::{Outcome, SpawnError, SpawnRequest, WorkerConnection, WorkerSpawner};
use serde_json::{Value, json};

fn signal(pid: u64, signal: Signal) {
    kill(Pid::from_raw(i32::try_from(pid).expect("pid fits")), signal).expect("signal");
}

async fn probe(worker: &Arc<dyn WorkerConnection>) -> Value {
    match bounded("a probe", worker.call(request(1, "probe", json!({})))).await {
        Ok(Outcome::Ok { result }) => result,
        other => panic!("probe failed: {other:?}"),
    }
}

fn spawn_request(worker_id: u64) -> SpawnRequest {
    SpawnRequest {
        worker_id,
        handshake_timeout: HANDSHAKE_TIMEOUT,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_spawns_get_a_typed_error_and_the_next_spawn_restarts_the_template() {
    // No standby: the spawns below must wait for forks (an adopted standby
    // needs no word from the template).
    let spawner = PythonSpawner::new(
        config(&["fork_probe.py"])
            .with_start_method(StartMethod::Fork)
            .with_standby(false),
    );
    let first = bounded("the first worker", spawner.spawn(spawn_request(1)))
        .await
        .expect("the first worker starts");
    let template = probe(&first).await["imported_in"]
        .as_u64()
        .expect("the template's pid");
    // A stopped template reads no command. Polled once, each spawn takes the
    // live template, sends its `fork` (the socket buffers it) and waits for
    // the answer: both are waiting for a fork when the template dies.
    signal(template, Signal::SIGSTOP);
    let mut second = std::pin::pin!(spawner.spawn(spawn_request(2)));
    let mut third = std::pin::pin!(spawner.spawn(spawn_request(3)));
    assert!(futures::poll!(second.as_mut()).is_pending());
    assert!(futures::poll!(third.as_mut()).is_pending());
    signal(template, Signal::SIGKILL);
    for spawn in [second, third] {
        let error = bounded("a waiting spawn's end", spawn)
            .await
            .expect_err("its template died");
        assert!(
            matches!(error, SpawnError::TemplateExited { .. }),
            "expected TemplateExited, got {error:?}"
        );
        assert!(error.to_string().contains("template"), "{error}");
    }
    // The worker forked from it is taken down with it.
    let exit = bounded("the forked worker's end", first.exited()).await;
    assert_eq!(exit.signal, Some(9), "{exit}");
    // The next spawn starts a new template.
    let next = bounded("a spawn after the crash", spawner.spawn(spawn_request(4)))
        .await
        .expect("a new template forks it");
    let after = probe(&next).await;
    assert_ne!(after["imported_in"].as_u64(), Some(template), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_replaces_every_worker_of_a_killed_template_from_a_new_one() {
    let pool = pool_builder(&["fork_probe.py"])
        .start_method(StartMethod::Fork)
        .size(2)
        .build()
        .expect("pool builds");
    bounded("the pool's workers", pool.ready())
        .await
        .expect("workers start");
    let template = pool.execute("probe", json!({})).await.expect("a probe")["imported_in"]
        .as_u64()
        .expect("the template's pid");
    let before: Vec<u32> = pool
        .status()
        .worker_details
        .iter()
        .filter_map(|w| w.pid)
        .collect();
    signal(template, Signal::SIGKILL);
    let status = bounded(
        "two new workers",
        pool.wait_until(|status| {
            status.ready == 2
                && status
                    .worker_details
                    .iter()
                    .filter_map(|w| w.pid)
                    .all(|pid| !before.contains(&pid))
        }),
    )
    .await;
    assert_eq!(status.workers, 2);
    for _ in 0..4 {
        let probe = pool.execute("probe", json!({})).await.expect("a probe");
        assert_ne!(probe["imported_in"].as_u64(), Some(template), "{probe}");
    }
    bounded("shutdown", pool.shutdown(Duration::from_secs(10))).await;
}

//! Fork start mode: workers are forked from one template that imported the
//! handlers once; each has its own pid, process group, random state,
//! descriptors and logging; import errors surface as in spawn mode; a
//! replacement forks from the same template.
#![cfg(feature = "real-python")]
#![allow(clippy::panic, reason = "a test fails by panicking")]

use std::collections::HashSet;
use std::sync::Arc;

use pypool_integration::{HANDSHAKE_TIMEOUT, bounded, config, fixture, request, spawn_from};
use pypool_process::{PythonSpawner, StartMethod};
use pypool_seam::{Outcome, SpawnError, SpawnRequest, WorkerConnection, WorkerSpawner};
use serde_json::{Value, json};

fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process exists");
    let (_, rest) = stat.rsplit_once(')').expect("a stat line");
    rest.split_whitespace()
        .nth(1)
        .and_then(|parent| parent.parse().ok())
        .expect("a parent pid")
}

fn host_channels() -> HashSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("our descriptors")
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .map(|target| target.display().to_string())
        .collect()
}

async fn probe(worker: &Arc<dyn WorkerConnection>) -> Value {
    match bounded("a probe", worker.call(request(1, "probe", json!({})))).await {
        Ok(Outcome::Ok { result }) => result,
        other => panic!("probe failed: {other:?}"),
    }
}

fn spawner(method: StartMethod, handlers: &[&str]) -> PythonSpawner {
    PythonSpawner::new(config(handlers).with_start_method(method))
}

/// The pipe and socket inodes among a probe's open descriptors.
fn channels(probe: &Value) -> HashSet<String> {
    probe["fd_targets"]
        .as_object()
        .expect("fd targets")
        .values()
        .filter_map(Value::as_str)
        .filter(|target| target.starts_with("pipe:") || target.starts_with("socket:"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_forked_from_one_template_and_keep_nothing_of_each_other() {
    let spawner = spawner(StartMethod::Fork, &["fork_probe.py"]);
    let mut workers = Vec::new();
    for worker_id in 1..=3 {
        workers.push(spawn_from(&spawner, worker_id).await);
    }
    let mut probes = Vec::new();
    for (index, worker) in workers.iter().enumerate() {
        assert_eq!(worker.handshake().worker_id, index as u64 + 1);
        probes.push(probe(worker).await);
    }
    let template = probes[0]["imported_in"].as_u64().expect("a pid");
    let host = std::process::id();
    // Pipes this test process leaves open to its children (a jobserver, the
    // harness) reach every worker in any start mode; only the rest count.
    let inherited = host_channels();
    let mut seen_channels: HashSet<String> = HashSet::new();
    for (probe, worker) in probes.iter().zip(&workers) {
        // Imported once, in the template; the worker is another process.
        assert_eq!(probe["imported_in"].as_u64(), Some(template), "{probe}");
        assert_ne!(probe["pid"].as_u64(), Some(template));
        // The process the host signals is the template's child (the
        // worker's guardian), and leads the worker's own process group.
        let guardian = worker.process_id().expect("a pid");
        assert_eq!(u64::from(parent_of(guardian)), template);
        assert_ne!(parent_of(guardian), host);
        assert_eq!(probe["ppid"].as_u64(), Some(u64::from(guardian)));
        assert_eq!(probe["pgid"].as_u64(), Some(u64::from(guardian)));
        assert_eq!(
            worker.handshake().pid,
            probe["pid"].as_u64().map(|pid| pid as u32).unwrap()
        );
        // Logging writes to stderr through a fresh handler: none of the
        // handlers it had at import (in the template) survives. (Handler
        // object ids cannot tell workers apart: forked from one heap, each
        // allocates its new handler at the same address.)
        assert_eq!(probe["log_stream_fd"], json!([2]), "{probe}");
        assert_eq!(probe["log_handlers"], json!(1), "{probe}");
        assert_eq!(probe["log_handlers_from_import"], json!(0), "{probe}");
        // No descriptor of the template's control socket, and no pipe of
        // another worker.
        let mine: HashSet<String> = channels(probe).difference(&inherited).cloned().collect();
        assert!(
            mine.iter().all(|target| !target.starts_with("socket:")),
            "{probe}"
        );
        assert!(
            mine.is_disjoint(&seen_channels),
            "worker shares a pipe with a sibling: {probe}"
        );
        seen_channels.extend(mine);
    }
    let pids: HashSet<_> = probes.iter().map(|probe| probe["pid"].clone()).collect();
    let groups: HashSet<_> = probes.iter().map(|probe| probe["pgid"].clone()).collect();
    let randoms: HashSet<_> = probes.iter().map(|probe| probe["random"].clone()).collect();
    assert_eq!(pids.len(), 3);
    assert_eq!(groups.len(), 3);
    assert_eq!(randoms.len(), 3, "each worker reseeds random: {randoms:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_mode_still_starts_an_interpreter_per_worker() {
    let spawner = spawner(StartMethod::Spawn, &["fork_probe.py"]);
    let worker = spawn_from(&spawner, 1).await;
    let probe = probe(&worker).await;
    assert_eq!(probe["imported_in"], probe["pid"], "{probe}");
    assert_eq!(
        parent_of(worker.process_id().expect("a pid")),
        std::process::id()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_forks_from_the_same_template() {
    let spawner = spawner(StartMethod::Fork, &["fork_probe.py"]);
    let first = spawn_from(&spawner, 1).await;
    let before = probe(&first).await;
    first.kill();
    let exit = bounded("the killed worker's exit", first.exited()).await;
    assert_eq!(exit.signal, Some(9), "{exit}");
    let second = spawn_from(&spawner, 2).await;
    let after = probe(&second).await;
    assert_eq!(after["imported_in"], before["imported_in"]);
    assert_ne!(after["pid"], before["pid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_error_surfaces_as_in_spawn_mode_to_every_waiting_spawn() {
    let spawner = spawner(StartMethod::Fork, &["broken_import.py"]);
    let spawns = (1..=3).map(|worker_id| {
        spawner.spawn(SpawnRequest {
            worker_id,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        })
    });
    let results = bounded("three failing spawns", futures::future::join_all(spawns)).await;
    for (index, result) in results.into_iter().enumerate() {
        let error = result.expect_err("a broken handler module cannot start");
        let SpawnError::StartupFailed {
            worker_id,
            kind,
            message,
            traceback,
            ..
        } = &error
        else {
            panic!("expected StartupFailed, got {error:?}")
        };
        assert_eq!(*worker_id, index as u64 + 1);
        assert_eq!(kind, "handler_import");
        assert!(message.contains("broken on purpose"), "{message}");
        assert!(
            traceback
                .as_deref()
                .is_some_and(|tb| tb.contains(&fixture("broken_import.py"))),
            "{traceback:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_with_threads_falls_back_to_spawning_every_worker() {
    let spawner = spawner(StartMethod::Fork, &["thread_at_import.py"]);
    for worker_id in 1..=2 {
        let worker = spawn_from(&spawner, worker_id).await;
        let reply = match bounded(
            "where_imported",
            worker.call(request(1, "where_imported", json!({}))),
        )
        .await
        {
            Ok(Outcome::Ok { result }) => result,
            other => panic!("where_imported failed: {other:?}"),
        };
        // Each worker imported the module itself: it was spawned, not forked.
        assert_eq!(reply["imported_in"], reply["pid"], "{reply}");
        assert_eq!(
            parent_of(worker.process_id().expect("a pid")),
            std::process::id()
        );
    }
}

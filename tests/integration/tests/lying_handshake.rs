//! The host trusts nothing a worker says about processes: a handshake whose
//! pid is 0, the host's own, an unrelated live process's or 4294967295 is a
//! handshake error; the host survives, the unrelated process survives, and
//! the worker the host really started is killed. Every signal goes to the
//! spawned process and its tree, whatever pid the worker reported.
#![cfg(feature = "real-python")]

use std::time::Duration;

use pypool_integration::{
    MARKER_ENV, config, marked_processes, process_alive, repo_root, spawn, unique_marker,
    wait_until,
};
use pypool_seam::SpawnError;

/// A configuration that starts `lying_worker.py`, reporting `lie` as its pid,
/// marked so the test can find what it started.
fn liar(lie: &str, marker: &str) -> pypool_process::PythonSpawnerConfig {
    let mut config = config(&[])
        .with_python_path(repo_root().join("tests").join("fixtures"))
        .with_env("PYPOOL_LIE_PID", lie)
        .with_env(MARKER_ENV, marker);
    config.worker_module = "lying_worker".to_owned();
    config
}

/// A live process that is no part of any worker, leading its own process
/// group (so that signalling "its group" would reach it).
struct Bystander(std::process::Child);

impl Bystander {
    fn start() -> Self {
        use std::os::unix::process::CommandExt;
        Self(
            std::process::Command::new("sleep")
                .arg("1000")
                .process_group(0)
                .spawn()
                .expect("sleep starts"),
        )
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn rejected(lie: u32) {
    let marker = unique_marker(&format!("liar-{lie}"));
    let error = spawn(liar(&lie.to_string(), &marker), 1)
        .await
        .expect_err("a pid outside the spawned tree is refused");
    assert!(
        matches!(&error, SpawnError::BadHandshake { reason, .. }
            if reason.contains(&format!("pid {lie}")) && reason.contains("descendants")),
        "a bad handshake naming the pid, got: {error:?}"
    );
    let gone = tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(10), || {
            marked_processes(&marker).is_empty()
        })
    })
    .await
    .expect("the poll runs");
    assert!(gone, "the lying worker the host started was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pid_zero_is_refused_and_the_host_survives() {
    rejected(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_own_pid_is_refused_and_the_host_survives() {
    rejected(std::process::id()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrelated_processs_pid_is_refused_and_it_survives() {
    let bystander = Bystander::start();
    rejected(bystander.pid()).await;
    assert!(
        process_alive(bystander.pid()),
        "the unrelated process survives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_pid_is_refused_and_the_worker_still_killed() {
    rejected(u32::MAX).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_descendants_pid_is_accepted_but_never_the_signal_target() {
    let marker = unique_marker("liar-child");
    let worker = spawn(liar("child", &marker), 2)
        .await
        .expect("a descendant's pid is a truthful enough handshake");
    let spawned = worker.process_id().expect("a spawned pid");
    assert_ne!(
        worker.handshake().pid,
        spawned,
        "the reported pid is the child's, not the spawned process's"
    );
    // The child may be between fork and exec when the handshake arrives
    // (its /proc environ briefly unreadable): wait for both, with a bound.
    let running = tokio::task::spawn_blocking({
        let marker = marker.clone();
        move || {
            wait_until(Duration::from_secs(10), || {
                marked_processes(&marker).len() >= 2
            })
        }
    })
    .await
    .expect("the poll runs");
    assert!(running, "worker and child run");
    drop(worker);
    let gone = tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(10), || {
            marked_processes(&marker).is_empty()
        })
    })
    .await
    .expect("the poll runs");
    assert!(gone, "dropping the connection kills the spawned tree");
}

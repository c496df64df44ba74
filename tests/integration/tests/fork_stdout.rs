//! Fork start mode: user code writing to fd 1 (print, `sys.stdout`,
//! `os.write(1, …)`, a C library's `puts`) — at import in the template, or
//! in a handler of a forked worker — never corrupts a frame stream.
#![cfg(feature = "real-python")]
#![allow(clippy::panic, reason = "a test fails by panicking")]

use pypool_integration::{HANDSHAKE_TIMEOUT, bounded, config, request};
use pypool_process::{PythonSpawner, StartMethod};
use pypool_seam::{Outcome, SpawnRequest, WorkerSpawner};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_fd_1_in_the_template_and_in_forked_workers_leave_the_frames_intact() {
    let spawner = PythonSpawner::new(
        config(&["noisy_import.py", "fork_probe.py"]).with_start_method(StartMethod::Fork),
    );
    let mut workers = Vec::new();
    for worker_id in 1..=2 {
        workers.push(
            bounded(
                "a forked worker",
                spawner.spawn(SpawnRequest {
                    worker_id,
                    handshake_timeout: HANDSHAKE_TIMEOUT,
                }),
            )
            .await
            .expect("the template's noise did not break its events or the handshake"),
        );
    }
    for id in 0..40u64 {
        for worker in &workers {
            let polluted = bounded(
                "pollute",
                worker.call(request(
                    id,
                    "pollute",
                    json!({ "text": format!("noise {id}") }),
                )),
            )
            .await
            .expect("answered");
            assert!(
                matches!(&polluted, Outcome::Ok { result } if result == &json!("polluted")),
                "{polluted:?}"
            );
            let ping = bounded(
                "ping",
                worker.call(request(1000 + id, "ping", json!({ "payload": id }))),
            )
            .await
            .expect("answered");
            let Outcome::Ok { result } = ping else {
                panic!("ping failed: {ping:?}")
            };
            assert_eq!(result["payload"], json!(id));
        }
    }
}

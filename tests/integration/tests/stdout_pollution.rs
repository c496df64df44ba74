//! User code that writes to stdout (print, fd 1, a subprocess) must not
//! corrupt the frame stream.
#![cfg(feature = "real-python")]

use pypool_integration::{config, request, spawn};
use pypool_seam::Outcome;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printing_handlers_leave_the_stream_intact() {
    let worker = spawn(config(&["handlers_basic.py"]), 1)
        .await
        .expect("worker starts");
    for id in 0..50u64 {
        let command = if id % 2 == 0 {
            "noisy_print"
        } else {
            "noisy_fd1"
        };
        let outcome = worker
            .call(request(
                id,
                command,
                json!({ "text": format!("line {id}\n") }),
            ))
            .await
            .expect("answered");
        assert!(
            matches!(outcome, Outcome::Ok { .. }),
            "{command} failed: {outcome:?}"
        );
        let ping = worker
            .call(request(1000 + id, "ping", json!({ "payload": id })))
            .await
            .expect("answered");
        let Outcome::Ok { result } = ping else {
            panic!("ping failed: {ping:?}")
        };
        assert_eq!(result["payload"], json!(id));
    }
    assert!(worker.try_exit().is_none());
}

//! A real worker answers many pings, correctly and in order of ids.
#![cfg(feature = "real-python")]

use pypool_integration::{config, request, spawn};
use pypool_seam::Outcome;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pings_get_ten_thousand_correct_replies() {
    let worker = spawn(config(&[]), 1).await.expect("worker starts");
    assert_eq!(worker.handshake().worker_id, 1);
    assert!(worker.handshake().commands.iter().any(|c| c.name == "ping"));
    let mut correct = 0;
    for id in 0..10_000u64 {
        let outcome = worker
            .call(request(id, "ping", json!({ "payload": id })))
            .await
            .expect("ping is answered");
        match outcome {
            Outcome::Ok { result } => {
                assert_eq!(result["pong"], json!(true));
                assert_eq!(
                    result["payload"],
                    json!(id),
                    "reply {id} carries its own payload"
                );
                correct += 1;
            }
            Outcome::Error { error } => panic!("ping {id} failed: {error}"),
        }
    }
    assert_eq!(correct, 10_000);
    assert_eq!(worker.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_are_matched_by_id() {
    let worker = spawn(config(&[]), 2).await.expect("worker starts");
    let calls = (0..200u64).map(|id| {
        let worker = worker.clone();
        async move {
            (
                id,
                worker
                    .call(request(id, "ping", json!({ "payload": id })))
                    .await,
            )
        }
    });
    for (id, outcome) in futures::future::join_all(calls).await {
        match outcome.expect("answered") {
            Outcome::Ok { result } => assert_eq!(result["payload"], json!(id)),
            Outcome::Error { error } => panic!("ping {id} failed: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_reports_the_worker() {
    let worker = spawn(config(&[]), 7).await.expect("worker starts");
    let outcome = worker
        .call(request(1, "info", json!({})))
        .await
        .expect("answered");
    let Outcome::Ok { result } = outcome else {
        panic!("info failed: {outcome:?}")
    };
    assert_eq!(result["worker_id"], json!(7));
    assert_eq!(result["pid"], json!(worker.handshake().pid));
    assert!(
        worker
            .resident_memory_bytes()
            .is_some_and(|bytes| bytes > 1_000_000)
    );
}

//! A handler that raises, or is called with bad arguments, gets an error reply
//! and the worker keeps serving.
#![cfg(feature = "real-python")]

use pypool_integration::{config, request, spawn};
use pypool_seam::{Outcome, RemoteErrorKind};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raising_handler_leaves_the_worker_alive() {
    let worker = spawn(config(&["handlers_basic.py"]), 1)
        .await
        .expect("worker starts");
    for round in 0..3u64 {
        let outcome = worker
            .call(request(round * 2, "fail", json!({ "message": "boom" })))
            .await
            .expect("answered");
        let Outcome::Error { error } = outcome else {
            panic!("fail succeeded: {outcome:?}")
        };
        assert_eq!(error.kind, RemoteErrorKind::PythonException);
        assert_eq!(error.exception_type.as_deref(), Some("ValueError"));
        assert!(error.message.contains("boom"));
        assert!(
            error
                .traceback
                .as_deref()
                .is_some_and(|tb| tb.contains("Traceback"))
        );

        let outcome = worker
            .call(request(round * 2 + 1, "add", json!({ "a": 2, "b": 3 })))
            .await
            .expect("answered");
        assert_eq!(outcome, Outcome::Ok { result: json!(5) });
    }
    assert!(worker.try_exit().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_argument_is_named() {
    let worker = spawn(config(&["handlers_basic.py"]), 1)
        .await
        .expect("worker starts");
    let outcome = worker
        .call(request(1, "add", json!({ "a": 2 })))
        .await
        .expect("answered");
    let Outcome::Error { error } = outcome else {
        panic!("add succeeded: {outcome:?}")
    };
    assert_eq!(error.kind, RemoteErrorKind::InvalidArguments);
    assert!(
        error.message.contains('b'),
        "message names the parameter: {}",
        error.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_command_is_a_typed_error() {
    let worker = spawn(config(&[]), 1).await.expect("worker starts");
    let outcome = worker
        .call(request(1, "nope", json!({})))
        .await
        .expect("answered");
    let Outcome::Error { error } = outcome else {
        panic!("nope succeeded: {outcome:?}")
    };
    assert_eq!(error.kind, RemoteErrorKind::UnknownCommand);
}

//! `raise KeyboardInterrupt`, `BaseException`, `GeneratorExit` or
//! `SystemExit` in a handler gets an error reply and the worker keeps serving
//! (issue 10, item 4); a real SIGTERM still stops the worker (exit 0).
#![cfg(feature = "real-python")]

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pypool_integration::{config, request, spawn};
use pypool_seam::{Outcome, RemoteErrorKind};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_exceptions_are_error_replies_and_sigterm_still_stops() {
    let worker = spawn(config(&["handlers_hostile.py"]), 1)
        .await
        .expect("worker starts");
    let mut id = 0;
    for kind in [
        "KeyboardInterrupt",
        "BaseException",
        "GeneratorExit",
        "SystemExit",
    ] {
        id += 1;
        let outcome = worker
            .call(request(id, "raise_base", json!({ "kind": kind })))
            .await
            .unwrap_or_else(|error| panic!("{kind} killed the worker: {error}"));
        let Outcome::Error { error } = outcome else {
            panic!("{kind}: {outcome:?}")
        };
        assert_eq!(error.kind, RemoteErrorKind::PythonException, "{kind}");
        assert_eq!(error.exception_type.as_deref(), Some(kind));
        id += 1;
        let outcome = worker
            .call(request(id, "getenv", json!({ "name": "PATH" })))
            .await
            .expect("still serving");
        assert!(matches!(outcome, Outcome::Ok { .. }), "{kind}: {outcome:?}");
    }
    assert!(worker.try_exit().is_none());

    let pid = i32::try_from(worker.handshake().pid).expect("a pid fits i32");
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("signal sent");
    let exit = tokio::time::timeout(Duration::from_secs(20), worker.exited())
        .await
        .expect("SIGTERM still stops the worker");
    assert_eq!(exit.code, Some(0), "{exit}");
}

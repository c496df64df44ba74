//! Workers that cannot start: the error says why, never a bare timeout.
#![cfg(feature = "real-python")]

use std::time::Duration;

use pypool_integration::config;
use pypool_process::PythonSpawner;
use pypool_seam::{SpawnError, SpawnRequest, WorkerSpawner};

async fn spawn_with(config: pypool_process::PythonSpawnerConfig, timeout: Duration) -> SpawnError {
    PythonSpawner::new(config)
        .spawn(SpawnRequest {
            worker_id: 1,
            handshake_timeout: timeout,
        })
        .await
        .expect_err("the worker must not start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_interpreter_is_named() {
    let error = spawn_with(
        config(&[]).with_interpreter("/nonexistent/python3"),
        Duration::from_secs(5),
    )
    .await;
    assert!(
        matches!(error, SpawnError::InterpreterNotFound { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("/nonexistent/python3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_module_that_raises_on_import_is_reported() {
    let error = spawn_with(config(&["broken_import.py"]), Duration::from_secs(30)).await;
    let SpawnError::StartupFailed {
        kind,
        message,
        traceback,
        ..
    } = &error
    else {
        panic!("expected StartupFailed, got {error:?}")
    };
    assert_eq!(kind, "handler_import");
    assert!(message.contains("broken on purpose"), "{message}");
    assert!(
        traceback
            .as_deref()
            .is_some_and(|tb| tb.contains("broken_import.py"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_never_shakes_hands_times_out_and_is_killed() {
    let error = spawn_with(config(&["slow_import.py"]), Duration::from_millis(1500)).await;
    assert!(
        matches!(error, SpawnError::HandshakeTimeout { .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_worker_module_reports_its_stderr() {
    let mut config = config(&[]);
    config.worker_module = "no_such_worker_module".to_owned();
    let error = spawn_with(config, Duration::from_secs(30)).await;
    let SpawnError::ExitedBeforeHandshake {
        exit, stderr_tail, ..
    } = &error
    else {
        panic!("expected ExitedBeforeHandshake, got {error:?}")
    };
    assert_eq!(exit.code, Some(1));
    assert!(
        stderr_tail.contains("No module named no_such_worker_module"),
        "{stderr_tail}"
    );
}

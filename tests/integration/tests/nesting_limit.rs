//! Both sides keep to one nesting limit (`MAX_NESTING_DEPTH`, docs/PROTOCOL.md)
//! with typed errors, and the worker keeps serving (issue 10, item 4): deep
//! results are `invalid_result` instead of a protocol violation that killed
//! the worker, deep arguments are refused by the host before sending, and a
//! worker sent them anyway answers `invalid_arguments` instead of exiting 65.
#![cfg(feature = "real-python")]

use std::time::Duration;

use pypool::{MAX_NESTING_DEPTH, PoolError, RemoteErrorKind};
use pypool_integration::{config, pool_builder, request, spawn};
use pypool_seam::Outcome;
use serde_json::{Value, json};

/// Keyword arguments `{name: value}`, built without `json!` (which would
/// serialise a deep value recursively to copy it).
fn kwargs(name: &str, value: Value) -> Value {
    let mut args = serde_json::Map::new();
    args.insert(name.to_owned(), value);
    Value::Object(args)
}

/// An array nested `depth` levels deep.
fn nested(depth: usize) -> Value {
    let mut value = json!([]);
    for _ in 1..depth {
        value = Value::Array(vec![value]);
    }
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_results_and_arguments_get_typed_errors_and_the_worker_keeps_serving() {
    let pool = pool_builder(&["handlers_hostile.py"])
        .size(1)
        .build()
        .expect("pool builds");
    pool.ready().await.expect("worker starts");

    assert_eq!(
        pool.execute("deep_result", json!({ "depth": MAX_NESTING_DEPTH }))
            .await
            .expect("at the limit"),
        nested(MAX_NESTING_DEPTH)
    );
    for depth in [MAX_NESTING_DEPTH + 1, 127, 200, 5000] {
        let error = pool
            .execute("deep_result", json!({ "depth": depth }))
            .await
            .expect_err("too deep");
        let PoolError::Remote { error: remote, .. } = &error else {
            panic!("depth {depth}: {error:?}")
        };
        assert_eq!(remote.kind, RemoteErrorKind::InvalidResult, "depth {depth}");
    }

    // `args` itself is level 1: a value at MAX_NESTING_DEPTH - 1 fits.
    assert_eq!(
        pool.execute("getenv", {
            let mut args = kwargs("unused", nested(MAX_NESTING_DEPTH - 1));
            args["name"] = json!("PATH");
            args
        })
        .await
        .map_err(|error| error.kind()),
        Err("remote"),
        "reaches the worker (which refuses the unknown argument)"
    );
    for depth in [MAX_NESTING_DEPTH, 2000] {
        let error = pool
            .execute("getenv", kwargs("name", nested(depth)))
            .await
            .expect_err("refused by the host");
        assert!(
            matches!(error, PoolError::ArgumentsTooDeep { limit, .. } if limit == MAX_NESTING_DEPTH),
            "{error:?}"
        );
        assert_eq!(error.kind(), "invalid_arguments");
    }
    let status = pool.status();
    assert_eq!(status.counters.replaced, 0, "{status:?}");
    assert!(
        pool.execute("getenv", json!({ "name": "PATH" }))
            .await
            .is_ok()
    );
    pool.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_sent_deep_arguments_answers_invalid_arguments() {
    // The connection does not check (the pool does): this plays a host that
    // sends them anyway.
    let worker = spawn(config(&["handlers_hostile.py"]), 1)
        .await
        .expect("worker starts");
    for (id, depth) in [(1, MAX_NESTING_DEPTH), (2, 1500)] {
        let outcome = worker
            .call(request(id, "getenv", kwargs("name", nested(depth))))
            .await
            .unwrap_or_else(|error| panic!("depth {depth} killed the worker: {error}"));
        let Outcome::Error { error } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(
            error.kind,
            RemoteErrorKind::InvalidArguments,
            "depth {depth}"
        );
    }
    let outcome = worker
        .call(request(3, "getenv", json!({ "name": "PATH" })))
        .await
        .expect("still serving");
    assert!(matches!(outcome, Outcome::Ok { .. }), "{outcome:?}");
    assert!(worker.try_exit().is_none());
}

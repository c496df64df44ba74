//! Arguments nested deeper than the protocol's limit are refused by the host
//! with a typed `invalid_arguments` error and never reach a worker (issue 10,
//! item 4); a program's inputs, one level further down on the wire, may be
//! one level less deep.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use pypool::{MAX_NESTING_DEPTH, Pool, PoolError, ProgramSpec};
use pypool_mock::{Behaviour, MockSpawner};
use serde_json::{Map, Value};

fn nested(depth: usize) -> Value {
    let mut value = Value::Array(Vec::new());
    for _ in 1..depth {
        value = Value::Array(vec![value]);
    }
    value
}

fn kwargs(value: Value) -> Value {
    let mut args = Map::new();
    args.insert("x".to_owned(), value);
    Value::Object(args)
}

#[tokio::test(start_paused = true)]
async fn deep_arguments_and_inputs_are_refused_by_the_host() {
    let spawner = MockSpawner::with_behaviour(Behaviour::default()).unwrap();
    let stats = spawner.stats();
    let pool = Pool::builder().size(1).spawner(spawner).build().unwrap();
    pool.ready().await.unwrap();
    // `args` is level 1.
    assert!(
        pool.execute("echo", kwargs(nested(MAX_NESTING_DEPTH - 1)))
            .await
            .is_ok()
    );
    assert_eq!(stats.requests_served(), 1);
    for depth in [MAX_NESTING_DEPTH, 10_000] {
        let error = pool
            .execute("echo", kwargs(nested(depth)))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, PoolError::ArgumentsTooDeep { limit, .. } if *limit == MAX_NESTING_DEPTH),
            "{error:?}"
        );
        assert_eq!(error.kind(), "invalid_arguments");
    }
    pool.create_program("p", ProgramSpec::python("m:f"))
        .await
        .unwrap();
    let error = pool
        .execute_program("p", kwargs(nested(MAX_NESTING_DEPTH - 1)))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PoolError::ArgumentsTooDeep { limit, .. } if *limit == MAX_NESTING_DEPTH - 1),
        "{error:?}"
    );
    assert_eq!(
        stats.requests_served(),
        1,
        "nothing more reached the worker"
    );
    pool.shutdown(Duration::from_secs(5)).await;
}

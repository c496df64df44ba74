//! The runtime's own commands (`pypool.*`) cannot be run by callers: a caller
//! that could send `pypool.run_program` could cache its own code under
//! another session's program (issue 10, item 3). Nothing reaches a worker.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use pypool::{Pool, PoolError};
use pypool_mock::{Behaviour, MockSpawner};
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn pypool_commands_are_refused_before_any_worker() {
    let spawner = MockSpawner::with_behaviour(Behaviour::default()).unwrap();
    let stats = spawner.stats();
    let pool = Pool::builder().size(1).spawner(spawner).build().unwrap();
    pool.ready().await.unwrap();
    let session = pool.session("mallory").unwrap();
    for command in [
        "pypool.run_program",
        "pypool.apply_settings",
        "pypool.",
        "pypool.future",
    ] {
        let error = pool.execute(command, json!({})).await.unwrap_err();
        assert!(
            matches!(&error, PoolError::ReservedCommand { command: named } if named == command),
            "{error:?}"
        );
        assert!(error.to_string().contains("`pypool.`"), "{error}");
        let error = session.execute(command, json!({})).await.unwrap_err();
        assert_eq!(error.kind(), "reserved_command");
    }
    assert_eq!(stats.requests_served(), 0);
    // Names merely resembling the prefix are ordinary commands.
    for command in ["pypool", "pypoolx.run", "my.pypool.thing"] {
        assert!(pool.execute(command, json!({})).await.is_ok(), "{command}");
    }
    pool.shutdown(Duration::from_secs(5)).await;
}

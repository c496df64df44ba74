//! Worker-wide settings: applied through the pool, they reach every worker
//! before its next request — including workers started or replaced later —
//! and no request runs under stale settings.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use pypool::{WorkerExit, WorkerId};
use serde_json::{Map, Value, json};
use support::fake_runtime::APPLY_SETTINGS;
use support::{FakeRuntime, fake_pool, occupy, until_gone, until_ready};

fn lm(model: &str) -> Map<String, Value> {
    let mut settings = Map::new();
    settings.insert("lm".into(), json!({ "model": model, "temperature": 0.0 }));
    settings
}

/// Asserts that every request `worker` saw after its first `apply_settings`
/// of `version` ran under exactly that version, and that the settings came
/// before any other request that followed them.
fn assert_ran_under(
    runtime: &FakeRuntime,
    worker: WorkerId,
    version: u64,
    settings: &Map<String, Value>,
) {
    assert_eq!(
        runtime.settings(worker),
        Some((version, settings.clone())),
        "worker {worker} holds the pool's settings"
    );
    let seen = runtime.requests(worker);
    let applied = seen
        .iter()
        .position(|request| {
            request.command == APPLY_SETTINGS && request.args["version"] == json!(version)
        })
        .unwrap_or_else(|| panic!("worker {worker} never got version {version}: {seen:?}"));
    for request in &seen[applied + 1..] {
        assert_eq!(
            request.settings_version, version,
            "worker {worker} ran {} under settings {} instead of {version}",
            request.command, request.settings_version
        );
    }
}

#[tokio::test(start_paused = true)]
async fn settings_reach_every_worker_before_its_next_request() {
    let (pool, _spawns, runtime) = fake_pool(3).await;
    assert_eq!(pool.settings(), (0, Map::new()), "never configured");
    let version = pool.configure(lm("openai/gpt-4o-mini")).unwrap();
    assert_eq!(version, 1);
    assert_eq!(pool.settings(), (1, lm("openai/gpt-4o-mini")));
    for worker in runtime.workers() {
        assert!(
            runtime.requests(worker).is_empty(),
            "settings are applied lazily, before a worker's next request"
        );
    }

    // One request on each worker: each gets the settings first.
    occupy(&pool, &runtime, 3).await.release(&runtime).await;
    for worker in runtime.workers() {
        assert_eq!(runtime.commands(worker), [APPLY_SETTINGS, "occupy"]);
        assert_ran_under(&runtime, worker, 1, &lm("openai/gpt-4o-mini"));
    }

    // Later requests do not resend them.
    occupy(&pool, &runtime, 3).await.release(&runtime).await;
    for worker in runtime.workers() {
        assert_eq!(
            runtime.commands(worker),
            [APPLY_SETTINGS, "occupy", "occupy"]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_worker_started_later_gets_the_settings_before_its_first_request() {
    let (pool, mut spawns, runtime) = fake_pool(2).await;
    pool.configure(lm("model-a")).unwrap();
    occupy(&pool, &runtime, 2).await.release(&runtime).await;

    let crashed = runtime.workers()[0];
    runtime.crash(crashed, WorkerExit::signal(9));
    until_gone(&pool, crashed).await;
    let replacement = runtime.accept_next(&mut spawns).await;
    until_ready(&pool, replacement).await;

    occupy(&pool, &runtime, 2).await.release(&runtime).await;
    assert_eq!(runtime.commands(replacement), [APPLY_SETTINGS, "occupy"]);
    assert_ran_under(&runtime, replacement, 1, &lm("model-a"));

    pool.resize(3);
    let grown = runtime.accept_next(&mut spawns).await;
    until_ready(&pool, grown).await;
    occupy(&pool, &runtime, 3).await.release(&runtime).await;
    assert_eq!(runtime.commands(grown), [APPLY_SETTINGS, "occupy"]);
    assert_ran_under(&runtime, grown, 1, &lm("model-a"));
}

#[tokio::test(start_paused = true)]
async fn reconfiguring_replaces_the_settings_everywhere_and_nothing_runs_stale() {
    let (pool, _spawns, runtime) = fake_pool(3).await;
    pool.configure(lm("model-a")).unwrap();
    occupy(&pool, &runtime, 3).await.release(&runtime).await;

    let version = pool.configure(lm("model-b")).unwrap();
    assert_eq!(version, 2);
    occupy(&pool, &runtime, 3).await.release(&runtime).await;
    for worker in runtime.workers() {
        assert_eq!(
            runtime.commands(worker),
            [APPLY_SETTINGS, "occupy", APPLY_SETTINGS, "occupy"]
        );
        assert_ran_under(&runtime, worker, 2, &lm("model-b"));
    }
    // Replacing the settings replaces them whole: nothing of model-a is left.
    let mut empty = Map::new();
    empty.insert("lm".into(), Value::Null);
    assert_eq!(pool.configure(empty.clone()).unwrap(), 3);
    occupy(&pool, &runtime, 3).await.release(&runtime).await;
    for worker in runtime.workers() {
        assert_ran_under(&runtime, worker, 3, &empty);
    }
}

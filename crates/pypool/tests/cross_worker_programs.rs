//! The old system's worst bug: a program created on one worker must run on any other (1,000 tries), shipped on demand, resent after eviction, never run stale.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, HashMap};

use pypool::{PoolError, ProgramSpec, RemoteErrorKind, WorkerId, WorkerState};
use serde_json::json;
use support::fake_runtime::{FAILING_CALLABLE, RUN_PROGRAM};
use support::{
    Answer, FakeRuntime, NO_TIME, ProgramCall, fake_pool, occupy_all_but, served_by, within,
};

const TRIES: usize = 1_000;

/// For each worker and program version: how many times the definition was
/// shipped, and how many times the worker answered `program_not_cached`.
fn shipping(runtime: &FakeRuntime, worker: WorkerId) -> HashMap<String, (usize, usize)> {
    let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
    for (call, answer) in runtime.program_calls(worker) {
        let entry = counts.entry(call.version).or_default();
        if call.shipped_definition {
            entry.0 += 1;
        }
        if answer == Answer::NotCached {
            entry.1 += 1;
        }
    }
    counts
}

/// A definition is shipped to a worker at most once per version, plus once
/// per `program_not_cached` answer.
fn assert_shipped_at_most_once_per_version(runtime: &FakeRuntime) {
    for worker in runtime.workers() {
        for (version, (shipped, not_cached)) in shipping(runtime, worker) {
            assert!(
                shipped <= 1 + not_cached,
                "worker {worker} got version {version} {shipped} times with only {not_cached} program_not_cached answers"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_program_created_anonymously_runs_on_whichever_worker_is_free_1000_times_out_of_1000() {
    const SIZE: usize = 3;
    let (pool, _spawns, runtime) = fake_pool(SIZE).await;
    let created = pool
        .create_program("p", ProgramSpec::python("mod:func"))
        .await
        .unwrap();

    let workers = runtime.workers();
    let mut served: BTreeMap<WorkerId, usize> = BTreeMap::new();
    let mut successes = 0;
    // Which worker stays free follows a fixed pseudo-random sequence, so every
    // worker is the free one many times, in no regular order.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for attempt in 0..TRIES {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let free = workers[usize::try_from(seed % SIZE as u64).unwrap()];
        let busy = occupy_all_but(&pool, &runtime, SIZE, free).await;
        let result = within(
            NO_TIME,
            "the program's result",
            pool.execute_program("p", json!({ "try": attempt })),
        )
        .await;
        let result = result.unwrap_or_else(|error| panic!("try {attempt} failed: {error}"));
        let worker = served_by(&result);
        assert_eq!(worker, free, "try {attempt}: ran on a busy worker");
        assert!(!busy.workers.contains(&worker));
        assert_eq!(result["program_id"], json!("p"));
        assert_eq!(result["version"], json!(created.version));
        assert_eq!(result["inputs"], json!({ "try": attempt }));
        successes += 1;
        *served.entry(worker).or_default() += 1;
        busy.release(&runtime).await;
    }

    assert_eq!(successes, TRIES);
    assert_eq!(
        served.keys().copied().collect::<Vec<_>>(),
        runtime.workers(),
        "every worker ran the program: {served:?}"
    );
    assert!(
        served.values().all(|count| *count >= TRIES / (2 * SIZE)),
        "executions spread over the workers: {served:?}"
    );
    for worker in runtime.workers() {
        let calls = runtime.program_calls(worker);
        assert_eq!(
            calls.len(),
            served[&worker],
            "no resends on worker {worker}"
        );
        assert!(calls.iter().all(|(_, answer)| *answer == Answer::Ok));
        assert_eq!(
            calls
                .iter()
                .filter(|(call, _)| call.shipped_definition)
                .count(),
            1,
            "worker {worker} got the definition exactly once"
        );
        assert!(calls[0].0.shipped_definition, "on its first run");
        assert_eq!(
            runtime.cached(worker),
            [("p".to_owned(), created.version.clone())]
        );
    }
    assert_shipped_at_most_once_per_version(&runtime);
    let status = pool.status();
    assert_eq!(status.counters.requests_failed, 0);
    assert_eq!(status.counters.replaced, 0);
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_evicted_the_program_gets_the_definition_again_in_one_extra_request() {
    const SIZE: usize = 2;
    let (pool, _spawns, runtime) = fake_pool(SIZE).await;
    let created = pool
        .create_program("p", ProgramSpec::python("mod:func"))
        .await
        .unwrap();
    // Warm both workers.
    for worker in runtime.workers() {
        let busy = occupy_all_but(&pool, &runtime, SIZE, worker).await;
        let result = pool.execute_program("p", json!({})).await.unwrap();
        assert_eq!(served_by(&result), worker);
        busy.release(&runtime).await;
    }

    let target = runtime.workers()[1];
    runtime.evict(target);
    assert!(runtime.cached(target).is_empty());
    let before = runtime.program_calls(target).len();
    let busy = occupy_all_but(&pool, &runtime, SIZE, target).await;
    let result = within(
        NO_TIME,
        "the program's result",
        pool.execute_program("p", json!({ "after": "eviction" })),
    )
    .await
    .unwrap();
    assert_eq!(served_by(&result), target);
    assert_eq!(result["inputs"], json!({ "after": "eviction" }));

    let calls = runtime.program_calls(target);
    let version = created.version.clone();
    assert_eq!(
        calls[before..],
        [
            (
                ProgramCall {
                    id: "p".into(),
                    version: version.clone(),
                    shipped_definition: false
                },
                Answer::NotCached
            ),
            (
                ProgramCall {
                    id: "p".into(),
                    version: version.clone(),
                    shipped_definition: true
                },
                Answer::Ok
            ),
        ],
        "one extra request, carrying the definition"
    );
    assert_eq!(runtime.cached(target), [("p".to_owned(), version.clone())]);

    // Cached again: the next run on that worker ships nothing.
    let result = pool.execute_program("p", json!({})).await.unwrap();
    assert_eq!(served_by(&result), target);
    let last = runtime.program_calls(target).pop().unwrap();
    assert_eq!(
        last,
        (
            ProgramCall {
                id: "p".into(),
                version,
                shipped_definition: false
            },
            Answer::Ok
        )
    );
    busy.release(&runtime).await;
    assert_shipped_at_most_once_per_version(&runtime);
    assert_eq!(pool.status().counters.requests_failed, 0);
}

#[tokio::test(start_paused = true)]
async fn an_updated_program_ships_its_new_definition_to_every_worker_and_never_runs_stale() {
    const SIZE: usize = 3;
    let (pool, _spawns, runtime) = fake_pool(SIZE).await;
    let first = pool
        .create_program("p", ProgramSpec::python("mod:func"))
        .await
        .unwrap();
    for worker in runtime.workers() {
        let busy = occupy_all_but(&pool, &runtime, SIZE, worker).await;
        let result = pool.execute_program("p", json!({})).await.unwrap();
        assert_eq!(
            (served_by(&result), &result["callable"]),
            (worker, &json!("mod:func"))
        );
        busy.release(&runtime).await;
    }

    // Replacing with the same definition keeps the version: nothing to ship.
    let same = pool
        .put_program("p", ProgramSpec::python("mod:func"))
        .await
        .unwrap();
    assert_eq!(same.version, first.version);
    let result = pool.execute_program("p", json!({})).await.unwrap();
    let (call, _) = runtime.program_calls(served_by(&result)).pop().unwrap();
    assert!(!call.shipped_definition);

    let second = pool
        .put_program("p", ProgramSpec::python("mod:func_v2"))
        .await
        .unwrap();
    assert_ne!(second.version, first.version);
    let before: BTreeMap<WorkerId, usize> = runtime
        .workers()
        .into_iter()
        .map(|worker| (worker, runtime.program_calls(worker).len()))
        .collect();
    for worker in runtime.workers() {
        let busy = occupy_all_but(&pool, &runtime, SIZE, worker).await;
        let result = pool.execute_program("p", json!({ "n": 2 })).await.unwrap();
        assert_eq!(served_by(&result), worker);
        assert_eq!(
            result["callable"],
            json!("mod:func_v2"),
            "never the stale one"
        );
        assert_eq!(result["version"], json!(second.version));
        let calls = runtime.program_calls(worker);
        assert_eq!(
            calls[before[&worker]..],
            [(
                ProgramCall {
                    id: "p".into(),
                    version: second.version.clone(),
                    shipped_definition: true
                },
                Answer::Ok
            )],
            "the new definition in the first request, no program_not_cached round trip"
        );
        busy.release(&runtime).await;
    }
    for worker in runtime.workers() {
        let mut cached = runtime.cached(worker);
        cached.sort();
        let mut expected = vec![
            ("p".to_owned(), first.version.clone()),
            ("p".to_owned(), second.version.clone()),
        ];
        expected.sort();
        assert_eq!(cached, expected);
    }
    assert_shipped_at_most_once_per_version(&runtime);
}

#[tokio::test(start_paused = true)]
async fn a_failing_program_reports_the_python_error_and_its_worker_keeps_serving() {
    let (pool, _spawns, runtime) = fake_pool(2).await;
    pool.create_program("broken", ProgramSpec::python(FAILING_CALLABLE))
        .await
        .unwrap();
    let error = pool
        .execute_program("broken", json!({ "n": 1 }))
        .await
        .unwrap_err();
    let PoolError::Remote {
        worker_id,
        command,
        error: remote,
        ..
    } = &error
    else {
        panic!("expected a remote error, got {error:?}");
    };
    assert_eq!(command, "program:broken");
    assert_eq!(remote.kind, RemoteErrorKind::PythonException);
    assert_eq!(remote.exception_type.as_deref(), Some("RuntimeError"));
    assert_eq!(error.kind(), "remote");
    let calls = runtime.program_calls(*worker_id);
    assert_eq!(calls.len(), 1, "a python error is not retried");
    assert_eq!(calls[0].1, Answer::PythonError);
    assert_eq!(runtime.commands(*worker_id), [RUN_PROGRAM]);
    let status = pool.status();
    assert!(
        status
            .worker_details
            .iter()
            .any(|w| w.id == *worker_id && w.state == WorkerState::Ready),
        "the worker stays in the pool: {status:?}"
    );
    assert_eq!(status.counters.replaced, 0);
}

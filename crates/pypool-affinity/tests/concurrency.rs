//! Many tokio tasks binding and looking up at once on a multi-thread runtime.

#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

use std::sync::Arc;
use std::time::Duration;

use pypool_affinity::{AffinityStore, InMemoryAffinityStore, SessionId, WorkerId};
use pypool_clock::ManualClock;

const TASKS: u64 = 16;
const SESSIONS_PER_TASK: u64 = 200;
const SHARED_SESSIONS: u64 = 50;
const ROUNDS: u64 = 20;

fn id(text: String) -> SessionId {
    SessionId::new(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_binds_and_lookups_leave_a_consistent_store() {
    let store: Arc<dyn AffinityStore> = Arc::new(InMemoryAffinityStore::new(
        Duration::from_secs(300),
        Arc::new(ManualClock::new()),
    ));

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let worker: WorkerId = task;
            for round in 0..ROUNDS {
                // Private sessions: only this task touches them.
                for index in 0..SESSIONS_PER_TASK {
                    let session = id(format!("t{task}-s{index}"));
                    if round == 0 {
                        store.bind(&session, worker).await;
                    }
                    assert_eq!(store.lookup(&session).await, Some(worker));
                }
                // Shared sessions: every task rebinds them to itself.
                for index in 0..SHARED_SESSIONS {
                    let session = id(format!("shared-{index}"));
                    store.bind(&session, worker).await;
                    let seen = store.lookup(&session).await;
                    assert!(seen.is_some_and(|w| w < TASKS), "{seen:?}");
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let expected = TASKS * SESSIONS_PER_TASK + SHARED_SESSIONS;
    assert_eq!(store.len().await as u64, expected);
    for index in 0..SHARED_SESSIONS {
        let worker = store.lookup(&id(format!("shared-{index}"))).await;
        assert!(worker.is_some_and(|w| w < TASKS));
    }

    // The worker index agrees with the session map: unbinding every worker
    // removes every binding exactly once.
    let mut unbound = 0;
    for worker in 0..TASKS {
        let removed = store.unbind_worker(worker).await as u64;
        assert!(
            removed >= SESSIONS_PER_TASK,
            "worker {worker} kept its private sessions"
        );
        unbound += removed;
    }
    assert_eq!(unbound, expected);
    assert!(store.is_empty().await);
}

//! Tests of the pool's insides that its public face cannot show: what it
//! keeps (bounded whatever callers send) and where it takes its lock.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use pypool_mock::{Behaviour, MockSpawner};
use serde_json::json;

use crate::Pool;

async fn behaviour_pool(size: usize, behaviour: Behaviour) -> Pool {
    let spawner = MockSpawner::with_behaviour(behaviour).unwrap();
    let pool = Pool::builder()
        .size(size)
        .health_check_interval(None)
        .spawner(spawner)
        .build()
        .unwrap();
    pool.ready().await.unwrap();
    pool
}

#[tokio::test(start_paused = true)]
async fn commands_nobody_announced_share_one_breaker() {
    let pool = behaviour_pool(1, Behaviour::default().command("echo", true)).await;
    pool.execute("echo", json!({})).await.unwrap();
    for n in 0..500 {
        // The mock echoes any command; what matters is that the name is new.
        pool.execute(&format!("typo_{n}"), json!({})).await.unwrap();
    }
    let breakers = pool.inner().lock().core.breaker_count();
    assert!(
        breakers <= 2,
        "one breaker for `echo`, one for every unknown command; got {breakers}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_sweep_forgets_lapsed_sessions_even_without_data_expiry() {
    let spawner = MockSpawner::with_behaviour(Behaviour::default()).unwrap();
    let pool = Pool::builder()
        .size(1)
        .health_check_interval(None)
        .session_ttl(Duration::from_secs(60))
        .spawner(spawner)
        .build()
        .unwrap();
    pool.ready().await.unwrap();
    for n in 0..200 {
        let session = pool.session(&format!("s{n}")).unwrap();
        session.execute("echo", json!({})).await.unwrap();
    }
    let remembered = || pool.inner().session_last_used.lock().unwrap().len();
    assert_eq!(remembered(), 200);
    tokio::time::advance(Duration::from_secs(61)).await;
    pool.sweep_sessions().await;
    assert_eq!(remembered(), 0, "lapsed sessions are forgotten");
}

#[tokio::test(start_paused = true)]
async fn a_lease_dropped_while_the_pool_lock_is_held_does_not_deadlock() {
    let pool = behaviour_pool(1, Behaviour::default()).await;
    let inner = Arc::clone(pool.inner());
    let lease = inner.checkout("echo").await.unwrap();
    // Drop the lease on another thread while this one holds the lock: a
    // `Drop` that takes the lock would block that thread forever.
    let (done, finished) = std::sync::mpsc::channel();
    let guard = inner.lock();
    let dropper = std::thread::spawn(move || {
        drop(lease);
        let _ = done.send(());
    });
    let dropped = finished.recv_timeout(Duration::from_secs(10));
    drop(guard);
    assert!(dropped.is_ok(), "dropping a lease waited for the pool lock");
    dropper.join().unwrap();
    // The worker comes back to the pool once the lock is free (settled off
    // the dropping thread; poll with a bound, in real time).
    let bound = std::time::Instant::now() + Duration::from_secs(10);
    while pool.status().ready != 1 {
        assert!(
            std::time::Instant::now() < bound,
            "the dropped lease's worker never came back: {:?}",
            pool.status()
        );
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Lock takes of one request, counted by the pool's own lock function.
async fn lock_takes_of(pool: &Pool, run: impl std::future::Future<Output = ()>) -> u64 {
    let takes = || {
        pool.inner()
            .lock_takes
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = takes();
    run.await;
    takes() - before
}

#[tokio::test(start_paused = true)]
async fn a_plain_request_takes_the_pool_lock_twice() {
    let pool = behaviour_pool(2, Behaviour::default().command("echo", true)).await;
    // Settings configured and applied: the up-to-date check takes no lock.
    pool.configure(serde_json::Map::new()).unwrap();
    for _ in 0..4 {
        pool.execute("echo", json!({})).await.unwrap();
    }
    let takes = lock_takes_of(&pool, async {
        pool.execute("echo", json!({"n": 1})).await.unwrap();
    })
    .await;
    assert_eq!(takes, 2, "one take to check out, one to settle");
}

#[tokio::test(start_paused = true)]
async fn a_session_program_call_takes_the_pool_lock_a_bounded_number_of_times() {
    let pool = behaviour_pool(2, Behaviour::default()).await;
    let session = pool.session("alice").unwrap();
    pool.create_program("p", crate::ProgramSpec::python("m:f"))
        .await
        .unwrap();
    for _ in 0..3 {
        session.execute_program("p", json!({})).await.unwrap();
    }
    let takes = lock_takes_of(&pool, async {
        session.execute_program("p", json!({})).await.unwrap();
    })
    .await;
    println!("LOCK_TAKES_SESSION_PROGRAM={takes}");
    assert!(
        takes <= 5,
        "{takes} lock takes for a session's program call"
    );
}

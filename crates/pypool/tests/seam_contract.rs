//! The facade's contract with the worker seam, checked with strict mockall
//! expectations: what it asks of a spawner, and how it treats a worker that
//! dies right after its handshake (no respawn storm).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pypool::{BreakerConfig, Pool, Timeouts};
use pypool_seam::{
    CallError, Handshake, Outcome, Request, SpawnError, SpawnRequest, WorkerConnection, WorkerExit,
    WorkerId, WorkerSpawner,
};

mockall::mock! {
    Spawner {}
    #[async_trait::async_trait]
    impl WorkerSpawner for Spawner {
        async fn spawn(&self, request: SpawnRequest) -> Result<Arc<dyn WorkerConnection>, SpawnError>;
    }
}

mockall::mock! {
    Connection {}
    #[async_trait::async_trait]
    impl WorkerConnection for Connection {
        fn handshake(&self) -> &Handshake;
        fn worker_id(&self) -> WorkerId;
        async fn call(&self, request: Request) -> Result<Outcome, CallError>;
        fn in_flight(&self) -> usize;
        async fn exited(&self) -> WorkerExit;
        fn try_exit(&self) -> Option<WorkerExit>;
        fn terminate(&self);
        fn kill(&self);
        fn resident_memory_bytes(&self) -> Option<u64>;
    }
}

impl std::fmt::Debug for MockSpawner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockSpawner")
    }
}

impl std::fmt::Debug for MockConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockConnection")
    }
}

fn handshake(worker_id: WorkerId) -> Handshake {
    Handshake {
        protocol: pypool_seam::PROTOCOL_VERSION,
        worker_id,
        pid: 20_000 + u32::try_from(worker_id).unwrap(),
        python_version: "3.11.0-mockall".into(),
        commands: Vec::new(),
    }
}

/// A connection whose process has already exited with code 1 when the pool
/// looks: `exited()` resolves at once.
fn dead_on_arrival(worker_id: WorkerId) -> Arc<dyn WorkerConnection> {
    let mut connection = MockConnection::new();
    connection
        .expect_handshake()
        .return_const(handshake(worker_id));
    connection.expect_worker_id().return_const(worker_id);
    connection.expect_exited().returning(|| WorkerExit::code(1));
    connection
        .expect_try_exit()
        .returning(|| Some(WorkerExit::code(1)));
    connection.expect_in_flight().return_const(0usize);
    connection.expect_resident_memory_bytes().returning(|| None);
    connection.expect_terminate().return_const(());
    connection.expect_kill().return_const(());
    connection.expect_call().never();
    Arc::new(connection)
}

#[tokio::test(start_paused = true)]
async fn each_spawn_asks_for_a_new_worker_id_with_the_configured_handshake_timeout() {
    let timeouts = Timeouts {
        spawn: Duration::from_secs(7),
        ..Timeouts::default()
    };
    let (seen, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut spawner = MockSpawner::new();
    spawner
        .expect_spawn()
        .withf(|request| request.handshake_timeout == Duration::from_secs(7))
        .times(3)
        .returning(move |request| {
            seen.send(request.worker_id).unwrap();
            Err(SpawnError::Refused {
                reason: "the test refuses every spawn".into(),
            })
        });
    let pool = Pool::builder()
        .size(3)
        .timeouts(timeouts)
        .health_check_interval(None)
        // Open after three failures so no fourth spawn comes during the test.
        .spawn_breaker(BreakerConfig {
            consecutive_failures: 3,
            reset_timeout: Duration::from_secs(3600),
            ..BreakerConfig::default()
        })
        .spawner(spawner)
        .build()
        .unwrap();
    let error = pool.ready().await.unwrap_err();
    assert!(
        error.to_string().contains("the test refuses every spawn"),
        "{error}"
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(seen_rx.recv().await.unwrap());
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three distinct worker ids: {ids:?}");
    // An hour of paused time passes only at the end, after mockall's
    // `times(3)` is checked on drop: no fourth spawn within the reset timeout.
    tokio::time::advance(Duration::from_secs(600)).await;
    assert!(
        seen_rx.try_recv().is_err(),
        "the spawn breaker held further spawns back"
    );
}

#[tokio::test(start_paused = true)]
async fn workers_dying_on_arrival_do_not_cause_a_respawn_storm() {
    let spawns = Arc::new(AtomicU64::new(0));
    let mut spawner = MockSpawner::new();
    let counter = Arc::clone(&spawns);
    spawner.expect_spawn().returning(move |request| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(dead_on_arrival(request.worker_id))
    });
    let pool = Pool::builder()
        .size(1)
        .health_check_interval(None)
        .spawn_breaker(BreakerConfig {
            consecutive_failures: 3,
            reset_timeout: Duration::from_secs(10),
            ..BreakerConfig::default()
        })
        .spawner(spawner)
        .build()
        .unwrap();
    // A minute of paused time: without pacing this would be thousands of spawns.
    tokio::time::sleep(Duration::from_secs(60)).await; // paused clock: virtual time passes, allowed
    let spawned = spawns.load(Ordering::SeqCst);
    assert!(
        (3..=12).contains(&spawned),
        "spawns paced by the breaker (3 quick ones, then about one per 10 s): {spawned}"
    );
    drop(pool);
}

//! The facade's contract with the worker seam, checked with strict mockall
//! expectations: what it asks of a spawner, and how it treats a worker that
//! dies right after its handshake (no respawn storm).
//!
//! The pool calls its spawner and connections from its own tasks, where a
//! panic (a mockall expectation violated) would be swallowed by tokio. So the
//! mocks sit behind [`Guarded`] wrappers that catch such a panic and forward
//! its message to the test, which fails with it ([`Violations::assert_none`]);
//! the spawner's call counts are checked in the test task with
//! `checkpoint()`.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;

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
        fn cancel(&self, request_id: u64);
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

/// mockall answers an async method with a ready future: matching the
/// expectations (and panicking) happens inside the guarded call.
const READY: &str = "mockall futures are ready at once";

/// Panic messages caught in the pool's tasks, forwarded to the test.
#[derive(Clone, Default)]
struct Violations(Arc<Mutex<Vec<String>>>);

impl Violations {
    /// Runs `call`; a panic in it (a violated expectation) is recorded and
    /// `None` returned.
    fn guard<T>(&self, call: impl FnOnce() -> T) -> Option<T> {
        match catch_unwind(AssertUnwindSafe(call)) {
            Ok(value) => Some(value),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "a non-string panic".to_owned());
                self.0.lock().unwrap().push(message);
                None
            }
        }
    }

    /// Fails the test with every violation recorded so far.
    fn assert_none(&self) {
        let seen = self.0.lock().unwrap();
        assert!(
            seen.is_empty(),
            "mock expectations violated in the pool's tasks: {seen:?}"
        );
    }
}

/// A mock behind a wrapper that catches the panics of violated expectations
/// (see [`Violations`]); the test keeps a handle on the mock to `checkpoint()` it.
struct Guarded<M> {
    mock: Arc<Mutex<M>>,
    violations: Violations,
}

impl<M> std::fmt::Debug for Guarded<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Guarded")
    }
}

#[async_trait::async_trait]
impl WorkerSpawner for Guarded<MockSpawner> {
    async fn spawn(&self, request: SpawnRequest) -> Result<Arc<dyn WorkerConnection>, SpawnError> {
        let answer = self.violations.guard(|| {
            self.mock
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .spawn(request)
                .now_or_never()
                .expect(READY)
        });
        answer.unwrap_or_else(|| {
            Err(SpawnError::Refused {
                reason: "a mock expectation was violated".into(),
            })
        })
    }
}

/// A mock connection behind the same guard; the handshake is kept outside
/// the mock (a reference cannot leave its lock).
#[derive(Debug)]
struct GuardedConnection {
    handshake: Handshake,
    inner: Guarded<MockConnection>,
}

impl GuardedConnection {
    fn with<T>(&self, call: impl FnOnce(&mut MockConnection) -> T) -> Option<T> {
        self.inner.violations.guard(|| {
            call(
                &mut self
                    .inner
                    .mock
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            )
        })
    }
}

#[async_trait::async_trait]
impl WorkerConnection for GuardedConnection {
    fn handshake(&self) -> &Handshake {
        &self.handshake
    }
    async fn call(&self, request: Request) -> Result<Outcome, CallError> {
        self.with(|mock| mock.call(request).now_or_never().expect(READY))
            .unwrap_or_else(|| {
                Err(CallError::Closed {
                    worker_id: self.handshake.worker_id,
                    reason: "a mock expectation was violated".into(),
                })
            })
    }
    fn in_flight(&self) -> usize {
        self.with(|mock| mock.in_flight()).unwrap_or(0)
    }
    async fn exited(&self) -> WorkerExit {
        self.with(|mock| mock.exited().now_or_never().expect(READY))
            .unwrap_or_default()
    }
    fn try_exit(&self) -> Option<WorkerExit> {
        self.with(|mock| mock.try_exit()).flatten()
    }
    fn terminate(&self) {
        self.with(|mock| mock.terminate());
    }
    fn cancel(&self, request_id: u64) {
        self.with(|mock| mock.cancel(request_id));
    }
    fn kill(&self) {
        self.with(|mock| mock.kill());
    }
    fn resident_memory_bytes(&self) -> Option<u64> {
        self.with(|mock| mock.resident_memory_bytes()).flatten()
    }
}

fn handshake(worker_id: WorkerId) -> Handshake {
    Handshake {
        protocol: pypool_seam::PROTOCOL_VERSION,
        worker_id,
        pid: 20_000 + u32::try_from(worker_id).unwrap(),
        python_version: "3.11.0-mockall".into(),
        commands: Vec::new(),
        capacity: 1,
    }
}

/// A connection whose process has already exited with code 1 when the pool
/// looks: `exited()` resolves at once.
fn dead_on_arrival(worker_id: WorkerId, violations: &Violations) -> Arc<dyn WorkerConnection> {
    let mut connection = MockConnection::new();
    connection.expect_exited().returning(|| WorkerExit::code(1));
    connection
        .expect_try_exit()
        .returning(|| Some(WorkerExit::code(1)));
    connection.expect_in_flight().return_const(0usize);
    connection.expect_resident_memory_bytes().returning(|| None);
    connection.expect_terminate().return_const(());
    connection.expect_kill().return_const(());
    connection.expect_call().never();
    Arc::new(GuardedConnection {
        handshake: handshake(worker_id),
        inner: Guarded {
            mock: Arc::new(Mutex::new(connection)),
            violations: violations.clone(),
        },
    })
}

#[tokio::test(start_paused = true)]
async fn each_spawn_asks_for_a_new_worker_id_with_the_configured_handshake_timeout() {
    let timeouts = Timeouts {
        spawn: Duration::from_secs(7),
        ..Timeouts::default()
    };
    let (seen, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let violations = Violations::default();
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
    let spawner = Arc::new(Mutex::new(spawner));
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
        .spawner(Guarded {
            mock: Arc::clone(&spawner),
            violations: violations.clone(),
        })
        .build()
        .unwrap();
    let error = pool.ready().await.unwrap_err();
    assert!(
        error.to_string().contains("the test refuses every spawn"),
        "{error}"
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = tokio::time::timeout(Duration::from_secs(600), seen_rx.recv())
            .await
            .expect("three spawns within ten minutes of (paused) time");
        ids.push(id.unwrap());
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three distinct worker ids: {ids:?}");
    // Ten minutes of paused time: no fourth spawn within the reset timeout
    // (a fourth call would violate `times(3)`; the guard reports it).
    tokio::time::advance(Duration::from_secs(600)).await;
    assert!(
        seen_rx.try_recv().is_err(),
        "the spawn breaker held further spawns back"
    );
    violations.assert_none();
    // `times(3)` and `withf` are checked here, in the test's own task.
    spawner.lock().unwrap().checkpoint();
}

#[tokio::test(start_paused = true)]
async fn workers_dying_on_arrival_do_not_cause_a_respawn_storm() {
    let spawns = Arc::new(AtomicU64::new(0));
    let violations = Violations::default();
    let mut spawner = MockSpawner::new();
    let counter = Arc::clone(&spawns);
    let connections = violations.clone();
    spawner.expect_spawn().returning(move |request| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(dead_on_arrival(request.worker_id, &connections))
    });
    let pool = Pool::builder()
        .size(1)
        .health_check_interval(None)
        .spawn_breaker(BreakerConfig {
            consecutive_failures: 3,
            reset_timeout: Duration::from_secs(10),
            ..BreakerConfig::default()
        })
        .spawner(Guarded {
            mock: Arc::new(Mutex::new(spawner)),
            violations: violations.clone(),
        })
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
    // `expect_call().never()` on every connection: checked by the guard.
    violations.assert_none();
}

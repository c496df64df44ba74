//! Two pool hosts (mock workers) sharing one Redis: a program created
//! through host A runs on host B; a session bound to a host that dies
//! rebinds on the other; session data survives its host.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pypool::{Pool, ProgramSpec};
use pypool_affinity::SessionId;
use pypool_clock::SystemClock;
use pypool_redis::{HostBinding, RedisConfig, RedisStores};
use serde_json::json;
use support::RedisServer;

const TRIES: usize = 1_000;
const HEARTBEAT: Duration = Duration::from_millis(600);
/// The bound on waiting for a condition (a loaded 2-core machine).
const BOUND: Duration = Duration::from_secs(20);

struct Host {
    pool: Pool,
    stores: RedisStores,
}

async fn host(server: &RedisServer, pool_name: &str, host: &str) -> Host {
    let stores = support::host_stores(&server.url(), pool_name, host, HEARTBEAT).await;
    let pool = support::mock_pool_on(&stores, host).await;
    Host { pool, stores }
}

/// Polls `condition` until it holds, failing after [`BOUND`].
async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut condition: F) -> Duration {
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < BOUND, "{what}: not within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(20)).await; // allowed: poll interval of a bounded wait
    }
    started.elapsed()
}

#[test]
fn a_program_created_through_host_a_runs_on_host_b_every_time() {
    let server = RedisServer::start();
    support::runtime().block_on(async {
        let name = support::fresh_pool_name("hosts");
        let a = host(&server, &name, "host-a").await;
        let b = host(&server, &name, "host-b").await;
        let global = a
            .pool
            .create_program("g", ProgramSpec::python("m:f"))
            .await
            .unwrap();
        let alice = a.pool.session("alice").unwrap();
        let own = alice
            .create_program("mine", ProgramSpec::python("m:mine"))
            .await
            .unwrap();

        let alice_on_b = b.pool.session("alice").unwrap();
        let mut successes = 0;
        for attempt in 0..TRIES {
            let result = b
                .pool
                .execute_program("g", json!({ "try": attempt }))
                .await
                .unwrap();
            assert_eq!(result["echo"]["program_id"], json!("g"));
            assert_eq!(result["echo"]["version"], json!(global.version));
            let result = alice_on_b
                .execute_program("mine", json!({ "try": attempt }))
                .await
                .unwrap();
            assert_eq!(result["echo"]["version"], json!(own.version));
            assert_eq!(result["echo"]["inputs"], json!({ "try": attempt }));
            successes += 1;
        }
        assert_eq!(successes, TRIES);
        // Another session on B does not see alice's program.
        let bob = b.pool.session("bob").unwrap();
        assert_eq!(
            bob.execute_program("mine", json!({}))
                .await
                .unwrap_err()
                .kind(),
            "program_not_found"
        );
        // Data set through A is read through B.
        alice.set("history", json!(["hi"])).await.unwrap();
        assert_eq!(
            alice_on_b.get("history").await.unwrap(),
            Some(json!(["hi"]))
        );
    });
}

#[test]
fn a_session_bound_to_a_host_that_dies_rebinds_on_the_other() {
    let server = RedisServer::start();
    support::runtime().block_on(async {
        let name = support::fresh_pool_name("hosts");
        let a = host(&server, &name, "host-a").await;
        let b = host(&server, &name, "host-b").await;
        let session = SessionId::new("chat-1").unwrap();
        let on_a = a.pool.session(session.as_str()).unwrap();
        on_a.create_program("p", ProgramSpec::python("m:f"))
            .await
            .unwrap();
        on_a.set("turns", json!(1)).await.unwrap();
        let served = on_a.execute_program("p", json!({})).await.unwrap();
        let worker = served["worker_id"].as_u64().unwrap();

        // Every host sees where the session is bound: host and worker.
        let bound = HostBinding {
            host: "host-a".to_owned(),
            worker,
        };
        assert_eq!(
            b.stores.affinity.locate(&session).await.unwrap(),
            Some(bound.clone())
        );
        assert_eq!(
            a.stores.affinity.locate(&session).await.unwrap(),
            Some(bound)
        );

        // Host A dies: its heartbeat stops (a killed process cleans nothing
        // up, so its pool is left as it is, its bindings in place).
        a.stores.affinity.stop_heartbeat();
        let absent_after = eventually("the binding to the dead host reads as absent", async || {
            b.stores.affinity.locate(&session).await.unwrap().is_none()
        })
        .await;
        eprintln!("host A's binding read as absent {absent_after:?} after its heartbeat stopped (TTL {HEARTBEAT:?})");
        assert_eq!(
            a.stores.affinity.try_lookup(&session).await.unwrap(),
            Some(worker),
            "the binding is still stored: only the missing heartbeat makes it absent"
        );

        // The session's next call, on B, succeeds and rebinds there.
        let on_b = b.pool.session(session.as_str()).unwrap();
        let result = on_b
            .execute_program("p", json!({"after": "failover"}))
            .await
            .unwrap();
        assert_eq!(result["echo"]["inputs"], json!({"after": "failover"}));
        let rebound = b.stores.affinity.locate(&session).await.unwrap().unwrap();
        assert_eq!(rebound.host, "host-b");
        assert_eq!(
            on_b.get("turns").await.unwrap(),
            Some(json!(1)),
            "the data outlived its host"
        );
    });
}

#[test]
fn a_host_sees_another_hosts_binding_as_absent_for_its_own_pool() {
    let server = RedisServer::start();
    support::runtime().block_on(async {
        use pypool_affinity::AffinityStore;
        let name = support::fresh_pool_name("hosts");
        let clock = Arc::new(SystemClock);
        let url = server.url();
        let a = RedisStores::connect(
            &RedisConfig::new(url.parse().unwrap(), &name, "a").unwrap(),
            clock.clone(),
        )
        .await
        .unwrap();
        let b = RedisStores::connect(
            &RedisConfig::new(url.parse().unwrap(), &name, "b").unwrap(),
            clock,
        )
        .await
        .unwrap();
        let session = SessionId::new("s").unwrap();
        a.affinity.bind(&session, 7).await;
        assert_eq!(a.affinity.lookup(&session).await, Some(7));
        assert_eq!(
            b.affinity.lookup(&session).await,
            None,
            "worker 7 of host a is not b's"
        );
        assert_eq!(
            b.affinity.unbind_worker(7).await,
            0,
            "b's worker 7 is another worker"
        );
        assert_eq!(a.affinity.lookup(&session).await, Some(7));
        b.affinity.bind(&session, 1).await;
        // A's copy of the binding goes when Redis's invalidation arrives.
        eventually("moved to host b", async || {
            a.affinity.lookup(&session).await.is_none()
        })
        .await;
        assert_eq!(a.affinity.len().await, 0);
        assert_eq!(b.affinity.len().await, 1);
        b.affinity.leave().await.unwrap();
        assert_eq!(
            a.affinity.locate(&session).await.unwrap(),
            None,
            "b left: at once"
        );
    });
}

//! A host's local copies of programs and bindings (Redis client-side
//! caching): a repeated session call costs no round trip; a change through
//! another host reaches the copy; this host's own change is seen at once;
//! no copy is served once the connection to Redis is lost.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pypool::ProgramSpec as PoolProgramSpec;
use pypool_affinity::SessionId;
use pypool_clock::SystemClock;
use pypool_redis::{RedisConfig, RedisStores};
use pypool_store::{Namespace, ProgramId, ProgramSpec, ProgramStore, StoreError};
use serde_json::json;
use support::RedisServer;

/// The bound on waiting for a condition (a loaded 2-core machine).
const BOUND: Duration = Duration::from_secs(20);

/// Polls `condition` until it holds, failing after [`BOUND`].
async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut condition: F) {
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < BOUND, "{what}: not within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(10)).await; // allowed: poll interval of a bounded wait
    }
}

/// How many commands Redis has run, all kinds together, minus `INFO`
/// itself (`INFO commandstats`, on a connection of its own).
async fn commands_run(server: &RedisServer) -> u64 {
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .unwrap();
    let counts: BTreeMap<String, u64> = info
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect();
    counts
        .iter()
        // This function's own connection sends `INFO` and `CLIENT SETINFO`.
        .filter(|(name, _)| name.as_str() != "info" && !name.starts_with("client"))
        .map(|(_, calls)| calls)
        .sum()
}

async fn connect(server: &RedisServer, pool: &str, host: &str) -> RedisStores {
    let config = RedisConfig::new(server.url().parse().unwrap(), pool, host)
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    RedisStores::connect(&config, Arc::new(SystemClock))
        .await
        .unwrap()
}

/// Waits until the stores serve a copy of `id` (tracking is switched on by
/// a task): a read that runs no command on the server.
async fn wait_for_copies(server: &RedisServer, stores: &RedisStores, id: &ProgramId) {
    eventually("a copy served", async || {
        stores.programs.get(None, id).await.unwrap();
        let before = commands_run(server).await;
        stores.programs.get(None, id).await.unwrap();
        commands_run(server).await == before
    })
    .await;
}

#[test]
fn a_repeated_session_call_on_its_bound_worker_costs_no_round_trip() {
    const CALLS: u64 = 50;
    let server = RedisServer::start();
    support::runtime().block_on(async {
        let stores = connect(&server, &support::fresh_pool_name("copies"), "host-a").await;
        let pool = support::mock_pool_on(&stores, "host-a").await;
        let session = pool.session("chat").unwrap();
        session
            .create_program("p", PoolProgramSpec::python("m:f"))
            .await
            .unwrap();
        // Until tracking is on and the copies are made, calls go to Redis.
        let started = Instant::now();
        loop {
            let before = commands_run(&server).await;
            for round in 0..CALLS {
                let result = session
                    .execute_program("p", json!({ "round": round }))
                    .await
                    .unwrap();
                assert_eq!(result["echo"]["inputs"], json!({ "round": round }));
            }
            let ran = commands_run(&server).await - before;
            // The heartbeat and a refresh of the binding's last use may
            // run meanwhile: a handful, not one or more per call.
            if ran < CALLS / 5 {
                break;
            }
            assert!(
                started.elapsed() < BOUND,
                "{CALLS} session calls still ran {ran} Redis commands after {BOUND:?}"
            );
        }
        pool.shutdown(Duration::from_secs(5)).await;
    });
}

#[test]
fn a_change_through_another_host_reaches_the_copy_and_an_own_change_is_seen_at_once() {
    let server = RedisServer::start();
    support::runtime().block_on(async {
        let name = support::fresh_pool_name("copies");
        let a = connect(&server, &name, "host-a").await;
        let b = connect(&server, &name, "host-b").await;
        let id = ProgramId::new("p").unwrap();
        let alice = SessionId::new("alice").unwrap();
        let v1 = ProgramSpec::python("m:one");
        let v2 = ProgramSpec::python("m:two");
        let own = ProgramSpec::python("m:alices");
        a.programs
            .create(Namespace::Global, id.clone(), v1.clone())
            .await
            .unwrap();
        wait_for_copies(&server, &b, &id).await;
        assert_eq!(
            b.programs.get(Some(&alice), &id).await.unwrap().version,
            v1.version()
        );

        // Host A replaces the global program: B's copies follow.
        a.programs
            .put(Namespace::Global, id.clone(), v2.clone())
            .await
            .unwrap();
        eventually("B sees the new global version", async || {
            b.programs.get(None, &id).await.unwrap().version == v2.version()
                && b.programs.get(Some(&alice), &id).await.unwrap().version == v2.version()
        })
        .await;

        // Host A gives alice her own program: it shadows the global one on B too.
        a.programs
            .put(Namespace::Session(alice.clone()), id.clone(), own.clone())
            .await
            .unwrap();
        eventually("B sees alice's own program", async || {
            b.programs.get(Some(&alice), &id).await.unwrap().version == own.version()
        })
        .await;
        assert_eq!(
            b.programs.get(None, &id).await.unwrap().version,
            v2.version()
        );

        // Host A deletes the global program: B stops running it.
        a.programs.delete(&Namespace::Global, &id).await.unwrap();
        eventually("B sees the deletion", async || {
            matches!(
                b.programs.get(None, &id).await,
                Err(StoreError::ProgramNotFound { .. })
            )
        })
        .await;

        // B's own changes are seen by B at once (no push comes back for them).
        for spec in [v1, v2] {
            b.programs
                .put(Namespace::Global, id.clone(), spec.clone())
                .await
                .unwrap();
            assert_eq!(
                b.programs.get(Some(&alice), &id).await.unwrap().version,
                own.version()
            );
            assert_eq!(
                b.programs.get(None, &id).await.unwrap().version,
                spec.version()
            );
        }
        b.programs
            .delete(&Namespace::Session(alice.clone()), &id)
            .await
            .unwrap();
        assert_eq!(
            b.programs.get(Some(&alice), &id).await.unwrap().version,
            ProgramSpec::python("m:two").version()
        );
    });
}

#[test]
fn no_copy_is_served_once_the_connection_to_redis_is_lost() {
    let mut server = RedisServer::start();
    support::runtime().block_on(async {
        let stores = connect(&server, &support::fresh_pool_name("copies"), "host-a").await;
        let id = ProgramId::new("p").unwrap();
        stores
            .programs
            .create(Namespace::Global, id.clone(), ProgramSpec::python("m:f"))
            .await
            .unwrap();
        wait_for_copies(&server, &stores, &id).await;
        server.stop();
        eventually("the copy is no longer served", async || {
            matches!(
                stores.programs.get(None, &id).await,
                Err(StoreError::StoreUnavailable { .. })
            )
        })
        .await;
        // Redis returns empty (persistence is off): the program is gone,
        // and no copy says otherwise.
        server.restart();
        eventually("Redis answers again", async || {
            !matches!(
                stores.programs.get(None, &id).await,
                Err(StoreError::StoreUnavailable { .. })
            )
        })
        .await;
        assert!(matches!(
            stores.programs.get(None, &id).await,
            Err(StoreError::ProgramNotFound { .. })
        ));
    });
}

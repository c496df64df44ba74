//! Redis goes away mid-test: every store operation fails with a typed
//! `StoreUnavailable` naming it, within the timeout (never a hang); Redis
//! comes back on the same port: the same stores work again, no rebuild.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pypool_affinity::{AffinityStore, SessionId};
use pypool_clock::SystemClock;
use pypool_redis::{RedisConfig, RedisStoreError, RedisStores};
use pypool_store::{Namespace, ProgramId, ProgramSpec, ProgramStore, SessionDataStore, StoreError};
use serde_json::json;
use support::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(500);
/// What an operation may take past the timeout on a loaded machine.
const MARGIN: Duration = Duration::from_millis(1500);
/// A hang detector far past any legitimate answer.
const HANG: Duration = Duration::from_secs(10);

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>, operation: &str) {
    match result {
        Err(StoreError::StoreUnavailable {
            operation: named,
            reason,
        }) => {
            assert_eq!(named, operation);
            assert!(!reason.is_empty());
        }
        other => panic!("{operation}: expected StoreUnavailable, got {other:?}"),
    }
}

/// Runs `future`, failing if it takes past the timeout plus a margin (and
/// reporting a hang rather than hanging).
async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let output = tokio::time::timeout(HANG, future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung past {HANG:?}"));
    let took = started.elapsed();
    assert!(
        took <= TIMEOUT + MARGIN,
        "{what} took {took:?}, the timeout is {TIMEOUT:?}"
    );
    output
}

#[test]
fn operations_fail_typed_while_redis_is_away_and_work_again_when_it_returns() {
    let mut server = RedisServer::start();
    support::runtime().block_on(async {
        let config = support::config(&server, "host-a").with_timeout(TIMEOUT);
        let stores = RedisStores::connect(&config, Arc::new(SystemClock))
            .await
            .unwrap();
        let session = SessionId::new("s").unwrap();
        let id = ProgramId::new("p").unwrap();
        let spec = ProgramSpec::python("m:f");
        stores
            .programs
            .create(Namespace::Global, id.clone(), spec.clone())
            .await
            .unwrap();
        stores
            .session_data
            .set(&session, "k", json!(1))
            .await
            .unwrap();
        stores.affinity.bind(&session, 1).await;
        assert_eq!(stores.affinity.lookup(&session).await, Some(1));

        server.stop();

        for round in 0..3 {
            let what = |op: &str| format!("{op} (round {round})");
            assert_unavailable(
                bounded(&what("get"), stores.programs.get(Some(&session), &id)).await,
                "program get",
            );
            assert_unavailable(
                bounded(
                    &what("create"),
                    stores
                        .programs
                        .create(Namespace::Global, id.clone(), spec.clone()),
                )
                .await,
                "program create",
            );
            assert_unavailable(
                bounded(
                    &what("put"),
                    stores
                        .programs
                        .put(Namespace::Global, id.clone(), spec.clone()),
                )
                .await,
                "program put",
            );
            assert_unavailable(
                bounded(
                    &what("delete"),
                    stores.programs.delete(&Namespace::Global, &id),
                )
                .await,
                "program delete",
            );
            assert_unavailable(
                bounded(&what("list"), stores.programs.list(None)).await,
                "program list",
            );
            assert_unavailable(
                bounded(
                    &what("set"),
                    stores.session_data.set(&session, "k", json!(2)),
                )
                .await,
                "session data set",
            );
            assert_unavailable(
                bounded(&what("data get"), stores.session_data.get(&session, "k")).await,
                "session data get",
            );
            assert_unavailable(
                bounded(&what("data all"), stores.session_data.all(&session)).await,
                "session data all",
            );
            assert_unavailable(
                bounded(
                    &what("data remove"),
                    stores.session_data.remove(&session, "k"),
                )
                .await,
                "session data remove",
            );
            assert_unavailable(
                bounded(
                    &what("data delete_session"),
                    stores.session_data.delete_session(&session),
                )
                .await,
                "session data delete_session",
            );
            assert_unavailable(
                bounded(
                    &what("programs delete_session"),
                    stores.programs.delete_session(&session),
                )
                .await,
                "program delete_session",
            );
            assert_unavailable(
                bounded(&what("lookup"), stores.affinity.try_lookup(&session)).await,
                "affinity lookup",
            );
            // The affinity trait's infallible methods answer "nothing" in
            // bounded time (a miss only moves the session to another worker).
            assert_eq!(
                bounded(&what("trait lookup"), stores.affinity.lookup(&session)).await,
                None
            );
            bounded(&what("bind"), stores.affinity.bind(&session, 2)).await;
        }

        // Redis returns (empty: persistence is off) on the same port.
        server.restart();
        let returned = Instant::now();
        loop {
            match stores
                .programs
                .create(Namespace::Global, id.clone(), spec.clone())
                .await
            {
                Ok(stored) => {
                    assert_eq!(stored.version, spec.version());
                    break;
                }
                Err(StoreError::StoreUnavailable { .. }) => {
                    assert!(returned.elapsed() < HANG, "no recovery within {HANG:?}");
                    tokio::time::sleep(Duration::from_millis(20)).await; // allowed: retry interval, bounded by HANG
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        eprintln!("recovered {:?} after Redis returned", returned.elapsed());
        stores
            .session_data
            .set(&session, "k", json!(3))
            .await
            .unwrap();
        assert_eq!(
            stores.session_data.get(&session, "k").await.unwrap(),
            Some(json!(3))
        );
        stores.affinity.bind(&session, 4).await;
        assert_eq!(stores.affinity.try_lookup(&session).await.unwrap(), Some(4));
    });
}

#[test]
fn connecting_to_an_absent_redis_is_a_typed_error_within_the_timeout() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop();
    support::runtime().block_on(async {
        let config = RedisConfig::new(url.parse().unwrap(), "p", "h")
            .unwrap()
            .with_timeout(TIMEOUT);
        let error = bounded(
            "connect",
            RedisStores::connect(&config, Arc::new(SystemClock)),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, RedisStoreError::Unreachable { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(&url), "{error}");
    });
}

#[test]
fn auth_works_and_a_wrong_password_never_shows_up_in_errors_or_debug_output() {
    let server = RedisServer::start_with_password(Some("pa55-word"));
    support::runtime().block_on(async {
        let config = RedisConfig::new(server.url().parse().unwrap(), "p", "h")
            .unwrap()
            .with_timeout(TIMEOUT);
        assert!(!format!("{config:?}").contains("pa55-word"), "{config:?}");
        let stores = RedisStores::connect(&config, Arc::new(SystemClock))
            .await
            .unwrap();
        assert!(!format!("{stores:?}").contains("pa55-word"));
        stores
            .session_data
            .set(&SessionId::new("s").unwrap(), "k", json!(1))
            .await
            .unwrap();

        let wrong = format!("redis://:wrong-secret@127.0.0.1:{}", server.port());
        let config = RedisConfig::new(wrong.parse().unwrap(), "p", "h")
            .unwrap()
            .with_timeout(TIMEOUT);
        let error = bounded(
            "wrong password",
            RedisStores::connect(&config, Arc::new(SystemClock)),
        )
        .await
        .unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, RedisStoreError::Unreachable { .. }),
            "{error:?}"
        );
        assert!(!message.contains("wrong-secret"), "{message}");
        assert!(message.contains("redis://:***@127.0.0.1"), "{message}");
    });
}

//! Session expiry: an idle session's worker binding lapses after the TTL (use
//! refreshes it), and — only when configured — its programs and data go too.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::{AffinityMode, Pool, PoolError, ProgramSpec, Session, WorkerId};
use serde_json::json;
use support::{NO_TIME, scripted_builder, served_by, start_pool, within};

const TTL: Duration = Duration::from_secs(60);

async fn pool_with_ttl(size: usize, expire_data: bool) -> (Pool, support::FakeRuntime) {
    let (builder, spawns) = scripted_builder(size);
    let builder = builder
        .session_ttl(TTL)
        .expire_session_data(expire_data)
        .affinity_mode(AffinityMode::StrictFailFast);
    let (pool, _spawns, runtime) = start_pool(builder, spawns, size).await;
    (pool, runtime)
}

async fn echo(session: &Session) -> Result<WorkerId, PoolError> {
    within(
        NO_TIME,
        "a session call",
        session.execute("echo", json!({})),
    )
    .await
    .map(|result| served_by(&result))
}

/// Whether `session` is still bound to `home`. The pool hands out its idle
/// workers oldest-idle first and `home` served the session's last call, so an
/// unbound session lands on another worker; a bound one stays on `home`.
async fn still_bound_to(session: &Session, home: WorkerId) -> bool {
    echo(session).await.unwrap() == home
}

#[tokio::test(start_paused = true)]
async fn an_idle_sessions_binding_lapses_after_the_ttl_and_each_use_refreshes_it() {
    let (pool, _runtime) = pool_with_ttl(2, false).await;
    let alice = pool.session("alice").unwrap();
    let home = echo(&alice).await.unwrap();
    assert!(still_bound_to(&alice, home).await);

    // Just short of the TTL the binding holds; the sweeper runs a few times per TTL.
    tokio::time::advance(TTL - Duration::from_secs(1)).await;
    assert!(still_bound_to(&alice, home).await, "not yet expired");

    // The check above used the session, which refreshed it: a full TTL more is needed.
    tokio::time::advance(TTL - Duration::from_secs(1)).await;
    assert!(still_bound_to(&alice, home).await, "use refreshes the TTL");

    // Idle for longer than the TTL: the binding is gone.
    tokio::time::advance(TTL + TTL / 4).await;
    assert!(
        !still_bound_to(&alice, home).await,
        "the binding lapsed, so the session runs on any free worker"
    );
}

#[tokio::test(start_paused = true)]
async fn by_default_an_expired_session_keeps_its_programs_and_data() {
    let (pool, _runtime) = pool_with_ttl(2, false).await;
    let alice = pool.session("alice").unwrap();
    alice
        .create_program("mine", ProgramSpec::python("alice.tools:run"))
        .await
        .unwrap();
    alice.set("turns", json!(3)).await.unwrap();
    echo(&alice).await.unwrap();

    tokio::time::advance(TTL * 3).await;
    pool.sweep_sessions().await;

    assert_eq!(alice.get("turns").await.unwrap(), Some(json!(3)));
    let result = alice.execute_program("mine", json!({})).await.unwrap();
    assert_eq!(result["program_id"], "mine");
}

#[tokio::test(start_paused = true)]
async fn when_configured_an_idle_session_loses_its_programs_and_data_and_an_active_one_does_not() {
    let (pool, _runtime) = pool_with_ttl(2, true).await;
    pool.create_program("global", ProgramSpec::python("shared.tools:run"))
        .await
        .unwrap();
    let idle = pool.session("idle").unwrap();
    let active = pool.session("active").unwrap();
    // A session that never ran anything on a worker expires all the same.
    let never_executed = pool.session("never-executed").unwrap();
    for session in [&idle, &active, &never_executed] {
        session
            .create_program("mine", ProgramSpec::python("tools:run"))
            .await
            .unwrap();
        session.set("key", json!("value")).await.unwrap();
    }
    echo(&idle).await.unwrap();

    // `active` is used every half TTL; the others are not used at all.
    for _ in 0..4 {
        tokio::time::advance(TTL / 2).await;
        assert_eq!(active.get("key").await.unwrap(), Some(json!("value")));
    }
    // The periodic sweeper (every TTL / 4) has run since they passed the TTL;
    // let its task finish the sweep it started.
    tokio::time::advance(TTL / 4).await;
    tokio::task::yield_now().await;

    for (name, session) in [("idle", &idle), ("never-executed", &never_executed)] {
        let error = session.program("mine").await.unwrap_err();
        assert_eq!(error.kind(), "program_not_found", "{name}: {error:?}");
        assert!(
            session.data().await.unwrap().is_empty(),
            "{name}'s data expired"
        );
    }
    assert_eq!(active.program("mine").await.unwrap().id.as_str(), "mine");
    assert_eq!(active.data().await.unwrap().len(), 1);
    assert_eq!(
        pool.program("global").await.unwrap().id.as_str(),
        "global",
        "global programs never expire"
    );
}

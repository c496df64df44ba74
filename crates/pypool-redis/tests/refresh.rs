//! The pool binds after every call: a bind to the worker a lookup just hit
//! (within the refresh resolution) costs no round trip, and every other
//! bind still reaches Redis.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

mod support;

use std::sync::Arc;
use std::time::Duration;

use pypool_affinity::{AffinityStore, SessionId};
use pypool_clock::ManualClock;
use pypool_redis::{RedisAffinityStore, RedisStores};
use support::RedisServer;

const TTL: Duration = Duration::from_secs(60);

async fn store(
    server: &RedisServer,
    clock: &ManualClock,
    resolution: Duration,
) -> RedisAffinityStore {
    let config = support::config(server, "host-a")
        .with_binding_ttl(TTL)
        .with_refresh_resolution(resolution);
    RedisStores::connect(&config, Arc::new(clock.clone()))
        .await
        .unwrap()
        .affinity
}

#[test]
fn a_bind_right_after_a_hit_on_the_same_worker_is_skipped_and_others_are_not() {
    let server = RedisServer::start();
    support::runtime().block_on(async {
        let session = SessionId::new("s").unwrap();
        for (resolution, skipped) in [(Duration::from_secs(1), true), (Duration::ZERO, false)] {
            let clock = ManualClock::new();
            let store = store(&server, &clock, resolution).await;
            store.bind(&session, 1).await;
            assert_eq!(store.lookup(&session).await, Some(1));
            clock.advance(Duration::from_millis(500));
            store.bind(&session, 1).await;
            // Past the TTL from the lookup, inside it from the bind.
            clock.advance(TTL - Duration::from_millis(250));
            let expected = if skipped { None } else { Some(1) };
            assert_eq!(
                store.lookup(&session).await,
                expected,
                "resolution {resolution:?}"
            );
        }

        let clock = ManualClock::new();
        let store = store(&server, &clock, Duration::from_secs(1)).await;
        // Another worker: bound at once.
        store.bind(&session, 1).await;
        assert_eq!(store.lookup(&session).await, Some(1));
        store.bind(&session, 2).await;
        assert_eq!(store.lookup(&session).await, Some(2));
        // The worker was unbound in between: the bind is not skipped.
        assert_eq!(store.unbind_worker(2).await, 1);
        store.bind(&session, 2).await;
        assert_eq!(store.lookup(&session).await, Some(2));
        // The session was removed in between: the bind is not skipped.
        assert!(store.remove_session(&session).await);
        store.bind(&session, 2).await;
        assert_eq!(store.lookup(&session).await, Some(2));
        // Past the resolution: the bind refreshes the binding.
        clock.advance(Duration::from_secs(2));
        store.bind(&session, 2).await;
        clock.advance(TTL - Duration::from_secs(1));
        assert_eq!(store.lookup(&session).await, Some(2));
    });
}

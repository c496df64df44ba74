//! 100,000 live sessions: every bind and lookup is answered correctly.
//! (How fast lookups are is measured by `benches/affinity_lookup.rs`.)

use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use pypool_affinity::{AffinityStore, InMemoryAffinityStore, SessionId};
use pypool_clock::ManualClock;

const SESSIONS: u64 = 100_000;
const WORKERS: u64 = 16;

#[test]
fn one_hundred_thousand_sessions_bind_and_look_up_correctly() {
    block_on(async {
        let clock = ManualClock::new();
        let store = InMemoryAffinityStore::new(Duration::from_secs(300), Arc::new(clock.clone()));
        let ids: Vec<SessionId> = (0..SESSIONS)
            .map(|index| SessionId::new(format!("session-{index}")).unwrap())
            .collect();

        for (index, id) in (0..).zip(&ids) {
            store.bind(id, index % WORKERS).await;
        }
        assert_eq!(store.len().await as u64, SESSIONS);

        // Look up the first half later, so they outlive the second half.
        clock.advance(Duration::from_secs(200));
        for (index, id) in (0..).zip(&ids).take(ids.len() / 2) {
            assert_eq!(store.lookup(id).await, Some(index % WORKERS));
        }
        assert_eq!(store.stats().hits, SESSIONS / 2);

        clock.advance(Duration::from_secs(150));
        assert_eq!(
            store.sweep().await as u64,
            SESSIONS / 2,
            "the unrefreshed half expired"
        );
        for (index, id) in (0..).zip(&ids) {
            let expected = (index < SESSIONS / 2).then_some(index % WORKERS);
            assert_eq!(store.lookup(id).await, expected);
        }

        assert_eq!(store.unbind_worker(3).await as u64, SESSIONS / 2 / WORKERS);
        assert_eq!(
            store.len().await as u64,
            SESSIONS / 2 - SESSIONS / 2 / WORKERS
        );
    });
}

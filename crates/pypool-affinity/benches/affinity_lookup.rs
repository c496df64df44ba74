//! Lookup cost of the in-memory affinity store at 1k and 100k live sessions.
//!
//! A lookup is a hash-map hit plus an O(1) move to the back of the recency
//! list: no step depends on the number of sessions. At 100k sessions the
//! working set no longer fits in the CPU caches, so every step costs a cache
//! miss; the `hashmap_baseline` group measures a bare `HashMap::get` over the
//! same ids to show how much of the difference between the sizes is that
//! (memory latency) rather than the store. Run with
//! `cargo bench -p pypool-affinity`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pypool_affinity::{AffinityStore, InMemoryAffinityStore, SessionId};
use pypool_clock::ManualClock;

const WORKERS: u64 = 16;

fn populated(sessions: usize) -> (InMemoryAffinityStore, Vec<SessionId>) {
    let store = InMemoryAffinityStore::new(Duration::from_secs(300), Arc::new(ManualClock::new()));
    let ids: Vec<SessionId> = (0..sessions)
        .map(|index| SessionId::new(format!("session-{index}")).expect("generated ids are valid"))
        .collect();
    let runtime = runtime();
    runtime.block_on(async {
        for (index, id) in ids.iter().enumerate() {
            store.bind(id, index as u64 % WORKERS).await;
        }
    });
    (store, ids)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime can be built")
}

fn lookup(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("affinity_lookup");
    for sessions in [1_000, 100_000] {
        let (store, ids) = populated(sessions);
        group.bench_with_input(BenchmarkId::from_parameter(sessions), &ids, |b, ids| {
            let mut next = 0;
            b.to_async(&runtime).iter(|| {
                // Stride through the ids so consecutive lookups hit different entries.
                next = (next + 7_919) % ids.len();
                let id = &ids[next];
                let store = &store;
                async move { store.lookup(id).await }
            });
        });
    }
    group.finish();
}

fn hashmap_baseline(c: &mut Criterion) {
    let mut group = c.benchmark_group("hashmap_baseline");
    for sessions in [1_000, 100_000] {
        let (_, ids) = populated(sessions);
        let map: HashMap<SessionId, u64> = (0..)
            .zip(&ids)
            .map(|(index, id)| (id.clone(), index % WORKERS))
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(sessions), &ids, |b, ids| {
            let mut next = 0;
            b.iter(|| {
                next = (next + 7_919) % ids.len();
                black_box(map.get(&ids[next]).copied())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, lookup, hashmap_baseline);
criterion_main!(benches);

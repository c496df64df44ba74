//! Stores injected on the builder (`affinity_store`, `program_store`,
//! `session_data_store`) are the ones the pool uses: each is wrapped in a
//! counting store, and the session's calls show up in its counts.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use pypool::{
    AffinityStore, InMemoryAffinityStore, InMemoryProgramStore, InMemorySessionDataStore,
    Namespace, ProgramId, ProgramSpec, ProgramStore, SessionDataStore, SessionId, StoreError,
    StoredProgram, WorkerId,
};
use serde_json::{Map, Value, json};
use support::{scripted_builder, start_pool};

/// How many calls a counting store has seen.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<AtomicU64>);

impl Calls {
    fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn count(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Forwards to an in-memory store and counts every call.
#[derive(Debug)]
struct Counting<S> {
    inner: S,
    calls: Calls,
}

#[async_trait]
impl AffinityStore for Counting<InMemoryAffinityStore> {
    async fn lookup(&self, session: &SessionId) -> Option<WorkerId> {
        self.calls.hit();
        self.inner.lookup(session).await
    }
    async fn bind(&self, session: &SessionId, worker: WorkerId) {
        self.calls.hit();
        self.inner.bind(session, worker).await;
    }
    async fn unbind_worker(&self, worker: WorkerId) -> usize {
        self.calls.hit();
        self.inner.unbind_worker(worker).await
    }
    async fn remove_session(&self, session: &SessionId) -> bool {
        self.calls.hit();
        self.inner.remove_session(session).await
    }
    async fn sweep(&self) -> usize {
        self.calls.hit();
        self.inner.sweep().await
    }
    async fn len(&self) -> usize {
        self.calls.hit();
        self.inner.len().await
    }
}

#[async_trait]
impl ProgramStore for Counting<InMemoryProgramStore> {
    async fn create(
        &self,
        namespace: Namespace,
        id: ProgramId,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, StoreError> {
        self.calls.hit();
        self.inner.create(namespace, id, spec).await
    }
    async fn put(
        &self,
        namespace: Namespace,
        id: ProgramId,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, StoreError> {
        self.calls.hit();
        self.inner.put(namespace, id, spec).await
    }
    async fn get(
        &self,
        viewer: Option<&SessionId>,
        id: &ProgramId,
    ) -> Result<StoredProgram, StoreError> {
        self.calls.hit();
        self.inner.get(viewer, id).await
    }
    async fn list(&self, viewer: Option<&SessionId>) -> Result<Vec<StoredProgram>, StoreError> {
        self.calls.hit();
        self.inner.list(viewer).await
    }
    async fn delete(&self, namespace: &Namespace, id: &ProgramId) -> Result<(), StoreError> {
        self.calls.hit();
        self.inner.delete(namespace, id).await
    }
    async fn delete_session(&self, session: &SessionId) -> Result<usize, StoreError> {
        self.calls.hit();
        self.inner.delete_session(session).await
    }
}

#[async_trait]
impl SessionDataStore for Counting<InMemorySessionDataStore> {
    async fn get(&self, session: &SessionId, key: &str) -> Result<Option<Value>, StoreError> {
        self.calls.hit();
        self.inner.get(session, key).await
    }
    async fn set(&self, session: &SessionId, key: &str, value: Value) -> Result<(), StoreError> {
        self.calls.hit();
        self.inner.set(session, key, value).await
    }
    async fn remove(&self, session: &SessionId, key: &str) -> Result<Option<Value>, StoreError> {
        self.calls.hit();
        self.inner.remove(session, key).await
    }
    async fn all(&self, session: &SessionId) -> Result<Map<String, Value>, StoreError> {
        self.calls.hit();
        self.inner.all(session).await
    }
    async fn delete_session(&self, session: &SessionId) -> Result<usize, StoreError> {
        self.calls.hit();
        self.inner.delete_session(session).await
    }
}

#[tokio::test(start_paused = true)]
async fn the_pool_uses_the_stores_given_to_its_builder() {
    let (affinity, programs, data) = (Calls::default(), Calls::default(), Calls::default());
    let (builder, spawns) = scripted_builder(2);
    let builder = builder
        .affinity_store(Counting {
            inner: InMemoryAffinityStore::default(),
            calls: affinity.clone(),
        })
        .program_store(Counting {
            inner: InMemoryProgramStore::new(),
            calls: programs.clone(),
        })
        .session_data_store(Counting {
            inner: InMemorySessionDataStore::new(),
            calls: data.clone(),
        });
    let (pool, _spawns, _runtime) = start_pool(builder, spawns, 2).await;
    let (affinity_before, programs_before, data_before) =
        (affinity.count(), programs.count(), data.count());

    let alice = pool.session("alice").unwrap();
    alice.execute("echo", json!({ "n": 1 })).await.unwrap();
    assert!(
        affinity.count() > affinity_before,
        "a session's call looks up and binds its worker in the injected affinity store"
    );

    alice
        .create_program("p", ProgramSpec::python("alice.tools:p"))
        .await
        .unwrap();
    let result = alice.execute_program("p", json!({ "x": 1 })).await.unwrap();
    assert_eq!(result["callable"], json!("alice.tools:p"));
    assert!(
        programs.count() >= programs_before + 2,
        "create and run read and write the injected program store ({} calls)",
        programs.count() - programs_before
    );
    assert_eq!(
        alice.program("p").await.unwrap().owner,
        Namespace::Session(alice.id().clone())
    );

    alice.set("k", json!("v")).await.unwrap();
    assert_eq!(alice.get("k").await.unwrap(), Some(json!("v")));
    assert!(
        data.count() >= data_before + 2,
        "set and get go to the injected session data store ({} calls)",
        data.count() - data_before
    );
}

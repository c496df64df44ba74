//! A shared store that cannot be reached: every session read fails with a
//! typed `store_unavailable` error — never an empty answer that looks like
//! "no such key" (a caller doing read-modify-write across an outage would
//! otherwise overwrite the stored data with a fresh value).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use pypool::{
    InMemoryProgramStore, InMemorySessionDataStore, Namespace, PoolError, ProgramId, ProgramSpec,
    ProgramStore, SessionDataStore, SessionId, StoreError, StoredProgram,
};
use serde_json::{Map, Value, json};
use support::{scripted_builder, start_pool};

/// Whether the "shared store" is reachable; tests flip it.
#[derive(Debug, Clone, Default)]
struct Outage(Arc<AtomicBool>);

impl Outage {
    fn start(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn end(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
    fn check(&self, operation: &'static str) -> Result<(), StoreError> {
        if self.0.load(Ordering::SeqCst) {
            Err(StoreError::StoreUnavailable {
                operation,
                reason: "connection refused (test outage)".to_owned(),
            })
        } else {
            Ok(())
        }
    }
}

/// An in-memory store that fails every call while the outage lasts, as the
/// Redis store does while Redis is away.
#[derive(Debug)]
struct Flaky<S> {
    inner: S,
    outage: Outage,
}

#[async_trait]
impl SessionDataStore for Flaky<InMemorySessionDataStore> {
    async fn get(&self, session: &SessionId, key: &str) -> Result<Option<Value>, StoreError> {
        self.outage.check("session data get")?;
        self.inner.get(session, key).await
    }
    async fn set(&self, session: &SessionId, key: &str, value: Value) -> Result<(), StoreError> {
        self.outage.check("session data set")?;
        self.inner.set(session, key, value).await
    }
    async fn remove(&self, session: &SessionId, key: &str) -> Result<Option<Value>, StoreError> {
        self.outage.check("session data remove")?;
        self.inner.remove(session, key).await
    }
    async fn all(&self, session: &SessionId) -> Result<Map<String, Value>, StoreError> {
        self.outage.check("session data all")?;
        self.inner.all(session).await
    }
    async fn delete_session(&self, session: &SessionId) -> Result<usize, StoreError> {
        self.outage.check("session data delete_session")?;
        self.inner.delete_session(session).await
    }
}

#[async_trait]
impl ProgramStore for Flaky<InMemoryProgramStore> {
    async fn create(
        &self,
        namespace: Namespace,
        id: ProgramId,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, StoreError> {
        self.outage.check("program create")?;
        self.inner.create(namespace, id, spec).await
    }
    async fn put(
        &self,
        namespace: Namespace,
        id: ProgramId,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, StoreError> {
        self.outage.check("program put")?;
        self.inner.put(namespace, id, spec).await
    }
    async fn get(
        &self,
        viewer: Option<&SessionId>,
        id: &ProgramId,
    ) -> Result<StoredProgram, StoreError> {
        self.outage.check("program get")?;
        self.inner.get(viewer, id).await
    }
    async fn list(&self, viewer: Option<&SessionId>) -> Result<Vec<StoredProgram>, StoreError> {
        self.outage.check("program list")?;
        self.inner.list(viewer).await
    }
    async fn delete(&self, namespace: &Namespace, id: &ProgramId) -> Result<(), StoreError> {
        self.outage.check("program delete")?;
        self.inner.delete(namespace, id).await
    }
    async fn delete_session(&self, session: &SessionId) -> Result<usize, StoreError> {
        self.outage.check("program delete_session")?;
        self.inner.delete_session(session).await
    }
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, PoolError>, operation: &str) {
    match result {
        Err(error) => {
            assert_eq!(error.kind(), "store_unavailable", "{operation}: {error}");
            assert!(
                error.to_string().contains(operation),
                "the error names the operation `{operation}`: {error}"
            );
        }
        Ok(value) => panic!("{operation}: expected store_unavailable, got Ok({value:?})"),
    }
}

#[tokio::test(start_paused = true)]
async fn session_reads_and_deletes_fail_typed_while_the_store_is_away_and_nothing_is_lost() {
    let outage = Outage::default();
    let (builder, spawns) = scripted_builder(1);
    let builder = builder
        .program_store(Flaky {
            inner: InMemoryProgramStore::default(),
            outage: outage.clone(),
        })
        .session_data_store(Flaky {
            inner: InMemorySessionDataStore::default(),
            outage: outage.clone(),
        });
    let (pool, _spawns, _runtime) = start_pool(builder, spawns, 1).await;
    let alice = pool.session("alice").unwrap();
    alice.set("history", json!(["hello"])).await.unwrap();

    outage.start();
    assert_unavailable(alice.get("history").await, "session data get");
    assert_unavailable(alice.data().await, "session data all");
    assert_unavailable(alice.programs().await, "program list");
    assert_unavailable(pool.programs().await, "program list");
    assert_unavailable(
        pool.session("alice").unwrap().delete().await,
        "program delete_session",
    );

    outage.end();
    assert_eq!(
        alice.get("history").await.unwrap(),
        Some(json!(["hello"])),
        "the data outlived the outage and the failed delete"
    );
    let deleted = alice.delete().await.unwrap();
    assert_eq!(deleted.data_keys, 1);
}

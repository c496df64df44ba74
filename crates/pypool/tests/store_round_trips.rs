//! A session's program call reads two independent things from the stores:
//! the program's definition and the session's worker binding. With a shared
//! store (Redis) each read is a network round trip, so the pool makes them
//! together: the program store's `get` here waits until the affinity store's
//! `lookup` has started, which only happens if the two overlap.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pypool::{
    AffinityStore, InMemoryAffinityStore, InMemoryProgramStore, Namespace, ProgramId, ProgramSpec,
    ProgramStore, SessionId, StoreError, StoredProgram, WorkerId,
};
use serde_json::json;
use support::{scripted_builder, start_pool};
use tokio::sync::Notify;

/// How long (virtual time) a `get` waits for the `lookup` before it gives up
/// and records that the two did not overlap.
const RENDEZVOUS: Duration = Duration::from_secs(5);

/// Shared between the two stores: armed by the test, a lookup signals, a get
/// waits for the signal and records whether it came.
#[derive(Debug, Default)]
struct Rendezvous {
    armed: AtomicBool,
    lookup_started: Notify,
    overlapped: AtomicBool,
}

#[derive(Debug)]
struct SignallingAffinity {
    inner: InMemoryAffinityStore,
    rendezvous: Arc<Rendezvous>,
}

#[async_trait]
impl AffinityStore for SignallingAffinity {
    async fn lookup(&self, session: &SessionId) -> Option<WorkerId> {
        if self.rendezvous.armed.load(Ordering::SeqCst) {
            self.rendezvous.lookup_started.notify_one();
        }
        self.inner.lookup(session).await
    }
    async fn bind(&self, session: &SessionId, worker: WorkerId) {
        self.inner.bind(session, worker).await;
    }
    async fn unbind_worker(&self, worker: WorkerId) -> usize {
        self.inner.unbind_worker(worker).await
    }
    async fn remove_session(&self, session: &SessionId) -> bool {
        self.inner.remove_session(session).await
    }
    async fn sweep(&self) -> usize {
        self.inner.sweep().await
    }
    async fn len(&self) -> usize {
        self.inner.len().await
    }
}

#[derive(Debug)]
struct WaitingPrograms {
    inner: InMemoryProgramStore,
    rendezvous: Arc<Rendezvous>,
}

#[async_trait]
impl ProgramStore for WaitingPrograms {
    async fn create(
        &self,
        namespace: Namespace,
        id: ProgramId,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, StoreError> {
        self.inner.create(namespace, id, spec).await
    }
    async fn put(
        &self,
        namespace: Namespace,
        id: ProgramId,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, StoreError> {
        self.inner.put(namespace, id, spec).await
    }
    async fn get(
        &self,
        viewer: Option<&SessionId>,
        id: &ProgramId,
    ) -> Result<StoredProgram, StoreError> {
        if self.rendezvous.armed.load(Ordering::SeqCst) {
            let met = tokio::time::timeout(RENDEZVOUS, self.rendezvous.lookup_started.notified())
                .await
                .is_ok();
            self.rendezvous.overlapped.store(met, Ordering::SeqCst);
        }
        self.inner.get(viewer, id).await
    }
    async fn list(&self, viewer: Option<&SessionId>) -> Result<Vec<StoredProgram>, StoreError> {
        self.inner.list(viewer).await
    }
    async fn delete(&self, namespace: &Namespace, id: &ProgramId) -> Result<(), StoreError> {
        self.inner.delete(namespace, id).await
    }
    async fn delete_session(&self, session: &SessionId) -> Result<usize, StoreError> {
        self.inner.delete_session(session).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_session_program_call_reads_its_binding_and_its_program_together() {
    let rendezvous = Arc::new(Rendezvous::default());
    let (builder, spawns) = scripted_builder(2);
    let builder = builder
        .affinity_store(SignallingAffinity {
            inner: InMemoryAffinityStore::default(),
            rendezvous: Arc::clone(&rendezvous),
        })
        .program_store(WaitingPrograms {
            inner: InMemoryProgramStore::new(),
            rendezvous: Arc::clone(&rendezvous),
        });
    let (pool, _spawns, _runtime) = start_pool(builder, spawns, 2).await;
    let alice = pool.session("alice").unwrap();
    alice
        .create_program("p", ProgramSpec::python("alice.tools:p"))
        .await
        .unwrap();

    rendezvous.armed.store(true, Ordering::SeqCst);
    let result = alice.execute_program("p", json!({ "x": 1 })).await.unwrap();
    assert_eq!(result["callable"], json!("alice.tools:p"));
    assert!(
        rendezvous.overlapped.load(Ordering::SeqCst),
        "the program's definition was read before the session's binding was looked up: \
         two store round trips in a row instead of one"
    );
}

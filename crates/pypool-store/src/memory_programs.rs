//! The in-process program store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use pypool_affinity::SessionId;

use crate::{Namespace, ProgramId, ProgramSpec, ProgramStore, StoreError, StoredProgram};

/// A [`ProgramStore`] held in this process's memory.
///
/// Global programs and each session's programs are kept in separate sorted
/// maps, so `get` is two map lookups, `list` merges two sorted maps, and
/// `delete_session` drops one map. A `std::sync::Mutex` guards them; it is
/// never held across an `.await`.
///
/// ```
/// use pypool_affinity::SessionId;
/// use pypool_store::{InMemoryProgramStore, Namespace, ProgramId, ProgramSpec, ProgramStore};
///
/// # futures::executor::block_on(async {
/// let store = InMemoryProgramStore::new();
/// let id = ProgramId::new("summarise")?;
/// let alice = SessionId::new("alice")?;
/// let bob = SessionId::new("bob")?;
///
/// store.put(Namespace::Global, id.clone(), ProgramSpec::python("tools.text:summarise")).await?;
/// let own = store
///     .put(Namespace::Session(alice.clone()), id.clone(), ProgramSpec::python("alice.mine:summarise"))
///     .await?;
///
/// assert_eq!(store.get(Some(&alice), &id).await?, own, "alice's program shadows the global one");
/// assert_eq!(store.get(Some(&bob), &id).await?.owner, Namespace::Global);
/// assert_eq!(store.delete_session(&alice).await?, 1);
/// assert_eq!(store.get(Some(&alice), &id).await?.owner, Namespace::Global);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct InMemoryProgramStore {
    programs: Mutex<Programs>,
}

#[derive(Debug, Default)]
struct Programs {
    global: BTreeMap<ProgramId, StoredProgram>,
    sessions: HashMap<SessionId, BTreeMap<ProgramId, StoredProgram>>,
}

impl Programs {
    fn namespace(&self, namespace: &Namespace) -> Option<&BTreeMap<ProgramId, StoredProgram>> {
        match namespace {
            Namespace::Global => Some(&self.global),
            Namespace::Session(session) => self.sessions.get(session),
        }
    }

    fn namespace_mut(&mut self, namespace: &Namespace) -> &mut BTreeMap<ProgramId, StoredProgram> {
        match namespace {
            Namespace::Global => &mut self.global,
            Namespace::Session(session) => self.sessions.entry(session.clone()).or_default(),
        }
    }
}

impl InMemoryProgramStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks the maps. A poisoned lock is recovered: no method can panic
    /// while the maps are half-updated.
    fn lock(&self) -> MutexGuard<'_, Programs> {
        self.programs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl ProgramStore for InMemoryProgramStore {
    async fn create(
        &self,
        namespace: Namespace,
        id: ProgramId,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, StoreError> {
        let program = StoredProgram::new(namespace.clone(), id.clone(), spec)?;
        let mut programs = self.lock();
        if programs
            .namespace(&namespace)
            .is_some_and(|map| map.contains_key(&id))
        {
            return Err(StoreError::ProgramExists { id, namespace });
        }
        programs
            .namespace_mut(&namespace)
            .insert(id, program.clone());
        Ok(program)
    }

    async fn put(
        &self,
        namespace: Namespace,
        id: ProgramId,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, StoreError> {
        let program = StoredProgram::new(namespace.clone(), id.clone(), spec)?;
        self.lock()
            .namespace_mut(&namespace)
            .insert(id, program.clone());
        Ok(program)
    }

    async fn get(
        &self,
        viewer: Option<&SessionId>,
        id: &ProgramId,
    ) -> Result<StoredProgram, StoreError> {
        let programs = self.lock();
        viewer
            .and_then(|session| programs.sessions.get(session))
            .and_then(|own| own.get(id))
            .or_else(|| programs.global.get(id))
            .cloned()
            .ok_or_else(|| StoreError::ProgramNotFound {
                id: id.clone(),
                session: viewer.cloned(),
            })
    }

    async fn list(&self, viewer: Option<&SessionId>) -> Result<Vec<StoredProgram>, StoreError> {
        let programs = self.lock();
        let mut visible: BTreeMap<&ProgramId, &StoredProgram> = programs.global.iter().collect();
        if let Some(own) = viewer.and_then(|session| programs.sessions.get(session)) {
            visible.extend(own.iter());
        }
        Ok(visible.into_values().cloned().collect())
    }

    async fn delete(&self, namespace: &Namespace, id: &ProgramId) -> Result<(), StoreError> {
        let mut programs = self.lock();
        let removed = match namespace {
            Namespace::Global => programs.global.remove(id).is_some(),
            Namespace::Session(session) => match programs.sessions.get_mut(session) {
                Some(own) => {
                    let removed = own.remove(id).is_some();
                    if own.is_empty() {
                        programs.sessions.remove(session);
                    }
                    removed
                }
                None => false,
            },
        };
        if removed {
            Ok(())
        } else {
            Err(StoreError::ProgramNotFound {
                id: id.clone(),
                session: namespace.session().cloned(),
            })
        }
    }

    async fn delete_session(&self, session: &SessionId) -> Result<usize, StoreError> {
        Ok(self
            .lock()
            .sessions
            .remove(session)
            .map_or(0, |own| own.len()))
    }
}

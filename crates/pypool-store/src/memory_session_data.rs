//! The in-process session-data store.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use pypool_affinity::SessionId;
use serde_json::{Map, Value};

use crate::{SessionDataLimits, SessionDataStore, StoreError};

/// A [`SessionDataStore`] held in this process's memory, one JSON map per
/// session behind a `std::sync::Mutex` (never held across an `.await`).
///
/// ```
/// use pypool_affinity::SessionId;
/// use pypool_store::{InMemorySessionDataStore, SessionDataStore};
/// use serde_json::json;
///
/// # futures::executor::block_on(async {
/// let store = InMemorySessionDataStore::new();
/// let session = SessionId::new("chat-1")?;
/// store.set(&session, "history", json!(["hi"])).await?;
/// assert_eq!(store.get(&session, "history").await?, Some(json!(["hi"])));
/// assert_eq!(store.delete_session(&session).await?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct InMemorySessionDataStore {
    limits: SessionDataLimits,
    sessions: Mutex<HashMap<SessionId, Map<String, Value>>>,
}

impl InMemorySessionDataStore {
    /// An empty store with the default [`SessionDataLimits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with the given limits.
    pub fn with_limits(limits: SessionDataLimits) -> Self {
        Self {
            limits,
            sessions: Mutex::default(),
        }
    }

    /// The limits this store enforces.
    pub fn limits(&self) -> SessionDataLimits {
        self.limits
    }

    /// Locks the maps. A poisoned lock is recovered: no method can panic
    /// while a map is half-updated.
    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, Map<String, Value>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl SessionDataStore for InMemorySessionDataStore {
    async fn get(&self, session: &SessionId, key: &str) -> Result<Option<Value>, StoreError> {
        Ok(self
            .lock()
            .get(session)
            .and_then(|map| map.get(key))
            .cloned())
    }

    async fn set(&self, session: &SessionId, key: &str, value: Value) -> Result<(), StoreError> {
        self.limits.check_entry(key, &value)?;
        let mut sessions = self.lock();
        let held = sessions.get(session);
        let (count, is_new) = held.map_or((0, true), |map| (map.len(), !map.contains_key(key)));
        self.limits.check_key_count(session, count, is_new)?;
        sessions
            .entry(session.clone())
            .or_default()
            .insert(key.to_owned(), value);
        Ok(())
    }

    async fn remove(&self, session: &SessionId, key: &str) -> Result<Option<Value>, StoreError> {
        let mut sessions = self.lock();
        let Some(map) = sessions.get_mut(session) else {
            return Ok(None);
        };
        let removed = map.remove(key);
        if map.is_empty() {
            sessions.remove(session);
        }
        Ok(removed)
    }

    async fn all(&self, session: &SessionId) -> Result<Map<String, Value>, StoreError> {
        Ok(self.lock().get(session).cloned().unwrap_or_default())
    }

    async fn delete_session(&self, session: &SessionId) -> Result<usize, StoreError> {
        Ok(self.lock().remove(session).map_or(0, |map| map.len()))
    }
}

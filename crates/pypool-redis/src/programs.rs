//! The program store on Redis.

use async_trait::async_trait;
use pypool_affinity::SessionId;
use pypool_store::{Namespace, ProgramId, ProgramSpec, ProgramStore, StoreError, StoredProgram};
use redis::AsyncCommands;

use std::sync::Arc;

use crate::connection::{Redis, Tracking};
use crate::keys;

/// A [`ProgramStore`] in Redis, shared by every host using the same prefix.
///
/// Each namespace is one hash (see the key layout in ARCHITECTURE.md): a
/// program is one field holding the [`StoredProgram`] as JSON, content
/// version included. `create` is `HSETNX`, `put` is `HSET`, `delete` is
/// `HDEL` — each one atomic command; `get` and `list` read the session's
/// hash and the global one in one pipelined round trip.
///
/// `get` keeps a local copy of what it read, kept coherent by Redis's
/// client-side caching (tracking with invalidation pushes; see the module
/// `coherence`): a program this host has run before costs no round trip
/// while no host changes it. This host's own writes drop its copies at
/// once; another host's as soon as Redis's invalidation arrives. While
/// tracking is not known to be on (Redis away, reconnecting) no copy is
/// served.
///
/// Failures are typed: while Redis is away every method fails with
/// [`StoreError::StoreUnavailable`] naming the operation — never an empty
/// answer that looks like "no programs".
#[derive(Debug, Clone)]
pub struct RedisProgramStore {
    redis: Redis,
    prefix: String,
    _tracking: Arc<Tracking>,
}

impl RedisProgramStore {
    pub(crate) fn new(redis: Redis, prefix: String, tracking: Arc<Tracking>) -> Self {
        Self {
            redis,
            prefix,
            _tracking: tracking,
        }
    }

    /// Every program `viewer` sees, or why Redis could not say.
    async fn try_list(&self, viewer: Option<&SessionId>) -> Result<Vec<StoredProgram>, StoreError> {
        let global = keys::programs(&self.prefix, &Namespace::Global);
        let own = viewer.map(|session| keys::session_programs(&self.prefix, session));
        let (global, own): (Fields, Fields) = self
            .redis
            .run("program list", |mut connection| async move {
                let mut pipe = redis::pipe();
                pipe.hgetall(&global);
                match &own {
                    Some(own) => pipe.hgetall(own),
                    // An empty reply in the same shape keeps one code path.
                    None => pipe.hgetall(&global),
                };
                pipe.query_async(&mut connection).await
            })
            .await?;
        let mut visible = std::collections::BTreeMap::new();
        for (id, json) in global {
            visible.insert(id, decode(&json)?);
        }
        if viewer.is_some() {
            for (id, json) in own {
                visible.insert(id, decode(&json)?);
            }
        }
        Ok(visible.into_values().collect())
    }

    /// Deletes all of `session`'s programs and returns how many there were,
    /// or why Redis could not.
    async fn try_delete_session(&self, session: &SessionId) -> Result<usize, StoreError> {
        let key = keys::session_programs(&self.prefix, session);
        let deleted: Result<(usize, usize), StoreError> = self
            .redis
            .run("program delete_session", |mut connection| async move {
                redis::pipe()
                    .atomic()
                    .hlen(&key)
                    .del(&key)
                    .query_async(&mut connection)
                    .await
            })
            .await;
        self.forget(&Namespace::Session(session.clone()));
        Ok(deleted?.0)
    }
}

impl RedisProgramStore {
    /// This host wrote (or may have written) `namespace`: its copies go.
    fn forget(&self, namespace: &Namespace) {
        self.redis.coherence().forget_programs(namespace);
    }
}

/// A hash's fields and values, as `HGETALL` answers.
type Fields = Vec<(String, String)>;

fn encode(program: &StoredProgram) -> Result<String, StoreError> {
    serde_json::to_string(program).map_err(|error| StoreError::StoreUnavailable {
        operation: "program encode",
        reason: error.to_string(),
    })
}

/// A stored record that does not parse is reported as unavailability of the
/// store (someone else wrote that key), never a panic.
fn decode(json: &str) -> Result<StoredProgram, StoreError> {
    serde_json::from_str(json).map_err(|error| StoreError::StoreUnavailable {
        operation: "program decode",
        reason: format!("a stored program record is not valid: {error}"),
    })
}

#[async_trait]
impl ProgramStore for RedisProgramStore {
    async fn create(
        &self,
        namespace: Namespace,
        id: ProgramId,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, StoreError> {
        let program = StoredProgram::new(namespace.clone(), id.clone(), spec)?;
        let json = encode(&program)?;
        let key = keys::programs(&self.prefix, &namespace);
        let field = id.as_str().to_owned();
        let created: Result<bool, StoreError> = self
            .redis
            .run("program create", |mut connection| async move {
                connection.hset_nx(&key, &field, &json).await
            })
            .await;
        self.forget(&namespace);
        if created? {
            Ok(program)
        } else {
            Err(StoreError::ProgramExists { id, namespace })
        }
    }

    async fn put(
        &self,
        namespace: Namespace,
        id: ProgramId,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, StoreError> {
        let program = StoredProgram::new(namespace.clone(), id.clone(), spec)?;
        let json = encode(&program)?;
        let key = keys::programs(&self.prefix, &namespace);
        let field = id.as_str().to_owned();
        let put = self
            .redis
            .run("program put", |mut connection| async move {
                connection.hset::<_, _, _, ()>(&key, &field, &json).await
            })
            .await;
        self.forget(&namespace);
        put?;
        Ok(program)
    }

    async fn get(
        &self,
        viewer: Option<&SessionId>,
        id: &ProgramId,
    ) -> Result<StoredProgram, StoreError> {
        let coherence = self.redis.coherence();
        if let Some(program) = coherence.program(viewer, id) {
            return Ok(program);
        }
        let generation = coherence.generation();
        let global = keys::programs(&self.prefix, &Namespace::Global);
        let own = viewer.map(|session| keys::session_programs(&self.prefix, session));
        let field = id.as_str().to_owned();
        let (own, global): (Option<String>, Option<String>) = self
            .redis
            .run("program get", |mut connection| async move {
                let mut pipe = redis::pipe();
                match &own {
                    Some(own) => pipe.hget(own, &field),
                    None => pipe.hget(&global, &field),
                };
                pipe.hget(&global, &field);
                pipe.query_async(&mut connection).await
            })
            .await?;
        let found = if viewer.is_some() {
            own.or(global)
        } else {
            global
        };
        match found {
            Some(json) => {
                let program = decode(&json)?;
                coherence.keep_program(generation, viewer, id, &program);
                Ok(program)
            }
            None => Err(StoreError::ProgramNotFound {
                id: id.clone(),
                session: viewer.cloned(),
            }),
        }
    }

    async fn list(&self, viewer: Option<&SessionId>) -> Result<Vec<StoredProgram>, StoreError> {
        self.try_list(viewer).await
    }

    async fn delete(&self, namespace: &Namespace, id: &ProgramId) -> Result<(), StoreError> {
        let key = keys::programs(&self.prefix, namespace);
        let field = id.as_str().to_owned();
        let removed: Result<usize, StoreError> = self
            .redis
            .run("program delete", |mut connection| async move {
                connection.hdel(&key, &field).await
            })
            .await;
        self.forget(namespace);
        if removed? > 0 {
            Ok(())
        } else {
            Err(StoreError::ProgramNotFound {
                id: id.clone(),
                session: namespace.session().cloned(),
            })
        }
    }

    async fn delete_session(&self, session: &SessionId) -> Result<usize, StoreError> {
        self.try_delete_session(session).await
    }
}

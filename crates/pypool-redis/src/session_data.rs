//! The session-data store on Redis.

use std::sync::LazyLock;

use async_trait::async_trait;
use pypool_affinity::SessionId;
use pypool_store::{SessionDataLimits, SessionDataStore, StoreError};
use redis::{AsyncCommands, Script};
use serde_json::{Map, Value};

use crate::connection::Redis;
use crate::keys;

/// Sets a field unless that would add a key past the limit, atomically:
/// KEYS[1] the session's hash; ARGV field, value, max keys. Returns 1 when
/// set, 0 when the session is full.
static SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0
            and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
            return 0
        end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        return 1
        ",
    )
});

/// A [`SessionDataStore`] in Redis: one hash per session, field = key,
/// value = compact JSON, with the same [`SessionDataLimits`] and the same
/// validation as the in-memory store (the limits are checked before any
/// round trip; the key count atomically, in a Lua script).
///
/// While Redis is away every method fails with
/// [`StoreError::StoreUnavailable`] naming the operation; none answers
/// "absent" or "empty" for "could not look".
#[derive(Debug, Clone)]
pub struct RedisSessionDataStore {
    redis: Redis,
    prefix: String,
    limits: SessionDataLimits,
}

impl RedisSessionDataStore {
    pub(crate) fn new(redis: Redis, prefix: String, limits: SessionDataLimits) -> Self {
        Self {
            redis,
            prefix,
            limits,
        }
    }

    /// The limits this store enforces.
    pub fn limits(&self) -> SessionDataLimits {
        self.limits
    }

    /// The value under `key` in `session`, or why Redis could not say.
    async fn try_get(&self, session: &SessionId, key: &str) -> Result<Option<Value>, StoreError> {
        let hash = keys::session_data(&self.prefix, session);
        let field = key.to_owned();
        let json: Option<String> = self
            .redis
            .run("session data get", |mut connection| async move {
                connection.hget(&hash, &field).await
            })
            .await?;
        json.map(|json| decode(&json)).transpose()
    }

    /// Removes `key` from `session` and returns its value, or why Redis could not.
    async fn try_remove(
        &self,
        session: &SessionId,
        key: &str,
    ) -> Result<Option<Value>, StoreError> {
        let hash = keys::session_data(&self.prefix, session);
        let field = key.to_owned();
        let (json, _removed): (Option<String>, usize) = self
            .redis
            .run("session data remove", |mut connection| async move {
                redis::pipe()
                    .atomic()
                    .hget(&hash, &field)
                    .hdel(&hash, &field)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        json.map(|json| decode(&json)).transpose()
    }

    /// Everything `session` holds, or why Redis could not say.
    async fn try_all(&self, session: &SessionId) -> Result<Map<String, Value>, StoreError> {
        let hash = keys::session_data(&self.prefix, session);
        let fields: Vec<(String, String)> = self
            .redis
            .run("session data all", |mut connection| async move {
                connection.hgetall(&hash).await
            })
            .await?;
        fields
            .into_iter()
            .map(|(key, json)| Ok((key, decode(&json)?)))
            .collect()
    }

    /// Deletes everything `session` holds and returns how many keys there
    /// were, or why Redis could not.
    async fn try_delete_session(&self, session: &SessionId) -> Result<usize, StoreError> {
        let hash = keys::session_data(&self.prefix, session);
        let (count, _deleted): (usize, usize) = self
            .redis
            .run("session data delete_session", |mut connection| async move {
                redis::pipe()
                    .atomic()
                    .hlen(&hash)
                    .del(&hash)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(count)
    }
}

fn decode(json: &str) -> Result<Value, StoreError> {
    serde_json::from_str(json).map_err(|error| StoreError::StoreUnavailable {
        operation: "session data decode",
        reason: format!("a stored session value is not valid JSON: {error}"),
    })
}

#[async_trait]
impl SessionDataStore for RedisSessionDataStore {
    async fn get(&self, session: &SessionId, key: &str) -> Result<Option<Value>, StoreError> {
        self.try_get(session, key).await
    }

    async fn set(&self, session: &SessionId, key: &str, value: Value) -> Result<(), StoreError> {
        self.limits.check_entry(key, &value)?;
        let hash = keys::session_data(&self.prefix, session);
        let field = key.to_owned();
        let json = value.to_string();
        let max_keys = self.limits.max_keys;
        let set: i64 = self
            .redis
            .run("session data set", |mut connection| async move {
                SET.key(&hash)
                    .arg(&field)
                    .arg(&json)
                    .arg(max_keys)
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        if set == 1 {
            Ok(())
        } else {
            // The same error the in-memory store gives for a full session.
            self.limits.check_key_count(session, max_keys, true)
        }
    }

    async fn remove(&self, session: &SessionId, key: &str) -> Result<Option<Value>, StoreError> {
        self.try_remove(session, key).await
    }

    async fn all(&self, session: &SessionId) -> Result<Map<String, Value>, StoreError> {
        self.try_all(session).await
    }

    async fn delete_session(&self, session: &SessionId) -> Result<usize, StoreError> {
        self.try_delete_session(session).await
    }
}

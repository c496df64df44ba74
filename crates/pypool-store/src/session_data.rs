//! The per-session key-value store contract and its limits.

use std::io;

use async_trait::async_trait;
use pypool_affinity::{SessionId, validate_id};
use serde_json::{Map, Value};

use crate::StoreError;

/// The noun used in error messages about session-data keys.
pub const SESSION_DATA_KEY_KIND: &str = "session data key";

/// How much data one session may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionDataLimits {
    /// The largest value, in bytes of compact JSON (default 64 KiB).
    pub max_value_bytes: usize,
    /// The most keys one session may hold (default 256).
    pub max_keys: usize,
}

impl SessionDataLimits {
    /// The default [`max_value_bytes`](Self::max_value_bytes): 64 KiB.
    pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 * 1024;
    /// The default [`max_keys`](Self::max_keys): 256.
    pub const DEFAULT_MAX_KEYS: usize = 256;

    /// Checks a key (the id rules, [`validate_id`]) and the size of a value,
    /// without serialising more than `max_value_bytes + 1` bytes of it. The
    /// key-count limit depends on what the session already holds, so each
    /// store checks it with [`check_key_count`](Self::check_key_count).
    pub fn check_entry(&self, key: &str, value: &Value) -> Result<(), StoreError> {
        validate_id(SESSION_DATA_KEY_KIND, key)?;
        let mut counter = CappedCounter {
            written: 0,
            cap: self.max_value_bytes,
        };
        if serde_json::to_writer(&mut counter, value).is_err()
            || counter.written > self.max_value_bytes
        {
            return Err(StoreError::SessionValueTooLarge {
                key: key.to_owned(),
                max_bytes: self.max_value_bytes,
            });
        }
        Ok(())
    }

    /// Checks that `session`, holding `held` keys, may store one more key
    /// (`is_new`); replacing an existing key is always allowed.
    pub fn check_key_count(
        &self,
        session: &SessionId,
        held: usize,
        is_new: bool,
    ) -> Result<(), StoreError> {
        if is_new && held >= self.max_keys {
            return Err(StoreError::TooManySessionKeys {
                session: session.clone(),
                max_keys: self.max_keys,
            });
        }
        Ok(())
    }
}

impl Default for SessionDataLimits {
    fn default() -> Self {
        Self {
            max_value_bytes: Self::DEFAULT_MAX_VALUE_BYTES,
            max_keys: Self::DEFAULT_MAX_KEYS,
        }
    }
}

/// Counts bytes written and fails once more than `cap` have been written,
/// which stops serialising a huge value early.
struct CappedCounter {
    written: usize,
    cap: usize,
}

impl io::Write for CappedCounter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.written = self.written.saturating_add(bytes.len());
        if self.written > self.cap {
            return Err(io::Error::other("value exceeds the size limit"));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A small JSON key-value map per session, for state a session's programs
/// share between calls (kept centrally, like programs, so any worker can
/// serve the session).
///
/// Keys follow the id rules ([`validate_id`]); values and key counts are
/// bounded by [`SessionDataLimits`].
#[async_trait]
pub trait SessionDataStore: Send + Sync + std::fmt::Debug {
    /// The value under `key` in `session`, if any. Fails only when the store
    /// cannot be reached ([`StoreError::StoreUnavailable`]), so "absent" is
    /// never a stand-in for "could not look" (a read-modify-write across an
    /// outage would otherwise overwrite the data).
    async fn get(&self, session: &SessionId, key: &str) -> Result<Option<Value>, StoreError>;

    /// Stores `value` under `key` in `session`, replacing any earlier value.
    /// Fails with a typed error if the key is invalid, the value too large or
    /// the session already holds the maximum number of keys.
    async fn set(&self, session: &SessionId, key: &str, value: Value) -> Result<(), StoreError>;

    /// Removes `key` from `session` and returns its value, if it had one.
    async fn remove(&self, session: &SessionId, key: &str) -> Result<Option<Value>, StoreError>;

    /// Everything `session` holds; fails only when the store cannot be reached.
    async fn all(&self, session: &SessionId) -> Result<Map<String, Value>, StoreError>;

    /// Deletes everything `session` holds (the session ended) and returns how
    /// many keys there were; fails when the store cannot be reached.
    async fn delete_session(&self, session: &SessionId) -> Result<usize, StoreError>;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_size_limit_is_inclusive() {
        let limits = SessionDataLimits {
            max_value_bytes: 7,
            max_keys: 1,
        };
        assert!(
            limits.check_entry("k", &json!("abcde")).is_ok(),
            "\"abcde\" is 7 bytes"
        );
        assert_eq!(
            limits.check_entry("k", &json!("abcdef")),
            Err(StoreError::SessionValueTooLarge {
                key: "k".to_owned(),
                max_bytes: 7
            })
        );
    }

    #[test]
    fn keys_follow_the_id_rules() {
        let error = SessionDataLimits::default()
            .check_entry("a b", &json!(1))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "session data key `a b` is invalid: character ' ' at byte 1 is not allowed (use letters, digits, _ - . :)"
        );
    }
}

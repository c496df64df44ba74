//! Session data behaviour, generic over the store: per-session maps, limits
//! and deletion. Run against the in-memory store (`tests/session_data.rs`)
//! and Redis (`crates/pypool-redis/tests/session_data.rs`); included with
//! `#[path]`. Each body makes fresh, empty stores with `make`.

use pypool_affinity::SessionId;
use pypool_store::{SessionDataLimits, SessionDataStore, StoreError};
use serde_json::{Map, Value, json};

fn session(text: &str) -> SessionId {
    SessionId::new(text).unwrap()
}

/// See the test of the same name.
pub async fn each_session_has_its_own_map<S: SessionDataStore>(
    make: impl AsyncFn(SessionDataLimits) -> S,
) {
    {
        let store = make(SessionDataLimits::default()).await;
        let (a, b) = (session("a"), session("b"));
        store.set(&a, "k", json!(1)).await.unwrap();
        store.set(&b, "k", json!(2)).await.unwrap();
        store.set(&a, "k", json!({"replaced": true})).await.unwrap();
        store.set(&a, "other", json!(null)).await.unwrap();

        assert_eq!(
            store.get(&a, "k").await.unwrap(),
            Some(json!({"replaced": true}))
        );
        assert_eq!(store.get(&b, "k").await.unwrap(), Some(json!(2)));
        assert_eq!(store.get(&a, "missing").await.unwrap(), None);
        assert_eq!(store.get(&session("c"), "k").await.unwrap(), None);

        let mut expected = Map::new();
        expected.insert("k".to_owned(), json!({"replaced": true}));
        expected.insert("other".to_owned(), Value::Null);
        assert_eq!(store.all(&a).await.unwrap(), expected);

        assert_eq!(store.remove(&a, "other").await.unwrap(), Some(Value::Null));
        assert_eq!(store.remove(&a, "other").await.unwrap(), None);
        assert_eq!(store.delete_session(&a).await.unwrap(), 1);
        assert!(store.all(&a).await.unwrap().is_empty());
        assert_eq!(store.all(&b).await.unwrap().len(), 1, "b untouched");
    }
}

/// See the test of the same name.
pub async fn values_are_limited_to_64_kib_of_json<S: SessionDataStore>(
    make: impl AsyncFn(SessionDataLimits) -> S,
) {
    {
        let store = make(SessionDataLimits::default()).await;
        let a = session("a");
        let max = SessionDataLimits::DEFAULT_MAX_VALUE_BYTES;
        assert_eq!(max, 65_536);
        // A JSON string of n characters serialises to n + 2 bytes.
        store
            .set(&a, "fits", json!("x".repeat(max - 2)))
            .await
            .unwrap();
        let error = store
            .set(&a, "big", json!("x".repeat(max - 1)))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            StoreError::SessionValueTooLarge {
                key: "big".to_owned(),
                max_bytes: max
            }
        );
        assert_eq!(
            error.to_string(),
            "value for session data key `big` is larger than 65536 bytes as JSON; keep large data elsewhere and store a reference"
        );
        let huge = Value::Array(vec![json!("y".repeat(1_000)); 10_000]);
        assert!(matches!(
            store.set(&a, "huge", huge).await,
            Err(StoreError::SessionValueTooLarge { .. })
        ));
        assert_eq!(
            store.all(&a).await.unwrap().len(),
            1,
            "rejected values are not stored"
        );
    }
}

/// See the test of the same name.
pub async fn a_session_holds_at_most_256_keys<S: SessionDataStore>(
    make: impl AsyncFn(SessionDataLimits) -> S,
) {
    {
        let store = make(SessionDataLimits::default()).await;
        let a = session("a");
        for index in 0..SessionDataLimits::DEFAULT_MAX_KEYS {
            store
                .set(&a, &format!("k{index}"), json!(index))
                .await
                .unwrap();
        }
        let error = store.set(&a, "one-more", json!(0)).await.unwrap_err();
        assert_eq!(
            error,
            StoreError::TooManySessionKeys {
                session: a.clone(),
                max_keys: 256
            }
        );
        assert_eq!(
            error.to_string(),
            "session `a` already holds 256 session data keys, the maximum; remove one or reuse an existing key"
        );
        store.set(&a, "k7", json!("replaced")).await.unwrap();
        assert_eq!(store.get(&a, "k7").await.unwrap(), Some(json!("replaced")));
        store.remove(&a, "k0").await.unwrap().unwrap();
        store.set(&a, "one-more", json!(0)).await.unwrap();
        store.set(&session("b"), "k", json!(0)).await.unwrap();
        assert_eq!(store.delete_session(&a).await.unwrap(), 256);
    }
}

/// See the test of the same name.
pub async fn keys_follow_the_id_rules<S: SessionDataStore>(
    make: impl AsyncFn(SessionDataLimits) -> S,
) {
    {
        let store = make(SessionDataLimits::default()).await;
        let a = session("a");
        for key in ["", "a b", "k/v"] {
            assert!(
                matches!(
                    store.set(&a, key, json!(1)).await,
                    Err(StoreError::InvalidId(_))
                ),
                "{key:?}"
            );
        }
        let error = store.set(&a, &"k".repeat(129), json!(1)).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "session data key is 129 bytes long, the maximum is 128"
        );
        assert!(store.all(&a).await.unwrap().is_empty());
    }
}

/// See the test of the same name.
pub async fn limits_are_configurable<S: SessionDataStore>(
    make: impl AsyncFn(SessionDataLimits) -> S,
) {
    {
        let limits = SessionDataLimits {
            max_value_bytes: 10,
            max_keys: 2,
        };
        let store = make(limits).await;
        let a = session("a");
        store.set(&a, "x", json!("12345678")).await.unwrap();
        assert!(store.set(&a, "y", json!("123456789")).await.is_err());
        store.set(&a, "y", json!(1)).await.unwrap();
        assert!(matches!(
            store.set(&a, "z", json!(1)).await,
            Err(StoreError::TooManySessionKeys { max_keys: 2, .. })
        ));
    }
}

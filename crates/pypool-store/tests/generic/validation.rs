//! Validation through a store, generic over the store: a store stores what
//! [`ProgramSpec::validate`] accepts and rejects, with the same error, what
//! it rejects (API keys included), for `create` and `put` alike, storing
//! nothing then. Run against the in-memory store (`tests/validation.rs`)
//! and Redis (`crates/pypool-redis/tests/validation.rs`); included with
//! `#[path]`.

use pypool_affinity::SessionId;
use pypool_store::{Namespace, ProgramId, ProgramKind, ProgramSpec, ProgramStore};
use serde_json::json;

/// Definitions both valid and invalid, of both kinds.
pub fn specs() -> Vec<ProgramSpec> {
    vec![
        ProgramSpec::python("pkg.module:function"),
        ProgramSpec::python("a.b.c:Class.method"),
        ProgramSpec::python("no-colon"),
        ProgramSpec::python(""),
        ProgramSpec::new(
            ProgramKind::Python,
            json!({"callable": 1, "extra": [{"api_key": "x"}]}),
        ),
        ProgramSpec::new(
            ProgramKind::Dspy,
            json!({"module": "Predict", "signature": "q -> a"}),
        ),
        ProgramSpec::new(
            ProgramKind::Dspy,
            json!({"module": "Predict", "signature": "q -> a", "lm": {"model": "m", "api_key_env": "OPENAI_API_KEY"}}),
        ),
        ProgramSpec::new(ProgramKind::Dspy, json!({"module": "Predict"})),
        ProgramSpec::new(
            ProgramKind::Dspy,
            json!({"module": "Predict", "signature": "q -> a", "lm": {"model": "m", "api_key": "sk-1"}}),
        ),
        ProgramSpec::new(
            ProgramKind::Dspy,
            json!({"module": "Predict", "signature": "q -> a", "state": {"demos": [{}, {"nested": {"OPENAI_API_KEY": "sk"}}]}}),
        ),
    ]
}

/// See the test of the same name.
pub async fn the_store_applies_the_definition_rules<S: ProgramStore>(store: S) {
    let session = SessionId::new("v").unwrap();
    let mut valid = 0;
    for (index, spec) in specs().into_iter().enumerate() {
        let expected = spec.validate();
        for (put, namespace) in [
            (false, Namespace::Global),
            (true, Namespace::Session(session.clone())),
        ] {
            let id = ProgramId::new(format!("p{index}")).unwrap();
            let stored = if put {
                store.put(namespace, id, spec.clone()).await
            } else {
                store.create(namespace, id, spec.clone()).await
            };
            match (&expected, stored) {
                (Ok(()), Ok(stored)) => {
                    assert_eq!(stored.spec, spec);
                    assert_eq!(stored.version, spec.version());
                }
                (Err(expected), Err(got)) => assert_eq!(&got, expected, "{spec:?}"),
                (expected, got) => panic!("{spec:?}: validate {expected:?}, store {got:?}"),
            }
        }
        valid += usize::from(expected.is_ok());
    }
    assert!(
        valid >= 3 && valid < specs().len(),
        "the list mixes valid and invalid definitions"
    );
    assert_eq!(
        store.list(None).await.unwrap().len(),
        valid,
        "only valid definitions are stored"
    );
    assert_eq!(store.list(Some(&session)).await.unwrap().len(), valid);
}

//! Program store behaviour, generic over the store: isolation between
//! sessions, shadowing, replace and versions, deletion. Run against the
//! in-memory store (`tests/programs.rs`) and Redis
//! (`crates/pypool-redis/tests/programs.rs`); included with `#[path]`. Each
//! body takes a fresh, empty store.

use std::sync::Arc;

use pypool_affinity::SessionId;
use pypool_store::{Namespace, ProgramId, ProgramSpec, ProgramStore, StoreError};

fn session(text: &str) -> SessionId {
    SessionId::new(text).unwrap()
}

fn program(text: &str) -> ProgramId {
    ProgramId::new(text).unwrap()
}

fn own(text: &str) -> Namespace {
    Namespace::Session(session(text))
}

fn not_found(id: &str, session_name: Option<&str>) -> StoreError {
    StoreError::ProgramNotFound {
        id: program(id),
        session: session_name.map(session),
    }
}

/// See the test of the same name.
pub async fn a_session_cannot_see_get_list_or_delete_another_sessions_program<S: ProgramStore>(
    store: S,
) {
    {
        let (a, b) = (session("a"), session("b"));
        let stored = store
            .create(own("b"), program("secret"), ProgramSpec::python("b.m:f"))
            .await
            .unwrap();

        assert_eq!(
            store.get(Some(&a), &program("secret")).await,
            Err(not_found("secret", Some("a")))
        );
        assert_eq!(
            store.get(None, &program("secret")).await,
            Err(not_found("secret", None))
        );
        assert!(store.list(Some(&a)).await.unwrap().is_empty());
        assert!(store.list(None).await.unwrap().is_empty());
        assert_eq!(
            store.delete(&own("a"), &program("secret")).await,
            Err(not_found("secret", Some("a")))
        );
        assert_eq!(store.delete_session(&a).await.unwrap(), 0);

        assert_eq!(
            store.get(Some(&b), &program("secret")).await,
            Ok(stored.clone())
        );
        assert_eq!(store.list(Some(&b)).await.unwrap(), vec![stored]);

        // The same id in both sessions: each sees its own.
        let mine = store
            .create(own("a"), program("secret"), ProgramSpec::python("a.m:f"))
            .await
            .unwrap();
        assert_eq!(store.get(Some(&a), &program("secret")).await.unwrap(), mine);
        assert_eq!(
            store.get(Some(&b), &program("secret")).await.unwrap().owner,
            own("b")
        );
    }
}

/// See the test of the same name.
pub async fn a_sessions_program_shadows_a_global_one_until_deleted<S: ProgramStore>(store: S) {
    {
        let a = session("a");
        let global = store
            .create(
                Namespace::Global,
                program("qa"),
                ProgramSpec::python("shared.qa:run"),
            )
            .await
            .unwrap();
        let other = store
            .create(
                Namespace::Global,
                program("other"),
                ProgramSpec::python("shared.o:run"),
            )
            .await
            .unwrap();
        let mine = store
            .create(own("a"), program("qa"), ProgramSpec::python("mine.qa:run"))
            .await
            .unwrap();
        let extra = store
            .create(
                own("a"),
                program("b-extra"),
                ProgramSpec::python("mine.x:run"),
            )
            .await
            .unwrap();

        assert_eq!(store.get(Some(&a), &program("qa")).await.unwrap(), mine);
        assert_eq!(
            store
                .get(Some(&session("z")), &program("qa"))
                .await
                .unwrap(),
            global
        );
        assert_eq!(store.get(None, &program("qa")).await.unwrap(), global);
        assert_eq!(
            store.list(Some(&a)).await.unwrap(),
            vec![extra.clone(), other.clone(), mine],
            "sorted by id, shadowed once"
        );
        assert_eq!(
            store.list(None).await.unwrap(),
            vec![other.clone(), global.clone()]
        );

        store.delete(&own("a"), &program("qa")).await.unwrap();
        assert_eq!(
            store.get(Some(&a), &program("qa")).await.unwrap(),
            global,
            "the global one reappears"
        );
        assert_eq!(
            store.list(Some(&a)).await.unwrap(),
            vec![extra, other, global]
        );
    }
}

/// See the test of the same name.
pub async fn create_refuses_an_existing_id_and_put_replaces_with_a_new_version<S: ProgramStore>(
    store: S,
) {
    {
        let first = store
            .create(own("a"), program("p"), ProgramSpec::python("m:f"))
            .await
            .unwrap();

        let error = store
            .create(own("a"), program("p"), ProgramSpec::python("m:g"))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            StoreError::ProgramExists {
                id: program("p"),
                namespace: own("a")
            }
        );
        assert_eq!(
            error.to_string(),
            "program `p` already exists in session `a`; use put to replace it, or pick another id"
        );
        assert_eq!(
            store.get(Some(&session("a")), &program("p")).await.unwrap(),
            first,
            "unchanged"
        );

        let same = store
            .put(own("a"), program("p"), ProgramSpec::python("m:f"))
            .await
            .unwrap();
        assert_eq!(same.version, first.version, "same definition, same version");
        let changed = store
            .put(own("a"), program("p"), ProgramSpec::python("m:g"))
            .await
            .unwrap();
        assert_ne!(changed.version, first.version);
        assert_eq!(
            store.get(Some(&session("a")), &program("p")).await.unwrap(),
            changed
        );

        // The same id may be created in another namespace.
        assert!(
            store
                .create(Namespace::Global, program("p"), ProgramSpec::python("m:f"))
                .await
                .is_ok()
        );
        let error = store
            .create(Namespace::Global, program("p"), ProgramSpec::python("m:f"))
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "program `p` already exists in the global namespace; use put to replace it, or pick another id"
        );
    }
}

/// See the test of the same name.
pub async fn invalid_definitions_are_not_stored<S: ProgramStore>(store: S) {
    {
        let error = store
            .create(own("a"), program("p"), ProgramSpec::python("no-colon"))
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::InvalidSpec { .. }), "{error:?}");
        let error = store
            .put(Namespace::Global, program("p"), ProgramSpec::python(""))
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::InvalidSpec { .. }), "{error:?}");
        assert!(store.list(Some(&session("a"))).await.unwrap().is_empty());
    }
}

/// See the test of the same name.
pub async fn delete_session_removes_only_that_sessions_programs<S: ProgramStore>(store: S) {
    {
        for id in ["p1", "p2", "p3"] {
            store
                .create(own("a"), program(id), ProgramSpec::python("m:f"))
                .await
                .unwrap();
        }
        store
            .create(own("b"), program("p1"), ProgramSpec::python("m:f"))
            .await
            .unwrap();
        store
            .create(Namespace::Global, program("g"), ProgramSpec::python("m:f"))
            .await
            .unwrap();

        assert_eq!(store.delete_session(&session("a")).await.unwrap(), 3);
        assert_eq!(store.delete_session(&session("a")).await.unwrap(), 0);
        assert_eq!(
            store.list(Some(&session("a"))).await.unwrap().len(),
            1,
            "only the global one"
        );
        assert_eq!(store.list(Some(&session("b"))).await.unwrap().len(), 2);
    }
}

/// See the test of the same name.
pub async fn delete_reports_missing_programs<S: ProgramStore>(store: S) {
    {
        store
            .create(Namespace::Global, program("g"), ProgramSpec::python("m:f"))
            .await
            .unwrap();
        let error = store.delete(&own("a"), &program("g")).await.unwrap_err();
        assert_eq!(
            error,
            not_found("g", Some("a")),
            "a session cannot delete a global program through its namespace"
        );
        assert_eq!(
            error.to_string(),
            "program `g` not found for session `a`; create it first (sessions see their own programs and global ones)"
        );
        store
            .delete(&Namespace::Global, &program("g"))
            .await
            .unwrap();
        assert_eq!(
            store.delete(&Namespace::Global, &program("g")).await,
            Err(not_found("g", None))
        );
        assert_eq!(
            not_found("g", None).to_string(),
            "program `g` not found in the global namespace; create it first (sessions see their own programs and global ones)"
        );
    }
}

/// See the test of the same name.
pub async fn stored_programs_round_trip_through_json<S: ProgramStore>(store: S) {
    {
        let stored = store
            .create(own("a"), program("p"), ProgramSpec::python("m:f"))
            .await
            .unwrap();
        let json = serde_json::to_value(&stored).unwrap();
        assert_eq!(json["owner"], serde_json::json!({"session": "a"}));
        assert_eq!(
            serde_json::from_value::<pypool_store::StoredProgram>(json).unwrap(),
            stored
        );
    }
}

/// See the test of the same name.
pub async fn stores_are_usable_as_trait_objects<S: ProgramStore + 'static>(store: S) {
    let store: Arc<dyn ProgramStore> = Arc::new(store);
    {
        store
            .put(Namespace::Global, program("p"), ProgramSpec::python("m:f"))
            .await
            .unwrap();
        assert_eq!(store.list(None).await.unwrap().len(), 1);
    }
}

//! Sessions: program isolation and shadowing, deletion, session data and its limits, id validation.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use pypool::{IdError, Namespace, PoolError, ProgramSpec, StoreError};
use serde_json::{Map, json};
use support::fake_pool;

fn assert_not_found(error: &PoolError, expected_message: &str) {
    assert!(
        matches!(error, PoolError::Store(StoreError::ProgramNotFound { .. })),
        "expected ProgramNotFound, got {error:?}"
    );
    assert_eq!(error.kind(), "program_not_found");
    assert_eq!(error.to_string(), expected_message);
}

#[tokio::test(start_paused = true)]
async fn a_session_program_is_invisible_to_other_sessions_and_to_anonymous_calls() {
    let (pool, _spawns, runtime) = fake_pool(2).await;
    let alice = pool.session("alice").unwrap();
    let bob = pool.session("bob").unwrap();
    let created = alice
        .create_program("p", ProgramSpec::python("alice.tools:p"))
        .await
        .unwrap();
    assert_eq!(created.owner, Namespace::Session(alice.id().clone()));

    let result = alice.execute_program("p", json!({ "x": 1 })).await.unwrap();
    assert_eq!(result["callable"], json!("alice.tools:p"));
    assert_eq!(result["inputs"], json!({ "x": 1 }));
    let runs_before: usize = runtime
        .workers()
        .iter()
        .map(|worker| runtime.requests(*worker).len())
        .sum();

    let bob_message = "program `p` not found for session `bob`; create it first (sessions see their own programs and global ones)";
    let global_message = "program `p` not found in the global namespace; create it first (sessions see their own programs and global ones)";
    assert_not_found(&bob.program("p").await.unwrap_err(), bob_message);
    assert_not_found(
        &bob.execute_program("p", json!({})).await.unwrap_err(),
        bob_message,
    );
    assert_not_found(&bob.delete_program("p").await.unwrap_err(), bob_message);
    assert!(bob.programs().await.unwrap().is_empty());
    assert_not_found(&pool.program("p").await.unwrap_err(), global_message);
    assert_not_found(
        &pool.execute_program("p", json!({})).await.unwrap_err(),
        global_message,
    );
    assert!(pool.programs().await.unwrap().is_empty());
    let runs_after: usize = runtime
        .workers()
        .iter()
        .map(|worker| runtime.requests(*worker).len())
        .sum();
    assert_eq!(runs_after, runs_before, "no worker was asked to run it");

    // Bob may use the same id for his own program; Alice's is untouched.
    bob.create_program("p", ProgramSpec::python("bob.tools:p"))
        .await
        .unwrap();
    let bobs = bob.execute_program("p", json!({})).await.unwrap();
    assert_eq!(bobs["callable"], json!("bob.tools:p"));
    let alices = alice.execute_program("p", json!({})).await.unwrap();
    assert_eq!(alices["callable"], json!("alice.tools:p"));
    assert_ne!(bobs["version"], alices["version"]);
}

#[tokio::test(start_paused = true)]
async fn a_global_program_is_visible_to_every_session_and_to_anonymous_calls() {
    let (pool, _spawns, _runtime) = fake_pool(2).await;
    let alice = pool.session("alice").unwrap();
    let bob = pool.session("bob").unwrap();
    let global = pool
        .create_program("g", ProgramSpec::python("shared.tools:g"))
        .await
        .unwrap();
    assert_eq!(global.owner, Namespace::Global);
    alice
        .create_program("own", ProgramSpec::python("alice.tools:own"))
        .await
        .unwrap();

    for session in [&alice, &bob] {
        assert_eq!(session.program("g").await.unwrap(), global);
        let result = session
            .execute_program("g", json!({ "who": session.id().as_str() }))
            .await
            .unwrap();
        assert_eq!(result["callable"], json!("shared.tools:g"));
        assert_eq!(result["inputs"]["who"], json!(session.id().as_str()));
    }
    let anonymous = pool.execute_program("g", json!({})).await.unwrap();
    assert_eq!(anonymous["version"], json!(global.version));

    let listed = |programs: Vec<pypool::StoredProgram>| {
        programs
            .into_iter()
            .map(|program| program.id.into_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(alice.programs().await.unwrap()), ["g", "own"]);
    assert_eq!(listed(bob.programs().await.unwrap()), ["g"]);
    assert_eq!(listed(pool.programs().await.unwrap()), ["g"]);

    let taken = pool
        .create_program("g", ProgramSpec::python("other:g"))
        .await
        .unwrap_err();
    assert!(
        matches!(taken, PoolError::Store(StoreError::ProgramExists { .. })),
        "{taken:?}"
    );
    assert_eq!(taken.kind(), "store");
}

#[tokio::test(start_paused = true)]
async fn a_session_program_shadows_a_global_one_of_the_same_id() {
    let (pool, _spawns, _runtime) = fake_pool(2).await;
    let alice = pool.session("alice").unwrap();
    let bob = pool.session("bob").unwrap();
    pool.create_program("s", ProgramSpec::python("shared.tools:s"))
        .await
        .unwrap();
    alice
        .create_program("s", ProgramSpec::python("alice.tools:s"))
        .await
        .unwrap();

    let callable = |result: serde_json::Value| result["callable"].as_str().unwrap().to_owned();
    assert_eq!(
        callable(alice.execute_program("s", json!({})).await.unwrap()),
        "alice.tools:s"
    );
    assert_eq!(
        callable(bob.execute_program("s", json!({})).await.unwrap()),
        "shared.tools:s"
    );
    assert_eq!(
        callable(pool.execute_program("s", json!({})).await.unwrap()),
        "shared.tools:s"
    );
    assert_eq!(
        alice.programs().await.unwrap().len(),
        1,
        "the shadowed global program is listed once, as alice's"
    );
    assert_eq!(
        alice.programs().await.unwrap()[0].owner,
        Namespace::Session(alice.id().clone())
    );

    // Deleting alice's own program uncovers the global one again.
    alice.delete_program("s").await.unwrap();
    assert_eq!(
        callable(alice.execute_program("s", json!({})).await.unwrap()),
        "shared.tools:s"
    );
    // A session cannot delete the global program through its handle.
    assert_eq!(
        alice.delete_program("s").await.unwrap_err().kind(),
        "program_not_found"
    );
    assert!(pool.program("s").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn deleting_a_session_deletes_its_programs_and_data_and_nothing_else() {
    let (pool, _spawns, _runtime) = fake_pool(2).await;
    let alice = pool.session("alice").unwrap();
    let bob = pool.session("bob").unwrap();
    pool.create_program("g", ProgramSpec::python("shared.tools:g"))
        .await
        .unwrap();
    for id in ["a1", "a2"] {
        alice
            .create_program(id, ProgramSpec::python("alice.tools:run"))
            .await
            .unwrap();
    }
    for (key, value) in [("k1", json!(1)), ("k2", json!("two")), ("k3", json!([3]))] {
        alice.set(key, value).await.unwrap();
    }
    bob.create_program("b1", ProgramSpec::python("bob.tools:run"))
        .await
        .unwrap();
    bob.set("k1", json!("bob's")).await.unwrap();
    alice.execute_program("a1", json!({})).await.unwrap();

    let deleted = alice.delete().await.unwrap();
    assert_eq!(
        deleted,
        pypool::SessionDeleted {
            programs: 2,
            data_keys: 3
        }
    );

    let alice = pool.session("alice").unwrap();
    assert_eq!(
        alice.program("a1").await.unwrap_err().kind(),
        "program_not_found"
    );
    assert_eq!(
        alice
            .execute_program("a2", json!({}))
            .await
            .unwrap_err()
            .kind(),
        "program_not_found"
    );
    assert!(alice.data().await.unwrap().is_empty());
    assert_eq!(alice.get("k1").await.unwrap(), None);
    let visible: Vec<_> = alice
        .programs()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id.into_string())
        .collect();
    assert_eq!(visible, ["g"], "global programs survive");
    // The session can be used again from scratch.
    assert!(alice.execute_program("g", json!({})).await.is_ok());

    assert_eq!(bob.get("k1").await.unwrap(), Some(json!("bob's")));
    assert!(bob.execute_program("b1", json!({})).await.is_ok());

    assert_eq!(
        alice.delete().await.unwrap(),
        pypool::SessionDeleted {
            programs: 0,
            data_keys: 0
        },
        "deleting again removes nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn session_data_is_kept_per_session_and_bounded() {
    let (pool, _spawns, runtime) = fake_pool(2).await;
    let alice = pool.session("alice").unwrap();
    let bob = pool.session("bob").unwrap();
    assert_eq!(alice.get("history").await.unwrap(), None);
    assert!(alice.data().await.unwrap().is_empty());

    alice.set("history", json!(["hi"])).await.unwrap();
    alice.set("turns", json!(1)).await.unwrap();
    alice.set("history", json!(["hi", "there"])).await.unwrap();
    assert_eq!(
        alice.get("history").await.unwrap(),
        Some(json!(["hi", "there"]))
    );
    let mut expected = Map::new();
    expected.insert("history".into(), json!(["hi", "there"]));
    expected.insert("turns".into(), json!(1));
    assert_eq!(alice.data().await.unwrap(), expected);
    assert_eq!(
        bob.get("history").await.unwrap(),
        None,
        "data is per session"
    );
    assert!(bob.data().await.unwrap().is_empty());
    // A clone of the handle, or a new handle on the same id, is the same session.
    assert_eq!(
        pool.session("alice").unwrap().data().await.unwrap(),
        expected
    );

    // The limit is 64 KiB of JSON: a string of 65,534 characters plus its quotes fits.
    let max = 64 * 1024;
    alice.set("big", json!("x".repeat(max - 2))).await.unwrap();
    let error = alice
        .set("big", json!("y".repeat(max - 1)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            PoolError::Store(StoreError::SessionValueTooLarge { key, max_bytes })
                if key == "big" && *max_bytes == max
        ),
        "{error:?}"
    );
    assert_eq!(error.kind(), "store");
    assert_eq!(
        error.to_string(),
        "value for session data key `big` is larger than 65536 bytes as JSON; keep large data elsewhere and store a reference"
    );
    assert_eq!(
        alice
            .get("big")
            .await
            .unwrap()
            .unwrap()
            .as_str()
            .unwrap()
            .len(),
        max - 2,
        "a refused value leaves the old one"
    );

    let bad_key = alice.set("a b", json!(1)).await.unwrap_err();
    assert_eq!(bad_key.kind(), "store");
    assert_eq!(
        bad_key.to_string(),
        "session data key `a b` is invalid: character ' ' at byte 1 is not allowed (use letters, digits, _ - . :)"
    );

    // Session data lives in the host: no worker ever saw a request.
    for worker in runtime.workers() {
        assert!(runtime.requests(worker).is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn invalid_session_and_program_ids_are_rejected_with_a_message_naming_the_problem() {
    let (pool, _spawns, runtime) = fake_pool(1).await;

    let spaced = pool.session("a b").unwrap_err();
    assert!(
        matches!(
            &spaced,
            PoolError::InvalidId(IdError::InvalidCharacter {
                kind: "session id",
                character: ' ',
                byte: 1,
                ..
            })
        ),
        "{spaced:?}"
    );
    assert_eq!(spaced.kind(), "invalid_id");
    assert_eq!(
        spaced.to_string(),
        "session id `a b` is invalid: character ' ' at byte 1 is not allowed (use letters, digits, _ - . :)"
    );

    let long = pool.session(&"x".repeat(200)).unwrap_err();
    assert!(
        matches!(
            &long,
            PoolError::InvalidId(IdError::TooLong {
                kind: "session id",
                len: 200
            })
        ),
        "{long:?}"
    );
    assert_eq!(
        long.to_string(),
        "session id is 200 bytes long, the maximum is 128"
    );
    assert!(
        pool.session(&"x".repeat(128)).is_ok(),
        "128 bytes is allowed"
    );

    let empty = pool.session("").unwrap_err();
    assert_eq!(
        empty.to_string(),
        "session id is empty; use 1 to 128 letters, digits or _ - . :"
    );

    let bad_program = pool
        .create_program("bad/id", ProgramSpec::python("m:f"))
        .await
        .unwrap_err();
    assert_eq!(bad_program.kind(), "invalid_id");
    assert_eq!(
        bad_program.to_string(),
        "program id `bad/id` is invalid: character '/' at byte 3 is not allowed (use letters, digits, _ - . :)"
    );
    let session = pool.session("user-7:chat.v2_x").unwrap();
    let bad_run = session.execute_program("", json!({})).await.unwrap_err();
    assert_eq!(
        bad_run.to_string(),
        "program id is empty; use 1 to 128 letters, digits or _ - . :"
    );
    assert!(runtime.requests(runtime.workers()[0]).is_empty());
}

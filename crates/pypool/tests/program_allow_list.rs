//! `allowed_program_modules`: a `python` program naming a callable outside
//! the allowed module prefixes is refused when it is created (issue 10, item
//! 3: a program definition is code).
#![allow(clippy::unwrap_used, clippy::panic)]

use pypool::{BuildError, Pool, PoolError, ProgramKind, ProgramSpec};
use pypool_mock::{Behaviour, MockSpawner};
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn only_callables_inside_the_allowed_modules_are_stored() {
    let spawner = MockSpawner::with_behaviour(Behaviour::default()).unwrap();
    let pool = Pool::builder()
        .size(1)
        .spawner(spawner)
        .allowed_program_modules(["my_app.programs", "tools."])
        .build()
        .unwrap();
    for callable in [
        "my_app.programs:run",
        "my_app.programs.sub:run",
        "tools:x",
        "tools.deep.er:x",
    ] {
        pool.put_program("ok", ProgramSpec::python(callable))
            .await
            .unwrap_or_else(|error| panic!("{callable}: {error}"));
    }
    let session = pool.session("s").unwrap();
    for callable in [
        "os:system",
        "my_app:run",
        "my_app.programsx:run",
        "toolsx:x",
        "subprocess:run",
    ] {
        let error = session
            .create_program("evil", ProgramSpec::python(callable))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, PoolError::ProgramNotAllowed { program, .. } if program == "evil"),
            "{callable}: {error:?}"
        );
        assert_eq!(error.kind(), "program_not_allowed");
        assert!(
            error.to_string().contains("my_app.programs, tools"),
            "{error}"
        );
    }
    // DSPy programs name no callable.
    pool.create_program(
        "qa",
        ProgramSpec::new(
            ProgramKind::Dspy,
            json!({ "module": "Predict", "signature": "q -> a" }),
        ),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_prefix_that_is_not_a_module_path_is_a_build_error() {
    let error = Pool::builder()
        .spawner(MockSpawner::with_behaviour(Behaviour::default()).unwrap())
        .allowed_program_modules(["os; rm"])
        .build()
        .unwrap_err();
    assert!(
        matches!(&error, BuildError::InvalidSetting { setting, .. } if *setting == "allowed_program_modules"),
        "{error:?}"
    );
}

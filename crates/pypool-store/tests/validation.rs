//! Program definition validation and content versions.

#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

use pypool_store::{ProgramKind, ProgramSpec, StoreError, is_api_key_name};
use serde_json::{Value, json};

#[path = "generic/validation.rs"]
mod generic;

#[test]
fn the_store_applies_the_definition_rules() {
    futures::executor::block_on(generic::the_store_applies_the_definition_rules(
        pypool_store::InMemoryProgramStore::new(),
    ));
}

fn dspy(spec: Value) -> ProgramSpec {
    ProgramSpec::new(ProgramKind::Dspy, spec)
}

fn problem(spec: &ProgramSpec) -> String {
    match spec.validate() {
        Err(StoreError::InvalidSpec { kind, problem }) => {
            assert_eq!(kind, spec.kind);
            problem
        }
        other => panic!("expected InvalidSpec for {spec:?}, got {other:?}"),
    }
}

#[test]
fn accepts_well_formed_python_callables() {
    for callable in [
        "pkg.module:function",
        "module:function",
        "a.b.c:Class.method",
        "_p.m2:f_1",
        "caf\u{e9}:f",
    ] {
        assert_eq!(
            ProgramSpec::python(callable).validate(),
            Ok(()),
            "{callable}"
        );
    }
}

#[test]
fn rejects_malformed_python_callables_with_a_fix() {
    let cases = [
        (
            json!({}),
            "`callable` is missing; write it as \"package.module:function\"",
        ),
        (
            json!({"callable": 3}),
            "`callable` must be a string, got a number; write it as \"package.module:function\"",
        ),
        (
            json!({"callable": "pkg.module.function"}),
            "`callable` \"pkg.module.function\" has no `:`; write it as \"package.module:function\"",
        ),
        (
            json!({"callable": ":f"}),
            "`callable` \":f\" has no module path before `:`; write it as \"package.module:function\"",
        ),
        (
            json!({"callable": "pkg.m:"}),
            "`callable` \"pkg.m:\" has no function after `:`; write it as \"package.module:function\"",
        ),
        (
            json!({"callable": "pkg..m:f"}),
            "`callable` \"pkg..m:f\" is not of the form package.module:function: \"\" is not a Python identifier",
        ),
        (
            json!({"callable": "pkg.m:f:g"}),
            "`callable` \"pkg.m:f:g\" is not of the form package.module:function: \"f:g\" is not a Python identifier",
        ),
        (
            json!({"callable": "9pkg:f"}),
            "`callable` \"9pkg:f\" is not of the form package.module:function: \"9pkg\" is not a Python identifier",
        ),
        (
            json!({"callable": "pkg m:f"}),
            "`callable` \"pkg m:f\" is not of the form package.module:function: \"pkg m\" is not a Python identifier",
        ),
    ];
    for (spec, expected) in cases {
        assert_eq!(
            problem(&ProgramSpec::new(ProgramKind::Python, spec)),
            expected
        );
    }
    assert_eq!(
        ProgramSpec::new(ProgramKind::Python, json!("pkg:f"))
            .validate()
            .unwrap_err()
            .to_string(),
        "invalid python program definition: the definition must be a JSON object, got a string"
    );
}

#[test]
fn accepts_a_full_dspy_definition() {
    let spec = dspy(json!({
        "module": "ChainOfThought",
        "signature": "context, question: str -> answer: str",
        "instructions": "Answer briefly.",
        "state": {"demos": [{"question": "2+2?", "answer": "4"}]},
        "lm": {"model": "openai/gpt-4o-mini", "api_base": "http://localhost:8000/v1", "api_key_env": "OPENAI_API_KEY"},
    }));
    assert_eq!(spec.validate(), Ok(()));
}

#[test]
fn rejects_incomplete_dspy_definitions() {
    let cases = [
        (json!({"signature": "q -> a"}), "`module` is missing"),
        (
            json!({"module": " ", "signature": "q -> a"}),
            "`module` is empty",
        ),
        (json!({"module": "Predict"}), "`signature` is missing"),
        (
            json!({"module": "Predict", "signature": ""}),
            "`signature` is empty",
        ),
        (
            json!({"module": "Predict", "signature": ["q", "a"]}),
            "`signature` must be a string, got an array",
        ),
        (
            json!({"module": "Predict", "signature": "question, answer"}),
            "`signature` \"question, answer\" has no `->`; write it as \"inputs -> outputs\", e.g. \"question: str -> answer: str\"",
        ),
        (
            json!({"module": "Predict", "signature": "question -> "}),
            "`signature` \"question -> \" names no output after `->`",
        ),
        (
            json!({"module": "Predict", "signature": "q -> a", "instructions": 1}),
            "`instructions` must be a string, got a number",
        ),
        (
            json!({"module": "Predict", "signature": "q -> a", "state": []}),
            "`state` must be an object, got an array",
        ),
        (
            json!({"module": "Predict", "signature": "q -> a", "lm": "gpt-4o"}),
            "`lm` must be an object, got a string",
        ),
        (
            json!({"module": "Predict", "signature": "q -> a", "lm": {}}),
            "`lm.model` is missing; name the model, e.g. \"openai/gpt-4o-mini\"",
        ),
    ];
    for (spec, expected) in cases {
        assert_eq!(problem(&dspy(spec)), expected);
    }
}

#[test]
fn rejects_api_keys_at_any_depth_and_names_where() {
    let cases = [
        (
            json!({"module": "Predict", "signature": "q -> a", "api_key": "sk-1"}),
            "api_key",
        ),
        (
            json!({"module": "Predict", "signature": "q -> a", "lm": {"model": "m", "api_key": "sk-1"}}),
            "lm.api_key",
        ),
        (
            json!({"module": "Predict", "signature": "q -> a", "state": {"demos": [{}, {"nested": {"OPENAI_API_KEY": "sk"}}]}}),
            "state.demos[1].nested.OPENAI_API_KEY",
        ),
        (
            json!({"module": "Predict", "signature": "q -> a", "lm": {"model": "m", "secret-key": "x"}}),
            "lm.secret-key",
        ),
    ];
    for (spec, path) in cases {
        let error = dspy(spec).validate().unwrap_err();
        assert_eq!(
            error,
            StoreError::ApiKeyInDefinition {
                path: path.to_owned()
            }
        );
        assert_eq!(
            error.to_string(),
            format!(
                "API keys must not be stored in program definitions (found key `{path}`); name the environment variable with `api_key_env`"
            )
        );
    }
    // Python definitions too, and before any other check.
    let error = ProgramSpec::new(
        ProgramKind::Python,
        json!({"callable": 1, "extra": [{"api_key": "x"}]}),
    )
    .validate()
    .unwrap_err();
    assert_eq!(
        error,
        StoreError::ApiKeyInDefinition {
            path: "extra[0].api_key".to_owned()
        }
    );
}

#[test]
fn names_api_keys_but_allows_the_environment_variable_name() {
    for name in [
        "api_key",
        "API_KEY",
        "openai_api_key",
        "secret_key",
        "Secret-Key",
        "_key",
    ] {
        assert!(is_api_key_name(name), "{name}");
    }
    for name in [
        "api_key_env",
        "API_KEY_ENV",
        "key",
        "keys",
        "model",
        "monkey",
        "api_keys",
        "key_env",
    ] {
        assert!(!is_api_key_name(name), "{name}");
    }
}

#[test]
fn versions_change_if_and_only_if_the_definition_changes() {
    let a: Value = serde_json::from_str(
        r#"{"module":"Predict","signature":"q -> a","lm":{"model":"m","temperature":0.5}}"#,
    )
    .unwrap();
    let reordered: Value = serde_json::from_str(
        r#"{"lm":{"temperature":0.5,"model":"m"},"signature":"q -> a","module":"Predict"}"#,
    )
    .unwrap();
    assert_eq!(
        dspy(a.clone()).version(),
        dspy(reordered).version(),
        "key order does not matter"
    );
    assert_eq!(dspy(a.clone()).version(), dspy(a.clone()).version());

    let mut changed = a.clone();
    changed["lm"]["temperature"] = json!(0.6);
    assert_ne!(dspy(a.clone()).version(), dspy(changed).version());
    let mut added = a.clone();
    added["instructions"] = json!("");
    assert_ne!(dspy(a.clone()).version(), dspy(added).version());
    assert_ne!(
        ProgramSpec::new(ProgramKind::Python, a.clone()).version(),
        dspy(a).version(),
        "the kind is part of the definition"
    );
}

/// Golden values of the hash algorithm (FNV-1a over canonical JSON),
/// computed independently; they must never change, or every worker cache and
/// every shared store would see every program as new.
#[test]
fn versions_are_stable_across_processes_and_releases() {
    let python = ProgramSpec::python("tools.text:summarise");
    assert_eq!(
        python.canonical_json(),
        r#"{"kind":"python","spec":{"callable":"tools.text:summarise"}}"#
    );
    assert_eq!(python.version(), "a090d23ab7004464");

    let dspy = dspy(json!({
        "signature": "question: str -> answer: str",
        "module": "Predict",
        "lm": {"temperature": 0.5, "model": "openai/gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"},
    }));
    assert_eq!(dspy.version(), "6e752b00bc07e2ea");
}

#[test]
fn specs_round_trip_through_json() {
    let spec = ProgramSpec::python("pkg.m:f");
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        json,
        json!({"kind": "python", "spec": {"callable": "pkg.m:f"}})
    );
    assert_eq!(serde_json::from_value::<ProgramSpec>(json).unwrap(), spec);
    assert!(serde_json::from_value::<ProgramSpec>(json!({"kind": "ruby", "spec": {}})).is_err());
}

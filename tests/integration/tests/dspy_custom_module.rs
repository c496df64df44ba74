//! A custom DSPy module (user code, `"module": "dspy_modules:Rag"`) optimized
//! in-process with `BootstrapFewShot` against the fake LM, its state saved,
//! then created through a real worker from that definition: the worker gives
//! the same outputs for 50 inputs, reports each run's LM usage beside the
//! result, and refuses inputs that do not fit `forward` before any LM call.
#![cfg(feature = "real-python")]
#![allow(clippy::panic, reason = "a test fails by panicking")]

use std::sync::Arc;

use pypool_integration::{FakeLm, bounded, config, fixture, python, repo_root, request, spawn};
use pypool_seam::{Outcome, RemoteErrorKind, Replied, WorkerConnection};
use serde_json::{Value, json};

const KEY_ENV: &str = "PYPOOL_FAKE_LM_KEY";
const KEY: &str = "sk-test-not-a-real-key";

async fn worker(worker_id: u64) -> Arc<dyn WorkerConnection> {
    let config = config(&[])
        .with_python_path(repo_root().join("tests").join("fixtures"))
        .with_env(KEY_ENV, KEY);
    spawn(config, worker_id).await.expect("the worker starts")
}

fn run_program(
    id: u64,
    version: &str,
    inputs: Value,
    definition: Option<&Value>,
) -> pypool_wire::Request {
    let mut args = json!({ "program_id": "rag", "version": version, "inputs": inputs });
    if let Some(definition) = definition {
        args["definition"] = definition.clone();
    }
    request(id, "pypool.run_program", args)
}

async fn call(worker: &Arc<dyn WorkerConnection>, request: pypool_wire::Request) -> Replied {
    bounded("the program's reply", worker.call_with_usage(request))
        .await
        .expect("the worker answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optimized_module_created_through_the_worker_gives_identical_outputs_for_50_inputs() {
    let lm = FakeLm::start();
    let api_base = lm.api_base();
    let optimized = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python())
            .arg(fixture("optimize_rag.py"))
            .args([api_base.as_str(), KEY_ENV, "50"])
            .env(KEY_ENV, KEY)
            .output()
            .expect("the optimizer runs")
    })
    .await
    .expect("the optimizer finishes");
    assert!(
        optimized.status.success(),
        "optimize_rag.py failed: {}",
        String::from_utf8_lossy(&optimized.stderr)
    );
    // Its last line is the JSON (DSPy may print progress before it).
    let stdout = String::from_utf8_lossy(&optimized.stdout);
    let line = stdout.lines().rev().find(|line| line.starts_with('{'));
    let optimized: Value = serde_json::from_str(line.unwrap_or_default())
        .unwrap_or_else(|error| panic!("the optimizer prints JSON ({error}): {stdout}"));
    let questions = optimized["questions"].as_array().expect("questions");
    let expected = optimized["expected"].as_array().expect("outputs");
    assert_eq!(questions.len(), 50);
    assert_eq!(expected[0]["demos"], json!(2), "the optimizer kept 2 demos");
    assert_ne!(
        optimized["unoptimized_first"], expected[0],
        "the optimized state changes the outputs, or this test proves nothing"
    );

    let worker = worker(1).await;
    let definition = &optimized["definition"];
    for (n, (question, expected)) in questions.iter().zip(expected).enumerate() {
        let id = u64::try_from(n).expect("small") + 1;
        let sent = run_program(
            id,
            "optimized-1",
            json!({ "question": question }),
            (n == 0).then_some(definition),
        );
        let replied = call(&worker, sent).await;
        assert_eq!(
            replied.outcome,
            Outcome::Ok {
                result: expected.clone()
            },
            "input {n}"
        );
        let usage = replied.usage.expect("a dspy run reports its usage");
        assert_eq!(usage["calls"], json!(1), "input {n}: {usage}");
        assert!(
            usage["prompt_tokens"]
                .as_u64()
                .is_some_and(|tokens| tokens > 0)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_that_do_not_fit_forward_never_reach_the_lm() {
    let lm = FakeLm::start();
    let worker = worker(2).await;
    let definition = json!({
        "kind": "dspy",
        "spec": {
            "module": "dspy_modules:Rag",
            "args": { "corpus": ["one passage"] },
            "lm": { "model": "openai/fake-model", "api_base": lm.api_base(), "api_key_env": KEY_ENV },
        },
    });
    let warm = call(
        &worker,
        run_program(1, "v", json!({ "question": "warm up" }), Some(&definition)),
    )
    .await;
    assert!(matches!(warm.outcome, Outcome::Ok { .. }), "{warm:?}");
    let before = lm.requests();
    for (id, inputs, expected) in [
        (2, json!({}), "missing input 'question'"),
        (
            3,
            json!({ "question": "q", "colour": 1 }),
            "unexpected input 'colour'",
        ),
        (4, json!({ "question": "" }), "input 'question' is empty"),
    ] {
        let replied = call(&worker, run_program(id, "v", inputs, None)).await;
        match replied.outcome {
            Outcome::Error { error } => {
                assert_eq!(error.kind, RemoteErrorKind::InvalidInput);
                assert!(error.message.contains(expected), "{}", error.message);
            }
            other => panic!("expected invalid_input, got {other:?}"),
        }
        assert_eq!(replied.usage, None, "nothing ran, nothing to report");
    }
    assert_eq!(lm.requests(), before, "no invalid input reached the LM");
}

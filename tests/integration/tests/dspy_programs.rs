//! DSPy programs through a pool of real workers, against a fake
//! OpenAI-compatible server on 127.0.0.1 (the real client path, no network
//! beyond loopback): Predict and ChainOfThought on every worker, inputs
//! checked before anything reaches the LM, an LM error is a typed error and
//! the worker survives.
#![cfg(feature = "real-python")]

use std::time::Duration;

use pypool::{Pool, PoolError, ProgramKind, ProgramSpec};
use pypool_integration::{FakeLm, program_pool_builder};
use serde_json::{Map, Value, json};

const WORKERS: usize = 2;

async fn pool_with_lm(lm: &FakeLm) -> Pool {
    let pool = program_pool_builder()
        .size(WORKERS)
        .env("PYPOOL_FAKE_LM_KEY", "sk-test-not-a-real-key")
        .build()
        .expect("pool builds");
    pool.ready().await.expect("workers start");
    let mut settings = Map::new();
    settings.insert(
        "lm".into(),
        json!({
            "model": "openai/fake-model",
            "api_base": lm.api_base(),
            "api_key_env": "PYPOOL_FAKE_LM_KEY",
            "cache": false,
        }),
    );
    pool.configure(settings).expect("valid settings");
    pool
}

fn dspy(module: &str, signature: &str) -> ProgramSpec {
    ProgramSpec::new(
        ProgramKind::Dspy,
        json!({ "module": module, "signature": signature, "instructions": "Answer briefly." }),
    )
}

/// Runs `id` concurrently, more times than there are workers, so that every
/// worker takes at least one (each concurrent caller takes an idle worker).
async fn run_everywhere(pool: &Pool, id: &str) -> Vec<Value> {
    let before: Vec<u64> = pool
        .status()
        .worker_details
        .iter()
        .map(|w| w.requests_served)
        .collect();
    let calls = (0..WORKERS * 3).map(|n| {
        let pool = pool.clone();
        let id = id.to_owned();
        async move {
            pool.execute_program(&id, json!({ "question": format!("q{n}") }))
                .await
        }
    });
    let results: Vec<Value> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|result| result.expect("the program runs"))
        .collect();
    let after: Vec<u64> = pool
        .status()
        .worker_details
        .iter()
        .map(|w| w.requests_served)
        .collect();
    assert!(
        before.iter().zip(&after).all(|(b, a)| a > b),
        "every worker ran {id}: {before:?} -> {after:?}"
    );
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_and_chain_of_thought_run_on_every_worker() {
    let lm = FakeLm::start();
    let pool = pool_with_lm(&lm).await;
    pool.create_program("qa", dspy("Predict", "question: str -> answer: str"))
        .await
        .expect("stored");
    pool.create_program(
        "cot",
        dspy("ChainOfThought", "question: str -> answer: str"),
    )
    .await
    .expect("stored");
    for result in run_everywhere(&pool, "qa").await {
        assert!(
            result["answer"]
                .as_str()
                .is_some_and(|a| a.starts_with("echo: q")),
            "{result}"
        );
    }
    for result in run_everywhere(&pool, "cot").await {
        assert!(
            result["answer"]
                .as_str()
                .is_some_and(|a| a.starts_with("echo: q")),
            "{result}"
        );
        assert!(result["reasoning"].is_string(), "{result}");
    }
    assert!(lm.requests() >= (WORKERS * 6) as u64);
    pool.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_input_never_reaches_the_lm() {
    let lm = FakeLm::start();
    let pool = pool_with_lm(&lm).await;
    pool.create_program(
        "qa",
        dspy("Predict", "question: str, context: str -> answer: str"),
    )
    .await
    .expect("stored");
    let before = lm.requests();
    for inputs in [
        json!({ "question": "q" }),
        json!({ "question": "q", "context": "  " }),
    ] {
        let error = pool
            .execute_program("qa", inputs)
            .await
            .expect_err("context is required");
        let PoolError::Remote { error: remote, .. } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(remote.kind, pypool::RemoteErrorKind::InvalidInput);
        assert!(remote.message.contains("context"), "{}", remote.message);
    }
    assert_eq!(lm.requests(), before, "nothing reached the LM");
    pool.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lm_error_is_typed_and_the_worker_survives() {
    let lm = FakeLm::start();
    let pool = pool_with_lm(&lm).await;
    let failing = ProgramSpec::new(
        ProgramKind::Dspy,
        json!({
            "module": "Predict",
            "signature": "question: str -> answer: str",
            "lm": { "model": "openai/fake-model", "api_base": lm.failing_api_base(),
                    "api_key_env": "PYPOOL_FAKE_LM_KEY", "num_retries": 0, "cache": false },
        }),
    );
    pool.create_program("broken", failing)
        .await
        .expect("stored");
    pool.create_program("qa", dspy("Predict", "question: str -> answer: str"))
        .await
        .expect("stored");
    let error = pool
        .execute_program("broken", json!({ "question": "q" }))
        .await
        .expect_err("LM 500");
    let PoolError::Remote { error: remote, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(remote.kind, pypool::RemoteErrorKind::PythonException);
    let answer = pool
        .execute_program("qa", json!({ "question": "again" }))
        .await
        .expect("still serving");
    assert_eq!(answer["answer"], json!("echo: again"));
    assert_eq!(
        pool.status().counters.replaced,
        0,
        "no worker died of the LM error"
    );
    pool.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dspy_is_imported_only_when_used_or_preloaded() {
    let lazy = program_pool_builder().size(1).build().expect("pool builds");
    lazy.ready().await.expect("worker starts");
    let info = lazy.execute("info", json!({})).await.expect("info");
    assert_eq!(
        info["dspy_loaded"],
        json!(false),
        "a worker that ran no DSPy program has not imported it"
    );
    lazy.shutdown(Duration::from_secs(5)).await;

    let eager = program_pool_builder()
        .size(1)
        .preload("dspy")
        .build()
        .expect("pool builds");
    eager.ready().await.expect("worker starts");
    let info = eager.execute("info", json!({})).await.expect("info");
    assert_eq!(info["dspy_loaded"], json!(true), "preloaded at start");
    eager.shutdown(Duration::from_secs(5)).await;
}

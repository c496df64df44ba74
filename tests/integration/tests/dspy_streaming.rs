//! A `dspy` program streaming its output field token by token through a real
//! worker (`dspy.streamify` with a stream listener) from the fake LM's
//! server-sent events: the chunks join into the final answer, which arrives
//! with the run's LM usage.
#![cfg(feature = "real-python")]
#![allow(clippy::panic, reason = "a test fails by panicking")]

use std::num::NonZeroU32;

use futures::StreamExt;
use pypool_integration::{FakeLm, bounded, config, request, spawn};
use pypool_seam::{Outcome, StreamItem};
use serde_json::{Value, json};

const KEY_ENV: &str = "PYPOOL_FAKE_LM_KEY";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dspy_answer_streams_token_by_token_then_ends_with_the_prediction_and_its_usage() {
    let lm = FakeLm::start_sse(50);
    let worker = spawn(config(&[]).with_env(KEY_ENV, "sk-test-not-a-real-key"), 1)
        .await
        .expect("the worker starts");
    let definition = json!({
        "kind": "dspy",
        "spec": {
            "module": "Predict",
            "signature": "question: str -> answer: str",
            "lm": { "model": "openai/fake-model", "api_base": lm.api_base(), "api_key_env": KEY_ENV },
        },
    });
    let args = json!({
        "program_id": "streamed", "version": "1",
        "inputs": { "question": "stream me" }, "definition": definition,
    });
    let mut stream = worker
        .call_stream(
            request(1, "pypool.run_program", args),
            NonZeroU32::new(4).expect("non-zero"),
        )
        .await
        .expect("the stream starts");
    let mut chunks: Vec<Value> = Vec::new();
    let result = loop {
        match bounded("the next stream item", stream.next()).await {
            Some(Ok(StreamItem::Chunk(chunk))) => chunks.push(chunk),
            Some(Ok(StreamItem::End(Outcome::Ok { result }))) => break result,
            other => panic!("expected a chunk or the prediction, got {other:?}"),
        }
    };
    let answer = result["answer"].as_str().expect("an answer");
    assert!(answer.starts_with("fake answer"), "{answer}");
    assert!(chunks.len() >= 2, "several tokens: {chunks:?}");
    assert!(chunks.iter().all(|chunk| chunk["field"] == "answer"));
    let joined: String = chunks
        .iter()
        .map(|chunk| chunk["chunk"].as_str().expect("text"))
        .collect();
    assert_eq!(joined.trim(), answer);
    let usage = stream.usage().expect("the final reply reports usage");
    assert_eq!(usage["calls"], json!(1), "{usage}");
}

//! Streams through the `Pool` with real workers: a generator handler's
//! chunks then its result; dropping a stream of an endless generator closes
//! it on the worker and frees the worker for the next call; a worker dying
//! mid-stream ends it with `worker_exited` after the delivered chunks; and a
//! `dspy` program's answer streamed token by token from the fake LM's
//! server-sent events, ending with the prediction and its usage.
#![cfg(feature = "real-python")]
#![allow(clippy::panic, reason = "a test fails by panicking")]

use std::time::Duration;

use futures::StreamExt;
use pypool::{Pool, PoolError, ProgramKind, ProgramSpec, StreamItem};
use pypool_integration::{FakeLm, bounded, poll_until, pool_builder};
use serde_json::{Value, json};

const KEY_ENV: &str = "PYPOOL_FAKE_LM_KEY";

async fn stream_pool() -> Pool {
    let pool = pool_builder(&["handlers_stream.py"])
        .size(1)
        .health_check_interval(None)
        .build()
        .expect("the pool builds");
    bounded("the pool to be ready", pool.ready())
        .await
        .expect("the pool starts");
    pool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_streams_through_the_pool() {
    let pool = stream_pool().await;
    let mut stream = pool.execute_stream("count", json!({ "n": 50 }));
    for i in 0..50 {
        match bounded("a chunk", stream.next()).await {
            Some(Ok(StreamItem::Chunk(chunk))) => assert_eq!(chunk, json!({ "i": i })),
            other => panic!("expected chunk {i}, got {other:?}"),
        }
    }
    match bounded("the end", stream.next()).await {
        Some(Ok(StreamItem::Done(result))) => assert_eq!(result, json!({ "total": 50 })),
        other => panic!("expected the result, got {other:?}"),
    }
    assert!(stream.next().await.is_none());
    assert_eq!(pool.status().in_flight, 0);
    pool.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_closes_the_generator_and_frees_the_worker() {
    let pool = stream_pool().await;
    let marker = "pool-drop";
    let mut stream = pool.execute_stream("endless", json!({ "marker": marker }));
    for _ in 0..5 {
        match bounded("a chunk", stream.next()).await {
            Some(Ok(StreamItem::Chunk(_))) => {}
            other => panic!("expected a chunk, got {other:?}"),
        }
    }
    drop(stream);
    // The generator is closed on the worker (asked through another command,
    // which runs beside it on the worker's thread pool).
    bounded("the generator to be closed", async {
        loop {
            let produced = pool
                .execute("produced", json!({ "marker": marker }))
                .await
                .expect("the worker serves");
            if produced["closed"] == json!("GeneratorExit") {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    poll_until("the slot to be free", || pool.status().in_flight == 0).await;
    assert_eq!(pool.status().counters.replaced, 0, "the worker was kept");
    // And the next stream gets the worker.
    let items: Vec<_> = bounded(
        "the next stream",
        pool.execute_stream("count", json!({ "n": 2 }))
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(items.len(), 3, "{items:?}");
    pool.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_stream_ends_it_with_worker_exited_after_the_chunks() {
    let pool = stream_pool().await;
    let items: Vec<_> = bounded(
        "the stream",
        pool.execute_stream("crash_after", json!({ "n": 3 }))
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(items.len(), 4, "{items:?}");
    for (i, item) in items.iter().take(3).enumerate() {
        assert_eq!(
            item.as_ref().ok(),
            Some(&StreamItem::Chunk(json!({ "i": i })))
        );
    }
    assert!(
        matches!(items[3], Err(PoolError::WorkerExited { .. })),
        "{:?}",
        items[3]
    );
    pool.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dspy_answer_streams_through_the_pool() {
    let lm = FakeLm::start_sse(50);
    let pool = pool_builder(&[])
        .size(1)
        .health_check_interval(None)
        .env(KEY_ENV, "sk-test-not-a-real-key")
        .build()
        .expect("the pool builds");
    bounded("the pool to be ready", pool.ready())
        .await
        .expect("the pool starts");
    pool.create_program(
        "streamed",
        ProgramSpec::new(
            ProgramKind::Dspy,
            json!({
                "module": "Predict",
                "signature": "question: str -> answer: str",
                "lm": { "model": "openai/fake-model", "api_base": lm.api_base(), "api_key_env": KEY_ENV },
                "stream": ["answer"],
            }),
        ),
    )
    .await
    .expect("the program is stored");
    let mut stream = pool.execute_program_stream("streamed", json!({ "question": "stream me" }));
    let mut chunks: Vec<Value> = Vec::new();
    let prediction = loop {
        match bounded("the next item", stream.next()).await {
            Some(Ok(StreamItem::Chunk(chunk))) => chunks.push(chunk),
            Some(Ok(StreamItem::Done(prediction))) => break prediction,
            other => panic!("expected a token or the prediction, got {other:?}"),
        }
    };
    let answer = prediction["answer"].as_str().expect("an answer");
    assert!(answer.starts_with("fake answer"), "{answer}");
    assert!(chunks.len() >= 2, "several tokens: {chunks:?}");
    let joined: String = chunks
        .iter()
        .map(|chunk| chunk["chunk"].as_str().expect("text"))
        .collect();
    assert_eq!(joined.trim(), answer);
    let usage = stream.usage().expect("the run reports its usage");
    assert_eq!(usage["calls"], json!(1), "{usage}");
    pool.shutdown(Duration::from_secs(10)).await;
}

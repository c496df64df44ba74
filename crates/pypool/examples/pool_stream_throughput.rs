//! Streaming through the pool, measured against the pool's own ping round
//! trip in the same run: the per-chunk cost of a plain generator (`tick`,
//! yielding small integers) read through `Pool::execute_stream`, and chunks
//! per second from one worker to one consumer.
//!
//! ```text
//! cargo run --release -p pypool --example pool_stream_throughput -- [CHUNKS] [PINGS] [WINDOW]
//! ```
//! `PYPOOL_PYTHON` chooses the interpreter (default `python3`). The handler
//! module is `tests/fixtures/handlers_stream.py` of this repository.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use futures::StreamExt;
use pypool::{Pool, PythonSpawnerConfig, StreamItem};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let chunks: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let pings: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(5_000);
    let window: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(32);
    let window = NonZeroU32::new(window).ok_or("the window must be at least 1")?;
    let python = std::env::var("PYPOOL_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let handlers = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/handlers_stream.py"
    );
    let pool = Pool::builder()
        .size(1)
        .health_check_interval(None)
        .stream_window(window)
        .python(
            PythonSpawnerConfig::new()
                .with_interpreter(&python)
                .with_handler(handlers)
                .with_log_level("warning"),
        )
        .build()?;
    pool.ready().await?;

    // Warm-up: both paths once.
    ping_round_trips(&pool, 200).await?;
    stream_chunks(&pool, 2_000).await?;

    let ping = ping_round_trips(&pool, pings).await?;
    let streamed = stream_chunks(&pool, chunks).await?;

    let per_chunk = streamed / u32::try_from(chunks)?;
    let ping_mean = ping / u32::try_from(pings)?;
    println!("{pings} pings through the pool: mean round trip {ping_mean:.1?}");
    println!(
        "{chunks} chunks through the pool, window {window}: {streamed:.2?}, {per_chunk:.2?} per chunk, {:.0} chunks/s",
        chunks as f64 / streamed.as_secs_f64()
    );
    println!(
        "per chunk / ping round trip: {:.3}",
        per_chunk.as_secs_f64() / ping_mean.as_secs_f64()
    );
    pool.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

/// Sequential pings through the pool; the total time.
async fn ping_round_trips(pool: &Pool, count: u64) -> Result<Duration, Box<dyn std::error::Error>> {
    let started = Instant::now();
    for _ in 0..count {
        pool.execute("ping", json!({})).await?;
    }
    Ok(started.elapsed())
}

/// One stream of `count` chunks read as fast as they come; the time from
/// asking the pool to the final result.
async fn stream_chunks(pool: &Pool, count: u64) -> Result<Duration, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut stream = pool.execute_stream("tick", json!({ "n": count }));
    let mut seen = 0_u64;
    while let Some(item) = stream.next().await {
        match item? {
            StreamItem::Chunk(value) if value == seen => seen += 1,
            StreamItem::Chunk(value) => return Err(format!("chunk {value} out of order").into()),
            StreamItem::Done(_) => break,
        }
    }
    if seen != count {
        return Err(format!("{seen} chunks of {count}").into());
    }
    Ok(started.elapsed())
}

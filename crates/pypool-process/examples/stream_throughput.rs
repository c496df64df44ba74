//! Streaming replies through `ProcessConnection`, measured against the ping
//! round trip of the same worker in the same run: the per-chunk cost of a
//! plain generator (`tick`, yielding small integers), chunks per second from
//! one worker to one consumer, and the same stream with a window of 1 (a
//! credit round trip per chunk: the worst case).
//!
//! ```text
//! cargo run --release -p pypool-process --example stream_throughput -- [CHUNKS] [PINGS] [WINDOW]
//! ```
//! `PYPOOL_PYTHON` chooses the interpreter (default `python3`). The handler
//! module is `tests/fixtures/handlers_stream.py` of this repository.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use futures::StreamExt;
use pypool_process::{PythonSpawner, PythonSpawnerConfig};
use pypool_seam::{Outcome, SpawnRequest, StreamItem, WorkerConnection, WorkerSpawner};
use pypool_wire::Request;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let chunks: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let pings: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(5_000);
    let window: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(64);
    let window = NonZeroU32::new(window).ok_or("the window must be at least 1")?;
    let python = std::env::var("PYPOOL_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let handlers = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/handlers_stream.py"
    );
    let spawner = PythonSpawner::new(
        PythonSpawnerConfig::new()
            .with_interpreter(&python)
            .with_handler(handlers)
            .with_log_level("warning"),
    );
    let worker = spawner
        .spawn(SpawnRequest {
            worker_id: 1,
            handshake_timeout: Duration::from_secs(30),
        })
        .await?;
    let mut next_id = 0_u64;
    let mut id = || {
        next_id += 1;
        next_id
    };

    // Warm-up: both paths once.
    ping_round_trips(worker.as_ref(), 200, &mut id).await?;
    stream_chunks(worker.as_ref(), 2_000, window, id()).await?;

    let ping = ping_round_trips(worker.as_ref(), pings, &mut id).await?;
    let streamed = stream_chunks(worker.as_ref(), chunks, window, id()).await?;
    let lockstep_chunks = (chunks / 10).max(1);
    let lockstep = stream_chunks(worker.as_ref(), lockstep_chunks, NonZeroU32::MIN, id()).await?;

    let per_chunk = streamed / u32::try_from(chunks)?;
    let per_lockstep_chunk = lockstep / u32::try_from(lockstep_chunks)?;
    let ping_mean = ping / u32::try_from(pings)?;
    println!("{pings} pings: mean round trip {ping_mean:.1?}");
    println!(
        "{chunks} chunks, window {window}: {streamed:.2?}, {per_chunk:.2?} per chunk, {:.0} chunks/s",
        chunks as f64 / streamed.as_secs_f64()
    );
    println!(
        "{lockstep_chunks} chunks, window 1: {lockstep:.2?}, {per_lockstep_chunk:.2?} per chunk, {:.0} chunks/s",
        lockstep_chunks as f64 / lockstep.as_secs_f64()
    );
    println!(
        "per chunk / ping round trip: window {window} {:.3}, window 1 {:.3}",
        per_chunk.as_secs_f64() / ping_mean.as_secs_f64(),
        per_lockstep_chunk.as_secs_f64() / ping_mean.as_secs_f64()
    );
    Ok(())
}

/// Sequential pings; the total time.
async fn ping_round_trips(
    worker: &dyn WorkerConnection,
    count: u64,
    id: &mut impl FnMut() -> u64,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let started = Instant::now();
    for _ in 0..count {
        let outcome = worker
            .call(Request {
                id: id(),
                command: "ping".into(),
                args: serde_json::Map::new(),
            })
            .await?;
        if !matches!(outcome, Outcome::Ok { .. }) {
            return Err(format!("ping failed: {outcome:?}").into());
        }
    }
    Ok(started.elapsed())
}

/// One stream of `count` chunks read as fast as they come; the time from
/// sending the request to its final reply.
async fn stream_chunks(
    worker: &dyn WorkerConnection,
    count: u64,
    window: NonZeroU32,
    request_id: u64,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let mut args = serde_json::Map::new();
    args.insert("n".into(), count.into());
    let started = Instant::now();
    let mut stream = worker
        .call_stream(
            Request {
                id: request_id,
                command: "tick".into(),
                args,
            },
            window,
        )
        .await?;
    let mut seen = 0_u64;
    while let Some(item) = stream.next().await {
        match item? {
            StreamItem::Chunk(value) if value == seen => seen += 1,
            StreamItem::Chunk(value) => return Err(format!("chunk {value} out of order").into()),
            StreamItem::End(Outcome::Ok { .. }) => break,
            StreamItem::End(other) => return Err(format!("the stream failed: {other:?}").into()),
        }
    }
    if seen != count {
        return Err(format!("{seen} chunks of {count}").into());
    }
    Ok(started.elapsed())
}

//! One worker, requests that each wait 100 ms (an `async` handler awaiting
//! `asyncio.sleep`, and a `threads` one waiting on an event), sent through
//! `ProcessConnection` directly with as many in flight as the worker's
//! capacity allows: capacity 1 (protocol v1's one request at a time) against
//! capacity 64, in the same run. Then a trivial command declared `serial`,
//! `threads` and `async`, and the built-in `ping`, 64 in flight.
//!
//! ```text
//! PYPOOL_TEST_PYTHON=.venv/bin/python cargo run --release -p pypool-integration --example worker_capacity
//! ```

use std::sync::Arc;
use std::time::Instant;

use pypool_integration::{config, request, spawn};
use pypool_seam::{Outcome, WorkerConnection};
use serde_json::json;
use tokio::sync::Semaphore;

const WAIT_MS: u64 = 100;

/// Sends `calls` requests of `command`, at most `capacity` unanswered at once; returns requests/s.
async fn run(
    worker: &Arc<dyn WorkerConnection>,
    command: &str,
    calls: u64,
    first_id: u64,
) -> Result<f64, Box<dyn std::error::Error>> {
    run_with(worker, command, calls, first_id, json!({ "ms": WAIT_MS })).await
}

async fn run_with(
    worker: &Arc<dyn WorkerConnection>,
    command: &str,
    calls: u64,
    first_id: u64,
    args: serde_json::Value,
) -> Result<f64, Box<dyn std::error::Error>> {
    let window = Arc::new(Semaphore::new(worker.capacity()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..calls {
        let permit = Arc::clone(&window).acquire_owned().await?;
        let worker = Arc::clone(worker);
        let command = command.to_owned();
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            let outcome = worker.call(request(first_id + n, &command, args)).await;
            drop(permit);
            outcome
        }));
    }
    for task in tasks {
        match task.await?? {
            Outcome::Ok { .. } => {}
            Outcome::Error { error } => return Err(error.to_string().into()),
        }
    }
    #[allow(clippy::cast_precision_loss, reason = "a rate for a report")]
    Ok(calls as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let one = spawn(config(&["handlers_concurrent.py"]).with_capacity(1), 1).await?;
    let many = spawn(config(&["handlers_concurrent.py"]).with_capacity(64), 2).await?;
    println!(
        "one worker, handler waits {WAIT_MS} ms; capacities {} and {}",
        one.capacity(),
        many.capacity()
    );
    for command in ["wait_ms", "wait_ms_in_thread"] {
        let slow = run(&one, command, 20, 0).await?;
        let fast = run(&many, command, 640, 0).await?;
        println!(
            "{command:18} capacity 1: {slow:7.1} req/s   capacity 64: {fast:7.1} req/s   ratio {:.1}x",
            fast / slow
        );
    }
    let trivial = spawn(config(&["handlers_bench.py"]).with_capacity(64), 3).await?;
    let mut next_id = 0;
    let mut serial = 0.0;
    for command in ["echo_serial", "echo_threads", "echo_async", "ping"] {
        run_with(&trivial, command, 2_000, next_id, json!({})).await?; // warm-up
        let rate = run_with(&trivial, command, 20_000, next_id + 2_000, json!({})).await?;
        next_id += 22_000;
        if command == "echo_serial" {
            serial = rate;
        }
        println!(
            "{command:18} 64 in flight: {rate:8.0} req/s   {:.2}x echo_serial",
            rate / serial
        );
    }
    Ok(())
}

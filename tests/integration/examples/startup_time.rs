//! Measures how long real pools of 1 and of 8 workers take to become ready,
//! in the same run, several rounds each (workers start concurrently, so the
//! ratio should stay far below 8).
//!
//! ```text
//! cargo run --release -p pypool-integration --example startup_time
//! ```
//! `PYPOOL_TEST_PYTHON` chooses the interpreter (default `python3`).

use std::time::{Duration, Instant};

use pypool_integration::pool_builder;

async fn time_to_ready(size: usize) -> Result<Duration, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let pool = pool_builder(&[]).size(size).build()?;
    pool.ready().await?;
    let took = started.elapsed();
    pool.shutdown(Duration::from_secs(5)).await;
    Ok(took)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds = 5;
    let mut one = Vec::new();
    let mut eight = Vec::new();
    for _ in 0..rounds {
        one.push(time_to_ready(1).await?);
        eight.push(time_to_ready(8).await?);
    }
    let (one, eight) = (median(one), median(eight));
    println!(
        "median time to ready over {rounds} rounds: 1 worker {one:.1?}, 8 workers {eight:.1?}"
    );
    println!(
        "ratio 8 workers / 1 worker: {:.2} (sequential start would be 8.00)",
        eight.as_secs_f64() / one.as_secs_f64()
    );
    Ok(())
}

//! The smallest useful pool: four workers running the bundled demo handlers
//! (`pypool_worker.demo`), a few requests, the status snapshot, a clean
//! shutdown. Needs only `python3` (3.9+) on `PATH`.
//!
//! ```text
//! cargo run -p pypool --example basic
//! ```

use std::time::Duration;

use pypool::Pool;
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::builder()
        .size(4) // started concurrently
        .handler("pypool_worker.demo") // a module name or a .py path
        .build()?;
    pool.ready().await?; // an interpreter or import problem surfaces here, as itself

    let primes = pool
        .execute("demo.primes", json!({ "limit": 1000 }))
        .await?;
    println!("primes below 1000: {}", primes["count"]);

    let stats = pool
        .execute(
            "demo.word_stats",
            json!({ "text": "the quick brown fox jumps over the lazy dog the end", "top": 2 }),
        )
        .await?;
    println!("word stats: {stats}");

    // Typed errors: a bad argument is the handler's error, the worker keeps serving.
    let error = pool
        .execute("demo.primes", json!({ "limit": -1 }))
        .await
        .err()
        .ok_or("a negative limit should fail")?;
    println!("as expected, {} error: {error}", error.kind());

    println!("{}", serde_json::to_string_pretty(&pool.status())?);
    let report = pool.shutdown(Duration::from_secs(5)).await;
    println!("shut down: {report:?}");
    Ok(())
}

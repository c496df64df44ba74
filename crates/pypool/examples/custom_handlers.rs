//! Your own handlers: a plain Python file (standard library only) next to
//! this example, loaded by every worker; its prints go to stderr, never into
//! the frame stream; its exceptions come back as typed errors.
//!
//! ```text
//! cargo run -p pypool --example custom_handlers
//! ```

use std::path::Path;
use std::time::Duration;

use pypool::{Pool, PoolError};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let handlers = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/handlers/text_tools.py");
    let pool = Pool::builder()
        .size(2)
        .handler(handlers.display().to_string())
        .build()?;
    pool.ready().await?;

    let slug = pool
        .execute("slugify", json!({ "title": "Hello, Python Pool!" }))
        .await?;
    println!("slugify: {slug}");
    let counted = pool
        .execute("count_vowels", json!({ "text": "supervised workers" }))
        .await?;
    println!("count_vowels: {counted}");

    match pool.execute("divide", json!({ "a": 1, "b": 0 })).await {
        Err(PoolError::Remote {
            error, worker_id, ..
        }) => println!(
            "divide raised on worker {worker_id}: {} ({:?}: {})",
            error.kind, error.exception_type, error.message
        ),
        other => println!("unexpected: {other:?}"),
    }
    // The worker that raised keeps serving.
    let quotient = pool.execute("divide", json!({ "a": 9, "b": 3 })).await?;
    println!("divide: {quotient}");

    // A missing argument names the parameter.
    let error = pool
        .execute("slugify", json!({}))
        .await
        .err()
        .ok_or("a missing argument should fail")?;
    println!("missing argument: {error}");

    pool.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

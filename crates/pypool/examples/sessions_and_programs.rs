//! Sessions and central programs: a program created by one session runs on
//! whichever worker is free, another session cannot see it, a global program
//! is visible to all, and session data lives in the host.
//!
//! ```text
//! cargo run -p pypool --example sessions_and_programs
//! ```

use std::time::Duration;

use pypool::{AffinityMode, Pool, ProgramSpec};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::builder().size(3).build()?;
    pool.ready().await?;

    // A global program: any session, and anonymous calls, can run it.
    pool.create_program(
        "summarize",
        ProgramSpec::python("pypool_worker.demo:summarize"),
    )
    .await?;
    let anonymous = pool
        .execute_program(
            "summarize",
            json!({ "text": "one two three four five", "max_words": 2 }),
        )
        .await?;
    println!("anonymous call: {anonymous}");

    // A session's own program, run with affinity to the worker it last used.
    let alice = pool
        .session("alice")?
        .with_affinity(AffinityMode::default());
    alice
        .create_program("short", ProgramSpec::python("pypool_worker.demo:summarize"))
        .await?;
    for text in [
        "pypool keeps programs in the host",
        "so any worker can run them",
    ] {
        let result = alice
            .execute_program("short", json!({ "text": text, "max_words": 3 }))
            .await?;
        println!("alice: {}", result["summary"]);
    }
    alice.set("turns", json!(2)).await?;
    println!("alice's data: {:?}", alice.data().await?);

    // Isolation: bob cannot run alice's program.
    let bob = pool.session("bob")?;
    let error = bob
        .execute_program("short", json!({ "text": "x" }))
        .await
        .err()
        .ok_or("bob should not see alice's program")?;
    println!("bob: {} error: {error}", error.kind());

    // A missing input is refused before the call, naming the input.
    let error = alice
        .execute_program("short", json!({ "max_words": 3 }))
        .await
        .err()
        .ok_or("a missing input should be refused")?;
    println!("missing input: {} error: {error}", error.kind());

    println!("deleted: {:?}", alice.delete().await?);
    pool.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

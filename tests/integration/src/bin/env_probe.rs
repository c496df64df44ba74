//! Starts a one-worker pool with the environment policy named on the command
//! line and prints, as JSON, what a handler reads for each named variable.
//!
//! `env_probe inherit|clear [--extra NAME]... -- NAME...` (used by
//! `tests/env_policy.rs`, which runs it with variables set in its
//! environment: a test cannot set its own process's environment safely).

use std::time::Duration;

use pypool::EnvPolicy;
use serde_json::{Map, Value, json};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let policy = args.next().unwrap_or_default();
    let mut extra = Vec::new();
    let mut names = Vec::new();
    let mut after_dashes = false;
    while let Some(arg) = args.next() {
        if after_dashes {
            names.push(arg);
        } else if arg == "--" {
            after_dashes = true;
        } else if arg == "--extra" {
            extra.extend(args.next());
        } else {
            return Err(format!("unexpected argument {arg:?}").into());
        }
    }
    let policy = match policy.as_str() {
        "inherit" => EnvPolicy::Inherit,
        "clear" => EnvPolicy::clear(extra),
        other => return Err(format!("policy must be inherit or clear, got {other:?}").into()),
    };
    let pool = pypool_integration::pool_builder(&["handlers_hostile.py"])
        .size(1)
        .env_policy(policy)
        .build()?;
    pool.ready().await?;
    let mut seen = Map::new();
    for name in names {
        let value = pool.execute("getenv", json!({ "name": name })).await?;
        seen.insert(name, value);
    }
    println!("{}", Value::Object(seen));
    pool.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

//! A DSPy answer streamed token by token through the pool
//! (`Pool::execute_program_stream`): a `dspy` program whose spec names the
//! output fields to stream (`"stream": ["answer"]`), each chunk printed as it
//! arrives, then the prediction and the run's LM usage.
//!
//! ```text
//! PYPOOL_PYTHON=.venv/bin/python cargo run -p pypool --example stream_dspy
//! # against a real LM (the key stays in the environment):
//! PYPOOL_PYTHON=.venv/bin/python PYPOOL_LM_API_BASE=https://... PYPOOL_LM_MODEL=openai/gpt-4o-mini \
//!   OPENAI_API_KEY=sk-... cargo run -p pypool --example stream_dspy
//! ```
//! Without `PYPOOL_LM_API_BASE` it starts this repository's loopback fake LM
//! (`python/bench/fake_lm.py`, server-sent events, first token after 50 ms),
//! so it needs no key and no network. Skips with a message when DSPy is not
//! installed for the interpreter.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use futures::StreamExt;
use pypool::{Pool, ProgramKind, ProgramSpec, PythonSpawnerConfig, StreamItem, check_environment};
use serde_json::json;

/// The key variable of the fake LM (any value: it checks nothing).
const FAKE_KEY_ENV: &str = "PYPOOL_FAKE_LM_KEY";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let python = std::env::var("PYPOOL_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let environment =
        check_environment(&PythonSpawnerConfig::new().with_interpreter(&python)).await;
    if environment.dspy_version.is_none() {
        println!(
            "skipping: DSPy is not installed for `{python}`. Run `cargo xtask venv` and set \
             PYPOOL_PYTHON=.venv/bin/python, then run this example again."
        );
        return Ok(());
    }

    // The LM: a real one from the environment, else the loopback fake.
    let mut fake = None;
    let lm = match std::env::var("PYPOOL_LM_API_BASE") {
        Ok(api_base) => json!({
            "model": std::env::var("PYPOOL_LM_MODEL").unwrap_or_else(|_| "openai/gpt-4o-mini".to_owned()),
            "api_base": api_base,
            "api_key_env": "OPENAI_API_KEY",
        }),
        Err(_) => {
            let (child, port) = start_fake_lm(&python)?;
            fake = Some(FakeLm(child));
            json!({
                "model": "openai/fake-model",
                "api_base": format!("http://127.0.0.1:{port}/v1"),
                "api_key_env": FAKE_KEY_ENV,
            })
        }
    };

    let pool = Pool::builder()
        .size(1)
        .health_check_interval(None)
        .python(
            PythonSpawnerConfig::new()
                .with_interpreter(&python)
                .with_env(FAKE_KEY_ENV, "not-a-real-key"),
        )
        .build()?;
    pool.ready().await?;
    pool.create_program(
        "qa",
        ProgramSpec::new(
            ProgramKind::Dspy,
            json!({
                "module": "Predict",
                "signature": "question: str -> answer: str",
                "lm": lm,
                "stream": ["answer"],
            }),
        ),
    )
    .await?;

    let started = Instant::now();
    let mut first_token = None;
    let mut stream = pool.execute_program_stream("qa", json!({ "question": "What is 2 + 2?" }));
    while let Some(item) = stream.next().await {
        match item? {
            StreamItem::Chunk(chunk) => {
                first_token.get_or_insert_with(|| started.elapsed());
                println!("chunk  {chunk}");
            }
            StreamItem::Done(prediction) => println!("result {prediction}"),
        }
    }
    if let Some(first_token) = first_token {
        println!(
            "first token after {first_token:.1?}, whole answer after {:.1?}",
            started.elapsed()
        );
    }
    println!("usage  {}", stream.usage().cloned().unwrap_or_default());
    pool.shutdown(std::time::Duration::from_secs(5)).await;
    drop(fake);
    Ok(())
}

/// The fake LM server, killed on drop.
struct FakeLm(Child);

impl Drop for FakeLm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `python/bench/fake_lm.py` (server-sent events, first token after
/// 50 ms) and waits for its `READY <port>` line.
fn start_fake_lm(python: &str) -> Result<(Child, u16), Box<dyn std::error::Error>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../python/bench/fake_lm.py");
    let mut child = Command::new(python)
        .args([
            script,
            "--port",
            "0",
            "--latency-ms",
            "0",
            "--first-token-ms",
            "50",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or("the fake LM's stdout is not piped")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let port = line
        .trim()
        .strip_prefix("READY ")
        .and_then(|port| port.parse().ok())
        .ok_or_else(|| format!("the fake LM said {line:?}, not READY <port>"))?;
    Ok((child, port))
}

//! Time to first token of a streamed DSPy answer through `ProcessConnection`
//! (a real worker, `pypool.run_program` as a `stream_request`) against the
//! same `dspy.streamify` program run in-process
//! (`python/bench/streamify_ttft.py`), both against one loopback SSE server
//! (`python/bench/fake_lm.py`) sending its first token after 50 ms, in one run.
//!
//! ```text
//! PYPOOL_TEST_PYTHON=.venv/bin/python cargo run --release -p pypool-integration --example dspy_stream_ttft -- [RUNS]
//! ```

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use futures::StreamExt;
use pypool_integration::{FakeLm, config, python, repo_root, request, spawn};
use pypool_seam::{Outcome, StreamItem};
use serde_json::{Value, json};

const KEY_ENV: &str = "PYPOOL_FAKE_LM_KEY";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let lm = FakeLm::start_sse(50);
    let worker = spawn(config(&[]).with_env(KEY_ENV, "sk-not-a-real-key"), 1).await?;
    let definition = json!({
        "kind": "dspy",
        "spec": {
            "module": "Predict",
            "signature": "question: str -> answer: str",
            "stream": ["answer"],
            "lm": { "model": "openai/fake-model", "api_base": lm.api_base(), "api_key_env": KEY_ENV },
        },
    });
    let mut samples = Vec::new();
    for run in 0..runs + 2 {
        let mut args = json!({
            "program_id": "ttft", "version": "1",
            "inputs": { "question": format!("question {run}") },
        });
        if run == 0 {
            args["definition"] = definition.clone();
        }
        let id = u64::try_from(run)? + 1;
        let started = Instant::now();
        let mut stream = worker
            .call_stream(
                request(id, "pypool.run_program", args),
                NonZeroU32::new(16).ok_or("window")?,
            )
            .await?;
        let mut first = None;
        while let Some(item) = stream.next().await {
            match item? {
                StreamItem::Chunk(_) => {
                    first.get_or_insert_with(|| started.elapsed());
                }
                StreamItem::End(Outcome::Ok { .. }) => break,
                StreamItem::End(other) => return Err(format!("run {run}: {other:?}").into()),
            }
        }
        let first = first.ok_or("no chunk arrived")?;
        if run >= 2 {
            samples.push(first); // two warm-up runs
        }
    }
    samples.sort_unstable();
    let through_worker = samples[samples.len() / 2];

    let script = repo_root()
        .join("python")
        .join("bench")
        .join("streamify_ttft.py");
    let api_base = lm.api_base();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python())
            .arg(script)
            .args([api_base, runs.to_string()])
            .output()
    })
    .await??;
    if !output.status.success() {
        return Err(format!(
            "streamify_ttft.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .ok_or("no JSON line")?;
    let in_process: Value = serde_json::from_str(line)?;
    let in_process_ms = in_process["median_ms"].as_f64().ok_or("no median")?;
    let in_process = Duration::from_secs_f64(in_process_ms / 1000.0);
    println!("{runs} runs, first token after 50 ms at the server");
    println!("median time to first token through pypool-process: {through_worker:.1?}");
    println!("median time to first token in-process (streamify):  {in_process:.1?}");
    println!(
        "ratio through worker / in-process: {:.2}",
        through_worker.as_secs_f64() / in_process.as_secs_f64()
    );
    Ok(())
}

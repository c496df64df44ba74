//! DSPy execution throughput through the pool next to the same program
//! called in-process by one Python interpreter, in the same run, against the
//! same fake OpenAI-compatible server on 127.0.0.1.
//!
//! ```text
//! PYPOOL_TEST_PYTHON=.venv/bin/python cargo run --release -p pypool-integration --example dspy_throughput
//! ```

use std::time::{Duration, Instant};

use pypool::{ProgramKind, ProgramSpec};
use pypool_integration::{FakeLm, program_pool_builder, python};
use serde_json::{Map, json};

const CALLS: usize = 400;
const WORKERS: usize = 4;

const IN_PROCESS: &str = r#"
import os, sys, time
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import dspy
api_base, calls = sys.argv[1], int(sys.argv[2])
lm = dspy.LM("openai/fake-model", api_base=api_base, api_key="sk-test", cache=False, num_retries=0)
program = dspy.Predict(dspy.Signature("question: str -> answer: str", "Answer briefly."))
with dspy.context(lm=lm):
    program(question="warm-up")
    started = time.perf_counter()
    for n in range(calls):
        program(question="q%d" % n)
    print(time.perf_counter() - started)
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lm = FakeLm::start();

    let output = std::process::Command::new(python())
        .args(["-c", IN_PROCESS, &lm.api_base(), &CALLS.to_string()])
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "in-process run failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let in_process: f64 = String::from_utf8_lossy(&output.stdout).trim().parse()?;

    let pool = program_pool_builder()
        .size(WORKERS)
        .env("PYPOOL_FAKE_LM_KEY", "sk-test")
        .build()?;
    pool.ready().await?;
    let mut settings = Map::new();
    settings.insert(
        "lm".into(),
        json!({ "model": "openai/fake-model", "api_base": lm.api_base(), "api_key_env": "PYPOOL_FAKE_LM_KEY", "cache": false }),
    );
    pool.configure(settings).expect("valid settings");
    pool.create_program(
        "qa",
        ProgramSpec::new(
            ProgramKind::Dspy,
            json!({ "module": "Predict", "signature": "question: str -> answer: str", "instructions": "Answer briefly." }),
        ),
    )
    .await?;
    // Warm every worker (import DSPy, build the program) before timing.
    let warm =
        (0..WORKERS * 2).map(|_| pool.execute_program("qa", json!({ "question": "warm-up" })));
    for result in futures::future::join_all(warm).await {
        result?;
    }
    let started = Instant::now();
    let calls = (0..CALLS).map(|n| {
        let pool = pool.clone();
        async move {
            pool.execute_program("qa", json!({ "question": format!("q{n}") }))
                .await
        }
    });
    for result in futures::future::join_all(calls).await {
        result?;
    }
    let through_pool = started.elapsed().as_secs_f64();
    pool.shutdown(Duration::from_secs(5)).await;

    println!("{CALLS} DSPy Predict calls against a loopback fake LM:");
    println!(
        "  in-process (1 interpreter, sequential): {:.0} calls/s",
        CALLS as f64 / in_process
    );
    println!(
        "  through pypool ({WORKERS} workers, concurrent):  {:.0} calls/s",
        CALLS as f64 / through_pool
    );
    println!(
        "  ratio pool / in-process: {:.2}",
        in_process / through_pool
    );
    Ok(())
}

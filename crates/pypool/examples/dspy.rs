//! A DSPy program through the pool. Skips with a clear message when DSPy is
//! not installed for the interpreter; without an LM configured it still shows
//! the input check that stops DSPy from calling the LM with an empty prompt.
//!
//! ```text
//! cargo run -p pypool --example dspy
//! # with an LM (the key stays in the environment, never in a definition):
//! PYPOOL_PYTHON=.venv/bin/python OPENAI_API_KEY=sk-... cargo run -p pypool --example dspy
//! ```
//! `PYPOOL_PYTHON` selects the interpreter (default `python3`); `PYPOOL_LM_MODEL`
//! (default `openai/gpt-4o-mini`) and `PYPOOL_LM_API_BASE` select the LM.

use std::time::Duration;

use pypool::{Pool, ProgramKind, ProgramSpec, PythonSpawnerConfig, check_environment};
use serde_json::{Map, json};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let python = std::env::var("PYPOOL_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let environment =
        check_environment(&PythonSpawnerConfig::new().with_interpreter(&python)).await;
    if environment.dspy_version.is_none() {
        println!(
            "skipping: DSPy is not installed for `{python}`. Install it with \
             `{python} -m pip install 'dspy>=3'` (or run `cargo xtask venv` and set \
             PYPOOL_PYTHON=.venv/bin/python), then run this example again."
        );
        return Ok(());
    }

    let pool = Pool::builder().size(2).interpreter(&python).build()?;
    pool.ready().await?;
    let model =
        std::env::var("PYPOOL_LM_MODEL").unwrap_or_else(|_| "openai/gpt-4o-mini".to_owned());
    let mut lm = json!({ "model": model, "api_key_env": "OPENAI_API_KEY" });
    if let Ok(api_base) = std::env::var("PYPOOL_LM_API_BASE") {
        lm["api_base"] = json!(api_base);
    }
    let mut settings = Map::new();
    settings.insert("lm".into(), lm);
    pool.configure(settings)?; // reaches every worker, including later ones

    pool.create_program(
        "qa",
        ProgramSpec::new(
            ProgramKind::Dspy,
            json!({
                "module": "ChainOfThought",
                "signature": "question: str -> answer: str",
                "instructions": "Answer in one sentence.",
            }),
        ),
    )
    .await?;

    // Checked before anything reaches the LM.
    let error = pool
        .execute_program("qa", json!({}))
        .await
        .err()
        .ok_or("a missing question should be refused")?;
    println!("missing input: {} error: {error}", error.kind());

    if std::env::var_os("OPENAI_API_KEY").is_none() {
        println!(
            "no OPENAI_API_KEY set: not calling the LM (set it, or PYPOOL_LM_API_BASE for a local server)"
        );
    } else {
        let prediction = pool
            .execute_program("qa", json!({ "question": "Why is the sky blue?" }))
            .await?;
        println!("answer: {}", prediction["answer"]);
    }
    pool.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

//! `pypool-bench`: the benchmark behind `cargo xtask bench`.
//!
//! Runs each workload with its baselines in the same run (pypool through its
//! public API; the baselines are the Python scripts of `python/bench`), then
//! writes `report.md` and `report.json` (machine, CPU count, Python and DSPy
//! versions, pypool's git revision, every figure and every ratio with its
//! goal) and SVG charts beside them. Workloads: LM-bound DSPy against a
//! loopback fake LM, no-op `ping` throughput (and throughput vs concurrency),
//! facade overhead on mock workers, ping latency, start-up of 1/8/64 workers,
//! replacement after SIGKILL, chaos (a SIGKILL every 1,000 requests) and the
//! PSS of 8 workers.
//!
//! ```text
//! cargo xtask bench [--quick] [--lm-latency-ms N] [--only WORKLOAD] [--update-readme]
//! cargo run --release -p pypool-bench -- --python .venv/bin/python --quick
//! ```
//! Exits with status 1 when a contestant failed (the report is still
//! written, naming the failure); goals not met do not fail the run.

mod chaos;
mod charts;
mod cli;
mod load;
mod machine;
mod procfs;
mod python;
mod report;
mod startup;
mod workloads;

use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use cli::{Args, Plan, WorkloadId};
use report::{Report, Settings};
use workloads::Context;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // `RUST_LOG=pypool=debug` shows where a workload's time goes (spawns,
    // exits, retries), on stderr; silent by default.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let started = Instant::now();
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let root = args
        .scripts
        .ancestors()
        .nth(2)
        .map_or_else(|| args.scripts.clone(), std::path::Path::to_path_buf);
    let machine = machine::describe(&args.python, &root);
    let context = Context {
        python: args.python.clone(),
        scripts: args.scripts.clone(),
        plan: Plan::new(args.quick),
        lm_latency_ms: args.lm_latency_ms,
        dspy_version: machine.dspy_version.clone(),
    };
    eprintln!(
        "pypool-bench: {} on {} CPUs, Python {} ({}), DSPy {}, pypool {}",
        if args.quick { "quick run" } else { "full run" },
        machine.cpus,
        machine.python_version,
        machine.python,
        machine.dspy_version.as_deref().unwrap_or("not installed"),
        machine.pypool_rev
    );
    let mut results = Vec::new();
    let selected = args.selected();
    // The start-up workload measures the memory workload's figures on its own
    // pools when both run (saving a second start of the same pools).
    let mut memory_from_startup = None;
    for id in selected.iter().copied() {
        if id == WorkloadId::Memory && memory_from_startup.is_some() {
            continue;
        }
        eprintln!("pypool-bench: running `{}`", id.name());
        let begun = Instant::now();
        let workload = match id {
            WorkloadId::Lm => workloads::lm(&context).await,
            WorkloadId::Noop => workloads::noop(&context).await,
            WorkloadId::Facade => workloads::facade(&context).await,
            WorkloadId::Ping => workloads::ping_latency(&context).await,
            WorkloadId::Startup => {
                let (startup, memory) =
                    startup::startup(&context, selected.contains(&WorkloadId::Memory)).await;
                memory_from_startup = memory;
                startup
            }
            WorkloadId::Replacement => startup::replacement(&context).await,
            WorkloadId::Chaos => chaos::chaos(&context).await,
            WorkloadId::Memory => startup::memory(&context).await,
        };
        for figure in &workload.figures {
            eprintln!(
                "  {}: {} {}",
                figure.label,
                report::number(figure.value),
                figure.unit
            );
        }
        for failure in &workload.failures {
            eprintln!("  FAILED: {failure}");
        }
        eprintln!("  ({:.1} s)", begun.elapsed().as_secs_f64());
        results.push(workload);
    }
    if let Some(memory) = memory_from_startup {
        eprintln!("pypool-bench: `memory` (measured during `startup`)");
        for figure in &memory.figures {
            eprintln!(
                "  {}: {} {}",
                figure.label,
                report::number(figure.value),
                figure.unit
            );
        }
        for failure in &memory.failures {
            eprintln!("  FAILED: {failure}");
        }
        results.push(memory);
    }
    let report = Report {
        started_unix_s,
        wall_s: started.elapsed().as_secs_f64(),
        machine,
        settings: Settings {
            quick: args.quick,
            lm_latency_ms: args.lm_latency_ms,
            only: args.only.iter().map(|id| id.name().to_owned()).collect(),
        },
        workloads: results,
    };
    match report.write(&args.out) {
        Ok((json, markdown)) => {
            print!("{}", report.to_markdown());
            eprintln!(
                "pypool-bench: wrote {} and {}",
                markdown.display(),
                json.display()
            );
        }
        Err(error) => {
            eprintln!("pypool-bench: {error}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(readme) = &args.update_readme {
        let rewritten = std::fs::read_to_string(readme)
            .map_err(|error| format!("cannot read {}: {error}", readme.display()))
            .and_then(|text| {
                report::replace_between_markers(&text, &report.readme_table())
                    .map_err(|error| format!("{}: {error}", readme.display()))
            })
            .and_then(|text| {
                std::fs::write(readme, text)
                    .map_err(|error| format!("cannot write {}: {error}", readme.display()))
            });
        match rewritten {
            Ok(()) => eprintln!(
                "pypool-bench: rewrote the measurements in {}",
                readme.display()
            ),
            Err(error) => {
                eprintln!("pypool-bench: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    if report
        .workloads
        .iter()
        .any(|workload| !workload.failures.is_empty())
    {
        eprintln!("pypool-bench: some contestants failed (see the report)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

//! Running a parsed command line: settings, logging, metrics, the runtime,
//! the subcommand, the exit status.
//!
//! Exit statuses: 0 success; 1 the run failed (stress verdict, doctor
//! problems, a pool or Python error); 2 bad input (settings file, option
//! values, `call` arguments); 130 / 143 interrupted by SIGINT / SIGTERM
//! (see [`crate::interrupt`]).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::args::{Cli, Command};
use crate::call::{self, CallOutput};
use crate::config_file::{self, LoadedFile};
use crate::interrupt;
use crate::metrics_endpoint::Metrics;
use crate::options::{self, GlobalSettings};
use crate::pool_setup;
use crate::stress::{self, Plan, chaos, rng};

/// Exit status for a failed run.
const EXIT_FAILED: u8 = 1;
/// Exit status for bad input.
const EXIT_BAD_INPUT: u8 = 2;

/// Runs `cli` to completion and returns the process exit status.
pub fn run(cli: Cli) -> ExitCode {
    let is_call = matches!(cli.command, Command::Call(_));
    let is_stress = matches!(cli.command, Command::Stress(_));
    let file = match config_file::load(cli.global.config.as_deref()) {
        Ok(file) => file,
        Err(error) => return bad_input(is_call, "invalid_config", &error.to_string()),
    };
    let global = options::resolve_global(&cli.global, &file);
    let filter = match crate::logging::init(global.log_level.as_deref()) {
        Ok(filter) => filter,
        Err(error) => return bad_input(is_call, "invalid_setting", &error),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let status = runtime.block_on(async {
        if let Err(error) = interrupt::install() {
            eprintln!("warning: cannot handle SIGINT/SIGTERM ({error}); they will kill pypool");
        }
        let work = dispatch(cli.command, &global, &file, &filter);
        tokio::pin!(work);
        // `stress` handles the first signal itself (it reports what was cut
        // short); other commands get the grace period to finish.
        tokio::select! {
            status = &mut work => status,
            received = interrupt::wait(), if !is_stress => {
                if tokio::time::timeout(interrupt::GRACE, &mut work).await.is_err() {
                    eprintln!(
                        "pypool: the command did not finish within {}s of {}; stopped",
                        interrupt::GRACE.as_secs(),
                        received.name()
                    );
                }
                received.exit_status()
            }
        }
    });
    let status = interrupt::requested().map_or(status, interrupt::Interruption::exit_status);
    // Background tasks (metrics upkeep, the pool's sweepers) end with the runtime.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(status)
}

async fn dispatch(
    command: Command,
    global: &GlobalSettings,
    file: &LoadedFile,
    filter: &str,
) -> u8 {
    let worker_log_level = pool_setup::worker_log_level(Some(filter));
    match command {
        Command::Stress(args) => {
            let settings = match options::resolve_stress(&args, &file.config) {
                Ok(settings) => settings,
                Err(error) => return fail_text(EXIT_BAD_INPUT, &error.to_string()),
            };
            match run_stress(settings, global, worker_log_level).await {
                Ok(status) => status,
                Err(error) => fail_text(EXIT_FAILED, &format!("{error:#}")),
            }
        }
        Command::Call(args) => {
            let settings = match options::resolve_call(&args, &file.config) {
                Ok(settings) => settings,
                Err(error) => {
                    return print_call(
                        &CallOutput::error("invalid_setting", error.to_string(), EXIT_BAD_INPUT),
                        args.pretty,
                    );
                }
            };
            let _metrics = match serve_metrics(global.metrics_addr.as_deref()) {
                Ok(metrics) => metrics,
                Err(error) => {
                    return print_call(
                        &CallOutput::error("invalid_setting", format!("{error:#}"), EXIT_BAD_INPUT),
                        settings.pretty,
                    );
                }
            };
            let builder = pool_setup::builder("call", &settings.pool, worker_log_level);
            let host = pool_setup::host_id();
            let store = settings.pool.store.as_ref();
            let builder = match pool_setup::with_store(builder, store, "call", &host).await {
                Ok((builder, _stores)) => builder,
                Err(error) => {
                    return print_call(
                        &CallOutput::error("store_unavailable", format!("{error:#}"), EXIT_FAILED),
                        settings.pretty,
                    );
                }
            };
            if settings.stream {
                let output = call::run_stream(builder, &settings.command, &settings.args, |line| {
                    print_stdout(&line.to_string());
                })
                .await;
                return print_call(&output, false);
            }
            let output = call::run(builder, &settings.command, &settings.args).await;
            print_call(&output, settings.pretty)
        }
        Command::Doctor(args) => {
            let _metrics = match serve_metrics(global.metrics_addr.as_deref()) {
                Ok(metrics) => metrics,
                Err(error) => return fail_text(EXIT_BAD_INPUT, &format!("{error:#}")),
            };
            let python = options::resolve_python(&args.python, &file.config);
            let config = pool_setup::spawner_config(&python);
            let (text, status) = crate::doctor::run(&config, args.json).await;
            print_stdout(&text);
            status
        }
        Command::ShowConfig(args) => {
            match options::resolve_effective(&global_args(global), &args, file) {
                Ok(effective) => match serde_json::to_string_pretty(&effective) {
                    Ok(text) => {
                        print_stdout(&text);
                        0
                    }
                    Err(error) => fail_text(EXIT_FAILED, &error.to_string()),
                },
                Err(error) => fail_text(EXIT_BAD_INPUT, &error.to_string()),
            }
        }
    }
}

/// The resolved global settings, as arguments (they already hold the file's values).
fn global_args(global: &GlobalSettings) -> crate::args::GlobalArgs {
    crate::args::GlobalArgs {
        config: global.config_file.clone(),
        log_level: global.log_level.clone(),
        metrics_addr: global.metrics_addr.clone(),
    }
}

async fn run_stress(
    settings: options::StressSettings,
    global: &GlobalSettings,
    worker_log_level: &str,
) -> anyhow::Result<u8> {
    if let Some(metrics) = serve_metrics(global.metrics_addr.as_deref())? {
        eprintln!("serving Prometheus metrics at http://{}/", metrics.addr());
    }
    let seed = settings.seed.unwrap_or_else(rng::random_seed);
    if let Some(share) = &settings.executor_for {
        // An executing host of a `--hosts` run: its JSON report is for the creator.
        let share = stress::hosts::ExecutorShare::parse(share)?;
        let guard = stress::guard_for(settings.pool.request_timeout);
        let report =
            stress::hosts::run_executor(&settings, &share, guard, worker_log_level).await?;
        print_stdout(&serde_json::to_string(&report).context("cannot render the report")?);
        return Ok(0);
    }
    if settings.hosts > 1 {
        let report = stress::hosts::run_creator(
            &settings,
            seed,
            worker_log_level,
            global.log_level.as_deref(),
        )
        .await?;
        if settings.json {
            print_stdout(
                &serde_json::to_string_pretty(&report).context("cannot render the report")?,
            );
        } else {
            print_stdout(&report.to_string());
        }
        return Ok(report.exit_status());
    }
    let chaos: Box<dyn chaos::Chaos> = match settings.kill_every {
        Some(_) => Box::new(chaos::KillRandomWorker::new(seed)),
        None => Box::new(chaos::NoChaos),
    };
    let builder =
        pool_setup::builder(stress::POOL_NAME, &settings.pool, worker_log_level).seed(seed);
    // A shared store gets a fresh prefix per run, so the run's programs never
    // collide with an earlier run's.
    let run_pool = format!("{}-{}-{seed}", stress::POOL_NAME, std::process::id());
    let (builder, _stores) = pool_setup::with_store(
        builder,
        settings.pool.store.as_ref(),
        &run_pool,
        &pool_setup::host_id(),
    )
    .await?;
    let json = settings.json;
    let plan = Plan {
        builder,
        guard: stress::guard_for(settings.pool.request_timeout),
        settings,
        seed,
        chaos,
        progress: true,
        settle_limit: stress::SETTLE_LIMIT,
    };
    let report = stress::run(plan).await?;
    if json {
        let text = serde_json::to_string_pretty(&report).context("cannot render the report")?;
        print_stdout(&text);
    } else {
        print_stdout(&report.to_string());
    }
    Ok(report.exit_status())
}

/// Serves metrics at `addr`, if given.
fn serve_metrics(addr: Option<&str>) -> anyhow::Result<Option<Metrics>> {
    addr.map(Metrics::serve).transpose()
}

fn print_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

fn print_call(output: &CallOutput, pretty: bool) -> u8 {
    print_stdout(&output.render(pretty));
    output.exit
}

fn fail_text(status: u8, message: &str) -> u8 {
    eprintln!("error: {message}");
    status
}

/// Bad input found before the runtime starts: JSON for `call`, text otherwise.
fn bad_input(is_call: bool, kind: &str, message: &str) -> ExitCode {
    if is_call {
        print_call(
            &CallOutput::error(kind, message.to_owned(), EXIT_BAD_INPUT),
            false,
        );
    } else {
        eprintln!("error: {message}");
    }
    ExitCode::from(EXIT_BAD_INPUT)
}

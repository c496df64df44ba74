//! `pypool stress --hosts N --store URL`: N pool hosts sharing one Redis,
//! as N processes.
//!
//! This process is host A (the creator): it starts its pool on the shared
//! stores and creates one program per try (session `i % sessions`'s
//! program `x{i}`, all running [`SUMMARIZE_CALLABLE`]). Then it starts
//! N − 1 executing hosts — child `pypool stress --executor-for …` processes,
//! each with its own pool on the same stores — which run the programs (try
//! `i` goes to executor `i % (N − 1)`), check every result and print a JSON
//! [`ExecutorReport`]. The store URL reaches the children through
//! `PYPOOL_STORE` in their environment, never on their command line (where
//! `ps` would show its password).
//!
//! Keys live under the prefix `pypool:stress-hosts-{run}`; the creator
//! deletes the run's programs at the end.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use pypool::{Pool, PoolError, ProgramSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::options::StressSettings;
use crate::pool_setup;
use crate::stress::check;
use crate::stress::tally::{LatencySummary, new_histogram};
use crate::stress::workload::{Op, SUMMARIZE_CALLABLE};

/// How long the pool may take to shut down at the end.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Which share of a `--hosts` run an executing host runs:
/// `{run}/{index}/{executors}` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorShare {
    /// The run id (part of the key prefix).
    pub run: String,
    /// This executor's index.
    pub index: u64,
    /// How many executors there are.
    pub executors: u64,
}

impl ExecutorShare {
    /// Parses `{run}/{index}/{executors}`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut parts = text.split('/');
        let (Some(run), Some(index), Some(executors), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            bail!("--executor-for must be RUN/INDEX/EXECUTORS, got `{text}`");
        };
        let index: u64 = index.parse().context("--executor-for INDEX")?;
        let executors: u64 = executors.parse().context("--executor-for EXECUTORS")?;
        if executors == 0 || index >= executors {
            bail!("--executor-for: index {index} is not below {executors} executors");
        }
        Ok(Self {
            run: run.to_owned(),
            index,
            executors,
        })
    }

    fn render(&self) -> String {
        format!("{}/{}/{}", self.run, self.index, self.executors)
    }
}

/// The pool name (and so the key prefix) of run `run`.
pub fn pool_name(run: &str) -> String {
    format!("stress-hosts-{run}")
}

fn session_name(index: u64, sessions: usize) -> Option<String> {
    (sessions > 0).then(|| format!("xh-session-{}", index % sessions as u64))
}

fn program_id(index: u64) -> String {
    format!("x{index}")
}

/// The inputs of try `index` and the result they must give.
fn try_inputs(index: u64) -> (Value, Value) {
    let text = format!("program {index} was created on host A and runs on another host");
    let max_words = 1 + index % 8;
    let op = Op::SessionProgram {
        session: 0,
        text: text.clone(),
        max_words,
    };
    let expected = check::expected(&op).unwrap_or(Value::Null);
    (json!({ "text": text, "max_words": max_words }), expected)
}

/// What one executing host did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutorReport {
    /// The executing host's id.
    pub host: String,
    /// Programs it ran.
    pub tries: u64,
    /// Runs that returned the expected result.
    pub successes: u64,
    /// Runs that returned something else.
    pub wrong_results: u64,
    /// Runs that got no answer within the guard.
    pub hung: u64,
    /// Failed runs by error kind.
    pub failures: BTreeMap<String, u64>,
    /// Latency of one program call on this host, in microseconds.
    pub latency_p50_us: u64,
    /// 99th percentile, in microseconds.
    pub latency_p99_us: u64,
    /// Wall time of the runs, in seconds.
    pub seconds: f64,
}

/// What `stress --hosts N` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CrossHostReport {
    /// The run id (keys under `pypool:stress-hosts-{run}`).
    pub run: String,
    /// Hosts, the creator included.
    pub hosts: usize,
    /// The creating host's id.
    pub creator: String,
    /// Programs created through the creator.
    pub programs_created: u64,
    /// Time to create them, in seconds.
    pub create_seconds: f64,
    /// Each executing host's report.
    pub executors: Vec<ExecutorReport>,
    /// Programs run on another host than the one that created them.
    pub cross_host_tries: u64,
    /// Of those, runs with the expected result.
    pub cross_host_successes: u64,
    /// `cross_host_successes / cross_host_tries`, in percent.
    pub cross_host_success_rate: f64,
}

impl CrossHostReport {
    /// 0 when every cross-host try succeeded, else 1.
    pub fn exit_status(&self) -> u8 {
        u8::from(self.cross_host_successes != self.cross_host_tries || self.cross_host_tries == 0)
    }
}

impl std::fmt::Display for CrossHostReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "pypool stress --hosts {} (run {})", self.hosts, self.run)?;
        writeln!(
            f,
            "  host A {}: created {} programs in {:.2} s",
            self.creator, self.programs_created, self.create_seconds
        )?;
        for executor in &self.executors {
            writeln!(
                f,
                "  host {}: ran {} of them, {} ok, {} wrong, {} hung, failures {:?}; p50 {:.2} ms, p99 {:.2} ms, {:.2} s",
                executor.host,
                executor.tries,
                executor.successes,
                executor.wrong_results,
                executor.hung,
                executor.failures,
                executor.latency_p50_us as f64 / 1000.0,
                executor.latency_p99_us as f64 / 1000.0,
                executor.seconds
            )?;
        }
        write!(
            f,
            "cross-host success: {} of {} ({:.2}%)",
            self.cross_host_successes, self.cross_host_tries, self.cross_host_success_rate
        )
    }
}

async fn start_pool(
    settings: &StressSettings,
    run: &str,
    host: &str,
    worker_log_level: &str,
) -> anyhow::Result<(Pool, pypool_redis::RedisStores)> {
    let name = pool_name(run);
    let builder = pool_setup::builder(&name, &settings.pool, worker_log_level);
    let (builder, stores) =
        pool_setup::with_store(builder, settings.pool.store.as_ref(), &name, host).await?;
    let stores = stores.context("--hosts needs --store")?;
    let pool = builder.build().context("cannot build the pool")?;
    pool.ready().await.context("the pool did not start")?;
    Ok((pool, stores))
}

/// Runs host A: creates the programs, starts the executing hosts, gathers
/// their reports.
pub async fn run_creator(
    settings: &StressSettings,
    seed: u64,
    worker_log_level: &str,
    log_level: Option<&str>,
) -> anyhow::Result<CrossHostReport> {
    let url = settings
        .pool
        .store
        .as_ref()
        .context("--hosts needs --store")?;
    let run = format!("{}-{seed}", std::process::id());
    let host = pool_setup::host_id();
    let (pool, stores) = start_pool(settings, &run, &host, worker_log_level).await?;

    let started = Instant::now();
    let limit = Arc::new(Semaphore::new(settings.concurrency));
    let mut creating = JoinSet::new();
    for index in 0..settings.requests {
        let permit = Arc::clone(&limit).acquire_owned().await?;
        let pool = pool.clone();
        let session = session_name(index, settings.sessions);
        creating.spawn(async move {
            let _permit = permit;
            let spec = ProgramSpec::python(SUMMARIZE_CALLABLE);
            match session {
                Some(session) => {
                    pool.session(&session)?
                        .create_program(&program_id(index), spec)
                        .await
                }
                None => pool.create_program(&program_id(index), spec).await,
            }
        });
    }
    let mut created = 0;
    while let Some(done) = creating.join_next().await {
        done.context("a create task panicked")?
            .context("creating a program through host A failed")?;
        created += 1;
    }
    let create_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "host A {host}: created {created} programs in {create_seconds:.2} s; starting the other host(s)"
    );

    let executors = settings.hosts.saturating_sub(1).max(1) as u64;
    let mut children = Vec::new();
    for index in 0..executors {
        let share = ExecutorShare {
            run: run.clone(),
            index,
            executors,
        };
        children.push(spawn_executor(settings, &share, url, log_level)?);
    }
    let mut reports = Vec::new();
    for child in children {
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .context("waiting for an executing host")?
            .context("waiting for an executing host")?;
        if !output.status.success() && output.stdout.is_empty() {
            bail!("an executing host failed with {}", output.status);
        }
        let report: ExecutorReport = serde_json::from_slice(&output.stdout).with_context(|| {
            format!(
                "an executing host's report is not valid ({})",
                output.status
            )
        })?;
        reports.push(report);
    }

    for index in 0..(settings.sessions as u64).min(settings.requests) {
        if let Some(session) = session_name(index, settings.sessions) {
            if let Ok(session) = pypool::SessionId::new(session) {
                let _ = pypool::ProgramStore::delete_session(&stores.programs, &session).await;
            }
        }
    }
    if settings.sessions == 0 {
        for index in 0..settings.requests {
            let _ = pool.delete_program(&program_id(index)).await;
        }
    }
    stores.affinity.leave().await.ok();
    pool.shutdown(SHUTDOWN_DEADLINE).await;

    let tries = reports.iter().map(|report| report.tries).sum::<u64>();
    let successes = reports.iter().map(|report| report.successes).sum::<u64>();
    Ok(CrossHostReport {
        run,
        hosts: settings.hosts,
        creator: host,
        programs_created: created,
        create_seconds,
        executors: reports,
        cross_host_tries: tries,
        cross_host_successes: successes,
        cross_host_success_rate: if tries == 0 {
            0.0
        } else {
            successes as f64 * 100.0 / tries as f64
        },
    })
}

/// Starts one executing host: this program again, with the same pool
/// settings, the store URL in its environment.
fn spawn_executor(
    settings: &StressSettings,
    share: &ExecutorShare,
    url: &pypool_redis::RedisUrl,
    log_level: Option<&str>,
) -> anyhow::Result<std::process::Child> {
    let exe = std::env::current_exe().context("cannot find the pypool executable")?;
    let pool = &settings.pool;
    let mut command = Command::new(exe);
    command
        .arg("stress")
        .args(["--executor-for", &share.render()])
        .args(["--requests", &settings.requests.to_string()])
        .args(["--sessions", &settings.sessions.to_string()])
        .args(["--concurrency", &settings.concurrency.to_string()])
        .args(["--workers", &pool.workers.to_string()])
        .args([
            "--request-timeout",
            &pool.request_timeout.as_secs_f64().to_string(),
        ])
        .args(["--python", &pool.python.interpreter])
        .env("PYPOOL_STORE", url.expose_secret())
        .env_remove("PYPOOL_HOSTS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for dir in &pool.python.python_path {
        command.arg("--python-path").arg(dir);
    }
    for handler in &pool.handlers {
        command.args(["--handlers", handler]);
    }
    if let Some(level) = log_level {
        command.args(["--log-level", level]);
    }
    command.spawn().context("cannot start an executing host")
}

/// Runs an executing host: its pool on the shared stores runs its share of
/// the programs host A created, checking every result.
pub async fn run_executor(
    settings: &StressSettings,
    share: &ExecutorShare,
    guard: Duration,
    worker_log_level: &str,
) -> anyhow::Result<ExecutorReport> {
    let host = pool_setup::host_id();
    let (pool, stores) = start_pool(settings, &share.run, &host, worker_log_level).await?;
    let started = Instant::now();
    let limit = Arc::new(Semaphore::new(settings.concurrency));
    let mut running = JoinSet::new();
    let mine = (0..settings.requests).filter(|index| index % share.executors == share.index);
    for index in mine {
        let permit = Arc::clone(&limit).acquire_owned().await?;
        let pool = pool.clone();
        let session = session_name(index, settings.sessions);
        running.spawn(async move {
            let _permit = permit;
            let (inputs, expected) = try_inputs(index);
            let begun = Instant::now();
            let call = async {
                match session {
                    Some(session) => {
                        pool.session(&session)?
                            .execute_program(&program_id(index), inputs)
                            .await
                    }
                    None => pool.execute_program(&program_id(index), inputs).await,
                }
            };
            let outcome: Option<Result<Value, PoolError>> =
                tokio::time::timeout(guard, call).await.ok();
            (outcome, expected, begun.elapsed())
        });
    }
    let mut report = ExecutorReport {
        host,
        ..ExecutorReport::default()
    };
    let mut latency = new_histogram();
    while let Some(done) = running.join_next().await {
        let (outcome, expected, took) = done.context("a run task panicked")?;
        report.tries += 1;
        match outcome {
            None => report.hung += 1,
            Some(Ok(result)) if result == expected => {
                report.successes += 1;
                let _ = latency.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
            }
            Some(Ok(_)) => report.wrong_results += 1,
            Some(Err(error)) => *report.failures.entry(error.kind().to_owned()).or_default() += 1,
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    let summary = LatencySummary::of(&latency);
    report.latency_p50_us = summary.p50;
    report.latency_p99_us = summary.p99;
    stores.affinity.leave().await.ok();
    pool.shutdown(SHUTDOWN_DEADLINE).await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[test]
    fn executor_shares_round_trip_and_are_checked() {
        let share = ExecutorShare::parse("123-9/1/2").unwrap();
        assert_eq!(
            share,
            ExecutorShare {
                run: "123-9".to_owned(),
                index: 1,
                executors: 2
            }
        );
        assert_eq!(ExecutorShare::parse(&share.render()).unwrap(), share);
        for bad in ["r/2/2", "r/0/0", "r/x/1", "r/0", "r/0/1/2"] {
            assert!(ExecutorShare::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_try_expects_the_summary_of_its_own_inputs() {
        let (inputs, expected) = try_inputs(3);
        assert_eq!(inputs["max_words"], json!(4));
        assert_eq!(expected["summary"], json!("program 3 was created"));
        assert_ne!(try_inputs(4).1, expected);
    }

    #[test]
    fn the_rate_counts_only_expected_results() {
        let report = CrossHostReport {
            run: "r".to_owned(),
            hosts: 2,
            creator: "a".to_owned(),
            programs_created: 2,
            create_seconds: 0.0,
            executors: Vec::new(),
            cross_host_tries: 2,
            cross_host_successes: 1,
            cross_host_success_rate: 50.0,
        };
        assert_eq!(report.exit_status(), 1);
        assert!(
            report
                .to_string()
                .ends_with("cross-host success: 1 of 2 (50.00%)")
        );
    }
}

//! The stress report: built from a run's account and the pool's final
//! status, printed for a person (`Display`) or as JSON (`Serialize`), and
//! the verdict that decides the exit status.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use pypool::{PoolCounters, Status};
use serde::Serialize;

use super::chaos::Strike;
use super::check::WRONG_RESULT;
use super::tally::{LatencySummary, Tally};
pub use super::verdict::Verdict;

/// What the run was asked to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSettings {
    /// Pool size.
    pub workers: usize,
    /// Requests.
    pub requests: u64,
    /// Requests at once.
    pub concurrency: usize,
    /// Sessions.
    pub sessions: usize,
    /// Kill a worker every N completed requests.
    pub kill_every: Option<u64>,
    /// The workload seed (pass it as `--seed` to replay the same mix).
    pub seed: u64,
    /// The `--command` replacing the plain commands, if any.
    pub command: Option<String>,
    /// Handler modules the workers import.
    pub handlers: Vec<String>,
    /// Per-request time limit of the pool, in seconds.
    pub request_timeout_s: f64,
    /// After this many seconds without an outcome a request counts as hung.
    pub guard_s: f64,
}

/// Requests by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    /// Spawned.
    pub started: u64,
    /// Ended with a result or an error.
    pub ended: u64,
    /// Ended with a correct result.
    pub succeeded: u64,
    /// Ended with an error or a wrong result.
    pub failed: u64,
    /// No outcome within the guard.
    pub hung: u64,
    /// Started but never accounted for (`started - ended - hung`).
    pub lost: u64,
}

/// What the chaos did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChaosSummary {
    /// Kill every N completed requests, if at all.
    pub kill_every: Option<u64>,
    /// Workers killed.
    pub kills: u64,
    /// Strikes that found no serving worker.
    pub no_target: u64,
    /// Strikes whose signal could not be sent.
    pub failed: u64,
}

impl ChaosSummary {
    /// Counts `strikes`.
    pub fn of(kill_every: Option<u64>, strikes: &[Strike]) -> Self {
        let mut summary = Self {
            kill_every,
            ..Self::default()
        };
        for strike in strikes {
            match strike {
                Strike::Killed { .. } => summary.kills += 1,
                Strike::NoTarget => summary.no_target += 1,
                Strike::Failed { .. } => summary.failed += 1,
            }
        }
        summary
    }
}

/// The pool at the end of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PoolSummary {
    /// The size asked for.
    pub configured_size: usize,
    /// Workers ready at the end (after replacements had time to start).
    pub ready_at_end: usize,
    /// Workers in the pool's table at the end, whatever their state.
    pub workers_at_end: usize,
    /// Workers that completed a handshake, replacements included.
    pub spawned: u64,
    /// Failed spawn attempts.
    pub spawn_failures: u64,
    /// Workers removed after a failure and replaced.
    pub replaced: u64,
    /// Workers retired at a recycle limit.
    pub recycled: u64,
    /// Attempts retried by the recovery policy.
    pub retries: u64,
}

impl PoolSummary {
    /// From the pool's final status.
    pub fn of(configured_size: usize, status: &Status) -> Self {
        Self {
            configured_size,
            ready_at_end: status.ready,
            workers_at_end: status.workers,
            spawned: status.counters.spawned,
            spawn_failures: status.counters.spawn_failures,
            replaced: status.counters.replaced,
            recycled: status.counters.recycled,
            retries: status.counters.retries,
        }
    }
}

/// Session affinity, from the pool's counters ([`pypool::PoolCounters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct AffinitySummary {
    /// Session calls served by their bound worker.
    pub hits: u64,
    /// Session calls of an unbound session (every session's first call), or
    /// whose worker was gone (killed, recycled).
    pub misses: u64,
    /// Session calls run elsewhere because the bound worker stayed busy (hint mode).
    pub spills: u64,
    /// `hits / (hits + misses + spills)`, if there was any session call.
    pub hit_rate: Option<f64>,
}

impl AffinitySummary {
    /// From the pool's running totals.
    pub fn of(counters: &PoolCounters) -> Self {
        let hits = counters.affinity_hits;
        let misses = counters.affinity_misses;
        let spills = counters.affinity_spills;
        let calls = hits + misses + spills;
        Self {
            hits,
            misses,
            spills,
            hit_rate: (calls > 0).then(|| hits as f64 / calls as f64),
        }
    }
}

/// Everything a stress run found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// What was asked.
    pub settings: RunSettings,
    /// From building the pool to all workers ready, in milliseconds.
    pub startup_ms: f64,
    /// From the first request to the last one's end, in milliseconds.
    pub wall_ms: f64,
    /// Requests ended per second of wall time.
    pub throughput_ops: f64,
    /// Latency of ended requests, in microseconds.
    pub latency_us: LatencySummary,
    /// Requests by how they ended.
    pub requests: RequestCounts,
    /// Failed requests by kind (`PoolError::kind`, or `wrong_result`).
    pub failures: BTreeMap<String, u64>,
    /// The first few wrong results.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wrong_result_examples: Vec<String>,
    /// Requests started by part of the mix.
    pub mix: BTreeMap<String, u64>,
    /// What the chaos did.
    pub chaos: ChaosSummary,
    /// The pool at the end.
    pub pool: PoolSummary,
    /// Session affinity.
    pub affinity: AffinitySummary,
    /// Pass or fail.
    pub verdict: Verdict,
    /// What a SIGINT/SIGTERM cut short, when one stopped the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<super::runner::CutShort>,
}

/// The inputs of a report.
#[derive(Debug)]
pub struct ReportInputs<'a> {
    /// What was asked.
    pub settings: RunSettings,
    /// Time to a ready pool.
    pub startup: Duration,
    /// The run's wall time.
    pub wall: Duration,
    /// The run's account.
    pub tally: &'a Tally,
    /// Every chaos strike.
    pub strikes: &'a [Strike],
    /// The pool at the end.
    pub pool: PoolSummary,
    /// Session affinity.
    pub affinity: AffinitySummary,
}

impl Report {
    /// Builds the report and its verdict.
    pub fn new(inputs: ReportInputs<'_>) -> Self {
        let tally = inputs.tally;
        let requests = RequestCounts {
            started: tally.started,
            ended: tally.ended,
            succeeded: tally.succeeded,
            failed: tally.failed(),
            hung: tally.hung,
            lost: tally.lost(),
        };
        let wrong = tally.failures.get(WRONG_RESULT).copied().unwrap_or(0);
        let verdict = Verdict::judge(&requests, wrong, &inputs.pool);
        let wall_s = inputs.wall.as_secs_f64();
        Self {
            chaos: ChaosSummary::of(inputs.settings.kill_every, inputs.strikes),
            settings: inputs.settings,
            startup_ms: millis(inputs.startup),
            wall_ms: millis(inputs.wall),
            throughput_ops: if wall_s > 0.0 {
                tally.ended as f64 / wall_s
            } else {
                0.0
            },
            latency_us: LatencySummary::of(&tally.latency),
            requests,
            failures: tally.failures.clone(),
            wrong_result_examples: tally.wrong_result_examples.clone(),
            mix: tally
                .mix
                .iter()
                .map(|(kind, count)| (kind.as_str().to_owned(), *count))
                .collect(),
            pool: inputs.pool,
            affinity: inputs.affinity,
            verdict,
            interrupted: None,
        }
    }

    /// The process exit status: 130/143 when a signal interrupted the run
    /// (see [`crate::interrupt`]), else [`Verdict::exit_status`].
    pub fn exit_status(&self) -> u8 {
        match &self.interrupted {
            Some(cut) if cut.signal == crate::interrupt::Interruption::Terminate.name() => {
                crate::interrupt::Interruption::Terminate.exit_status()
            }
            Some(_) => crate::interrupt::Interruption::Interrupt.exit_status(),
            None => self.verdict.exit_status(),
        }
    }
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        let chaos = match s.kill_every {
            Some(every) => format!("SIGKILL a worker every {every} requests"),
            None => "no chaos".to_owned(),
        };
        writeln!(
            f,
            "pypool stress: {} workers, {} requests, concurrency {}, {} sessions, seed {}, {chaos}",
            s.workers, s.requests, s.concurrency, s.sessions, s.seed
        )?;
        if let Some(cut) = &self.interrupted {
            writeln!(f, "  {cut}")?;
        }
        if let Some(command) = &s.command {
            writeln!(
                f,
                "  plain commands replaced by `{command}` (results not checked)"
            )?;
        }
        writeln!(f)?;
        let line = |f: &mut fmt::Formatter<'_>, label: &str, text: String| {
            writeln!(f, "  {label:<12} {text}")
        };
        line(
            f,
            "start-up",
            format!(
                "{} to {} ready workers",
                human_ms(self.startup_ms),
                s.workers
            ),
        )?;
        line(
            f,
            "run",
            format!(
                "{} wall, {:.1} ops/s",
                human_ms(self.wall_ms),
                self.throughput_ops
            ),
        )?;
        let l = &self.latency_us;
        line(
            f,
            "latency",
            format!(
                "p50 {}  p95 {}  p99 {}  max {}  (µs, {} requests)",
                l.p50, l.p95, l.p99, l.max, l.count
            ),
        )?;
        let r = &self.requests;
        line(
            f,
            "requests",
            format!(
                "{} started: {} ok, {} failed, {} hung, {} lost",
                r.started, r.succeeded, r.failed, r.hung, r.lost
            ),
        )?;
        line(f, "mix", join_counts(&self.mix, "none"))?;
        line(f, "failures", join_counts(&self.failures, "none"))?;
        for example in &self.wrong_result_examples {
            line(f, "", format!("wrong result: {example}"))?;
        }
        let c = &self.chaos;
        if c.kill_every.is_some() {
            line(
                f,
                "chaos",
                format!(
                    "{} workers killed ({} strikes found no target, {} failed)",
                    c.kills, c.no_target, c.failed
                ),
            )?;
        }
        let p = &self.pool;
        line(
            f,
            "pool",
            format!(
                "{}/{} ready at the end; {} spawned, {} replaced, {} recycled, {} retries, {} spawn failures",
                p.ready_at_end,
                p.configured_size,
                p.spawned,
                p.replaced,
                p.recycled,
                p.retries,
                p.spawn_failures
            ),
        )?;
        let a = &self.affinity;
        let affinity = match a.hit_rate {
            Some(rate) => format!(
                "{:.1} % of session calls served by their bound worker (hits {}, misses {}, spills {})",
                rate * 100.0,
                a.hits,
                a.misses,
                a.spills
            ),
            None => "no session calls".to_owned(),
        };
        line(f, "affinity", affinity)?;
        writeln!(f)?;
        if self.verdict.ok {
            write!(f, "  verdict      PASS")
        } else {
            write!(f, "  verdict      FAIL")?;
            for problem in &self.verdict.problems {
                write!(f, "\n               - {problem}")?;
            }
            Ok(())
        }
    }
}

fn human_ms(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

fn join_counts(counts: &BTreeMap<String, u64>, empty: &str) -> String {
    if counts.is_empty() {
        return empty.to_owned();
    }
    counts
        .iter()
        .map(|(name, count)| format!("{name} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{Value, json};

    use super::*;
    use crate::stress::tally::RequestEnd;
    use crate::stress::workload::OpKind;

    fn settings() -> RunSettings {
        RunSettings {
            workers: 8,
            requests: 5,
            concurrency: 4,
            sessions: 2,
            kill_every: Some(2),
            seed: 42,
            command: None,
            handlers: vec!["pypool_worker.demo".into()],
            request_timeout_s: 10.0,
            guard_s: 130.0,
        }
    }

    fn full_pool() -> PoolSummary {
        PoolSummary {
            configured_size: 8,
            ready_at_end: 8,
            workers_at_end: 8,
            spawned: 10,
            spawn_failures: 0,
            replaced: 2,
            recycled: 0,
            retries: 1,
        }
    }

    /// Five requests: three ok, one killed worker, one wrong result.
    fn synthetic_tally() -> Tally {
        let mut tally = Tally::new();
        let ends = [
            (OpKind::SessionProgram, 100, Ok(())),
            (OpKind::SessionProgram, 200, Ok(())),
            (OpKind::GlobalProgram, 300, Ok(())),
            (
                OpKind::Command,
                400,
                Err(("worker_exited", "worker 3 was killed by signal 9")),
            ),
            (
                OpKind::Command,
                500,
                Err(("wrong_result", "expected 168, got 0")),
            ),
        ];
        for (kind, micros, outcome) in ends {
            tally.start(kind);
            tally.finish(RequestEnd::Ended {
                kind,
                latency: Duration::from_micros(micros),
                outcome: outcome.map_err(|(k, d): (&str, &str)| (k.to_owned(), d.to_owned())),
            });
        }
        tally
    }

    fn report(tally: &Tally, pool: PoolSummary) -> Report {
        let strikes = [
            Strike::Killed {
                worker_id: 3,
                pid: 4242,
            },
            Strike::NoTarget,
        ];
        Report::new(ReportInputs {
            settings: settings(),
            startup: Duration::from_millis(812),
            wall: Duration::from_millis(2500),
            tally,
            strikes: &strikes,
            pool,
            affinity: AffinitySummary::of(&PoolCounters {
                affinity_hits: 8,
                affinity_misses: 2,
                affinity_spills: 1,
                ..PoolCounters::default()
            }),
        })
    }

    #[test]
    fn the_json_report_has_a_stable_shape() {
        let report = report(&synthetic_tally(), full_pool());
        let json: Value = serde_json::to_value(&report).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut expected = [
            "settings",
            "startup_ms",
            "wall_ms",
            "throughput_ops",
            "latency_us",
            "requests",
            "failures",
            "wrong_result_examples",
            "mix",
            "chaos",
            "pool",
            "affinity",
            "verdict",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        // Printed in declaration order, settings first.
        let text = serde_json::to_string(&report).unwrap();
        assert!(text.starts_with(r#"{"settings":{"workers":8,"#), "{text}");
        assert_eq!(json["startup_ms"], json!(812.0));
        assert_eq!(json["throughput_ops"], json!(2.0));
        assert_eq!(
            json["requests"],
            json!({ "started": 5, "ended": 5, "succeeded": 3, "failed": 2, "hung": 0, "lost": 0 })
        );
        assert_eq!(
            json["failures"],
            json!({ "worker_exited": 1, "wrong_result": 1 })
        );
        assert_eq!(
            json["mix"],
            json!({ "session_program": 2, "global_program": 1, "command": 2 })
        );
        assert_eq!(
            json["chaos"],
            json!({ "kill_every": 2, "kills": 1, "no_target": 1, "failed": 0 })
        );
        assert_eq!(json["latency_us"]["p50"], json!(300));
        assert_eq!(json["latency_us"]["max"], json!(500));
        assert_eq!(
            json["affinity"],
            json!({ "hits": 8, "misses": 2, "spills": 1, "hit_rate": 8.0 / 11.0 })
        );
        assert_eq!(json["settings"]["seed"], json!(42));
        assert_eq!(json["verdict"]["ok"], json!(false));
    }

    #[test]
    fn the_human_report_names_every_figure() {
        let mut tally = synthetic_tally();
        // Without the wrong result the run passes.
        tally.failures.remove("wrong_result");
        tally.wrong_result_examples.clear();
        let text = report(&tally, full_pool()).to_string();
        for expected in [
            "8 workers, 5 requests, concurrency 4, 2 sessions, seed 42",
            "start-up     812 ms to 8 ready workers",
            "2.50 s wall, 2.0 ops/s",
            "p50 300  p95 500  p99 500  max 500",
            "5 started: 3 ok, 1 failed, 0 hung, 0 lost",
            "command 2, global_program 1, session_program 2",
            "failures     worker_exited 1",
            "1 workers killed (1 strikes found no target, 0 failed)",
            "8/8 ready at the end; 10 spawned, 2 replaced",
            "72.7 % of session calls served by their bound worker (hits 8, misses 2, spills 1)",
            "verdict      PASS",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn a_failed_verdict_is_printed_with_its_problems() {
        let short = PoolSummary {
            ready_at_end: 7,
            ..full_pool()
        };
        let text = report(&synthetic_tally(), short).to_string();
        assert!(text.contains("verdict      FAIL"), "{text}");
        assert!(text.contains("- 1 request(s) got a wrong result"), "{text}");
        assert!(text.contains("wrong result: expected 168, got 0"), "{text}");
    }
}

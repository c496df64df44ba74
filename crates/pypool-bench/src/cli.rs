//! The command line of `pypool-bench` (what `cargo xtask bench` forwards).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Measures pypool against its peers, each workload with its baselines in
/// the same run, and writes `report.md` and `report.json`.
#[derive(Debug, Clone, Parser)]
#[command(name = "pypool-bench", version)]
pub struct Args {
    /// Short durations (the whole run in about a minute or two).
    #[arg(long)]
    pub quick: bool,
    /// How long the fake LM takes to answer each completion, ms.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub lm_latency_ms: u64,
    /// Run only this workload (repeat for several; default: all).
    #[arg(long, value_name = "WORKLOAD", value_enum)]
    pub only: Vec<WorkloadId>,
    /// The Python interpreter for workers and baselines (`cargo xtask bench`
    /// passes the project's `.venv`, which has DSPy).
    #[arg(long, env = "PYPOOL_BENCH_PYTHON", default_value = "python3")]
    pub python: String,
    /// The folder holding the Python baseline scripts (`python/bench`).
    #[arg(long, value_name = "DIR", default_value_os_t = default_scripts())]
    pub scripts: PathBuf,
    /// Where `report.md`, `report.json` and the SVG charts go.
    #[arg(long, value_name = "DIR", default_value_os_t = default_out())]
    pub out: PathBuf,
    /// After the run, rewrite the measurements table of this README between
    /// its `<!-- bench:start -->` and `<!-- bench:end -->` markers
    /// (`cargo xtask bench --update-readme` passes the project's README.md).
    #[arg(long, value_name = "FILE")]
    pub update_readme: Option<PathBuf>,
}

/// The workloads, by the name `--only` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum WorkloadId {
    /// DSPy `Predict` against a fake LM: pypool vs one process (threads, asyncio).
    Lm,
    /// Built-in `ping` throughput vs `multiprocessing.Pool`, `ProcessPoolExecutor`, a raw pipe.
    Noop,
    /// The facade on instant in-process mock workers: throughput and one caller's p50.
    Facade,
    /// One caller's ping latency through the pool and `pypool-process` vs a raw framed pipe.
    Ping,
    /// Start-up of 1, 8 and 64 workers vs sequential starts and Python's forkserver.
    Startup,
    /// Time from a worker's SIGKILL until the pool answers on its replacement.
    Replacement,
    /// No-op throughput with a SIGKILL every 1,000 requests vs without.
    Chaos,
    /// Proportional set size (PSS) of 8 workers vs the forkserver's.
    Memory,
}

impl WorkloadId {
    /// Every workload, in the order they run.
    pub const ALL: [WorkloadId; 8] = [
        WorkloadId::Lm,
        WorkloadId::Noop,
        WorkloadId::Facade,
        WorkloadId::Ping,
        WorkloadId::Startup,
        WorkloadId::Replacement,
        WorkloadId::Chaos,
        WorkloadId::Memory,
    ];

    /// The name `--only` takes and the report uses.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadId::Lm => "lm",
            WorkloadId::Noop => "noop",
            WorkloadId::Facade => "facade",
            WorkloadId::Ping => "ping",
            WorkloadId::Startup => "startup",
            WorkloadId::Replacement => "replacement",
            WorkloadId::Chaos => "chaos",
            WorkloadId::Memory => "memory",
        }
    }
}

/// How long or how many, per workload; `--quick` scales everything down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Timed window of each LM-bound contestant.
    pub lm_window: Duration,
    /// Timed window of each no-op contestant.
    pub noop_window: Duration,
    /// Timed window of the facade throughput run.
    pub facade_window: Duration,
    /// Sequential calls for the facade's one-caller latency.
    pub facade_sequential: u64,
    /// Sequential pings per contestant of the ping-latency workload.
    pub pings: u64,
    /// Timed window of each point of the throughput-vs-concurrency curve.
    pub scaling_window: Duration,
    /// Worker counts of the start-up workload, stdlib workers.
    pub startup_stdlib: &'static [usize],
    /// Worker counts of the start-up workload, DSPy-preloaded workers.
    pub startup_dspy: &'static [usize],
    /// The start-up baseline of interpreters started one after another runs
    /// up to this many stdlib interpreters (it takes N times one).
    pub sequential_max_stdlib: usize,
    /// The same for DSPy-preloaded interpreters.
    pub sequential_max_dspy: usize,
    /// SIGKILLs (each followed by its replacement) per replacement contestant.
    pub replacements: u64,
    /// Timed window of each chaos contestant.
    pub chaos_window: Duration,
}

impl Plan {
    /// The full or the quick plan.
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                lm_window: Duration::from_secs(3),
                noop_window: Duration::from_secs(2),
                facade_window: Duration::from_secs(1),
                facade_sequential: 20_000,
                pings: 1_500,
                scaling_window: Duration::from_millis(300),
                startup_stdlib: &[1, 8, 64],
                startup_dspy: &[1, 8],
                sequential_max_stdlib: 8,
                sequential_max_dspy: 1,
                replacements: 3,
                chaos_window: Duration::from_secs(2),
            }
        } else {
            Self {
                lm_window: Duration::from_secs(10),
                noop_window: Duration::from_secs(5),
                facade_window: Duration::from_secs(5),
                facade_sequential: 200_000,
                pings: 6_000,
                scaling_window: Duration::from_secs(2),
                startup_stdlib: &[1, 8, 64],
                startup_dspy: &[1, 8, 64],
                sequential_max_stdlib: 64,
                sequential_max_dspy: 64,
                replacements: 10,
                chaos_window: Duration::from_secs(5),
            }
        }
    }
}

impl Args {
    /// The workloads to run, in run order.
    pub fn selected(&self) -> Vec<WorkloadId> {
        WorkloadId::ALL
            .into_iter()
            .filter(|id| self.only.is_empty() || self.only.contains(id))
            .collect()
    }
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or(manifest.clone(), PathBuf::from)
}

fn default_scripts() -> PathBuf {
    workspace_root().join("python").join("bench")
}

fn default_out() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
        .join("bench")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_everything_at_100_ms() {
        let args = Args::try_parse_from(["pypool-bench"]).expect("no arguments parse");
        assert!(!args.quick);
        assert_eq!(args.lm_latency_ms, 100);
        assert_eq!(args.selected(), WorkloadId::ALL.to_vec());
        assert!(args.scripts.ends_with("python/bench"));
        assert!(args.out.ends_with("bench"));
        assert_eq!(args.update_readme, None);
    }

    #[test]
    fn quick_latency_and_only_are_read() {
        let args = Args::try_parse_from([
            "pypool-bench",
            "--quick",
            "--lm-latency-ms",
            "250",
            "--only",
            "ping",
            "--only",
            "noop",
            "--python",
            "/venv/bin/python",
            "--update-readme",
            "/repo/README.md",
        ])
        .expect("the arguments parse");
        assert!(args.quick);
        assert_eq!(args.lm_latency_ms, 250);
        assert_eq!(args.selected(), vec![WorkloadId::Noop, WorkloadId::Ping]);
        assert_eq!(args.python, "/venv/bin/python");
        assert_eq!(args.update_readme, Some(PathBuf::from("/repo/README.md")));
    }

    #[test]
    fn bad_arguments_are_refused() {
        for bad in [
            vec!["pypool-bench", "--only", "everything"],
            vec!["pypool-bench", "--lm-latency-ms", "soon"],
            vec!["pypool-bench", "--fast"],
        ] {
            assert!(Args::try_parse_from(&bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn quick_is_shorter_in_every_dimension() {
        let (quick, full) = (Plan::new(true), Plan::new(false));
        assert!(quick.lm_window < full.lm_window);
        assert!(quick.noop_window < full.noop_window);
        assert!(quick.facade_window < full.facade_window);
        assert!(quick.facade_sequential < full.facade_sequential);
        assert!(quick.pings < full.pings);
        assert!(quick.scaling_window < full.scaling_window);
        assert!(quick.startup_dspy.len() <= full.startup_dspy.len());
        assert!(quick.replacements < full.replacements);
        assert!(quick.chaos_window < full.chaos_window);
    }

    #[test]
    fn workload_names_match_the_value_names() {
        for id in WorkloadId::ALL {
            let parsed = WorkloadId::from_str(id.name(), false).expect("a known name");
            assert_eq!(parsed, id);
        }
    }
}

//! The command line, as clap parses it.
//!
//! Every option that can also come from the environment or `pypool.toml` is
//! an `Option` (or an empty list) here, so [`crate::options`] can tell "not
//! given" from "given" and apply the precedence flag > environment > file >
//! default. clap itself covers the first two: an `env = "PYPOOL_…"` value is
//! used only when the flag is absent.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `pypool`: run and inspect supervised pools of Python workers.
#[derive(Debug, Clone, Parser)]
#[command(name = "pypool", version, about, long_about = None)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes (they may come before or after it).
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// The settings file [default: ./pypool.toml when it exists].
    #[arg(long, global = true, env = "PYPOOL_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log level or filter for stderr logs (`error`, `warn`, `info`, `debug`,
    /// `trace`, or an EnvFilter directive) [default: RUST_LOG, else warn].
    #[arg(long, global = true, env = "PYPOOL_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Serves the pool's metrics for Prometheus at http://HOST:PORT/ while running.
    #[arg(
        long,
        global = true,
        env = "PYPOOL_METRICS_ADDR",
        value_name = "HOST:PORT"
    )]
    pub metrics_addr: Option<String>,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Start a pool and run a mixed workload against it, optionally killing
    /// workers, then report throughput, latency and failures.
    Stress(StressArgs),
    /// Start a pool, run one command and print its result as JSON.
    Call(CallArgs),
    /// Check that the Python environment can run workers.
    Doctor(DoctorArgs),
    /// Print the effective settings (flags > environment > pypool.toml > defaults) as JSON.
    ShowConfig(ShowConfigArgs),
}

/// Where the Python interpreter and the worker runtime are.
#[derive(Debug, Clone, Default, Args)]
pub struct PythonArgs {
    /// The Python interpreter, a name on PATH or a path [default: python3].
    #[arg(long = "python", env = "PYPOOL_PYTHON", value_name = "INTERPRETER")]
    pub interpreter: Option<String>,
    /// A folder prepended to the workers' PYTHONPATH (repeatable, or
    /// `:`-separated): handler packages, or a `pypool_worker` checkout to
    /// use instead of the embedded runtime.
    #[arg(
        long = "python-path",
        env = "PYPOOL_PYTHON_PATH",
        value_name = "DIR",
        value_delimiter = ':'
    )]
    pub python_path: Vec<PathBuf>,
    /// Which host environment variables workers get: `inherit` (all, the
    /// default) or `clear` (only PATH, HOME, LANG/LC_*, PYTHON*, TZ, TMPDIR
    /// and the `--pass-env` names).
    #[arg(long, env = "PYPOOL_ENV_POLICY", value_name = "POLICY", value_parser = ["inherit", "clear"])]
    pub env_policy: Option<String>,
    /// A host environment variable workers get under `--env-policy clear`
    /// (repeatable, or `,`-separated; `NAME_*` is a prefix), e.g. OPENAI_API_KEY.
    #[arg(
        long,
        env = "PYPOOL_PASS_ENV",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub pass_env: Vec<String>,
    /// How workers start: `fork` (from a template process that imported the
    /// handlers and preloads once; the default on Linux) or `spawn` (each
    /// worker its own interpreter).
    #[arg(long, env = "PYPOOL_START_MODE", value_name = "MODE", value_parser = ["fork", "spawn"])]
    pub start_mode: Option<String>,
    /// A library every worker imports at start rather than on first use
    /// (repeatable, or `,`-separated), e.g. `dspy`.
    #[arg(
        long,
        env = "PYPOOL_PRELOAD",
        value_name = "MODULE",
        value_delimiter = ','
    )]
    pub preload: Vec<String>,
}

/// How the pool is built.
#[derive(Debug, Clone, Default, Args)]
pub struct PoolArgs {
    /// Where Python comes from.
    #[command(flatten)]
    pub python: PythonArgs,
    /// How many workers the pool keeps [default: 8 for stress, 1 for call].
    #[arg(long, env = "PYPOOL_WORKERS", value_name = "N", value_parser = positive)]
    pub workers: Option<usize>,
    /// A handler module (`pkg.module`) or `.py` file every worker imports
    /// (repeatable, or `,`-separated).
    #[arg(
        long = "handlers",
        visible_alias = "handler",
        env = "PYPOOL_HANDLERS",
        value_name = "MODULE_OR_FILE",
        value_delimiter = ','
    )]
    pub handlers: Vec<String>,
    /// How long one request may run on a worker, in seconds, before the
    /// worker is killed and replaced [default: 10 for stress, 60 for call].
    #[arg(long, env = "PYPOOL_REQUEST_TIMEOUT", value_name = "SECONDS", value_parser = seconds)]
    pub request_timeout: Option<f64>,
    /// A store shared by several pool hosts for programs, session data and
    /// affinity: `redis://[[user]:password@]host[:port][/db]` or `rediss://…`
    /// (TLS) [default: in this process's memory].
    #[arg(long, env = "PYPOOL_STORE", value_name = "URL")]
    pub store: Option<String>,
}

/// `pypool stress`.
#[derive(Debug, Clone, Default, Args)]
pub struct StressArgs {
    /// How the pool is built (`--handlers` adds modules to the bundled
    /// `pypool_worker.demo`).
    #[command(flatten)]
    pub pool: PoolArgs,
    /// How many requests to run [default: 2000].
    #[arg(long, env = "PYPOOL_REQUESTS", value_name = "N", value_parser = positive_u64)]
    pub requests: Option<u64>,
    /// How many requests run at once [default: 64].
    #[arg(long, env = "PYPOOL_CONCURRENCY", value_name = "N", value_parser = positive)]
    pub concurrency: Option<usize>,
    /// How many sessions, each with its own program [default: 16; 0 for none].
    #[arg(long, env = "PYPOOL_SESSIONS", value_name = "N")]
    pub sessions: Option<usize>,
    /// SIGKILL a random worker after every N completed requests [default: never].
    #[arg(long, env = "PYPOOL_KILL_EVERY", value_name = "N", value_parser = positive_u64)]
    pub kill_every: Option<u64>,
    /// Seed of the workload mix and the chaos [default: random, printed in the report].
    #[arg(long, env = "PYPOOL_SEED", value_name = "N")]
    pub seed: Option<u64>,
    /// Replaces the plain-command part of the workload with this command
    /// (its results are not checked).
    #[arg(long, env = "PYPOOL_STRESS_COMMAND", value_name = "NAME")]
    pub command: Option<String>,
    /// Keyword arguments for `--command`, a JSON object [default: {}].
    #[arg(long, value_name = "JSON", requires = "command")]
    pub args: Option<String>,
    /// Prints the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// How many pool hosts share `--store`: with 2 or more, this process
    /// creates the programs and child `pypool` processes (one pool each)
    /// run them, and the report gives the cross-host success rate [default: 1].
    #[arg(long, env = "PYPOOL_HOSTS", value_name = "N", value_parser = positive)]
    pub hosts: Option<usize>,
    /// Internal: run as an executing host of the `--hosts` run with this id.
    #[arg(long, hide = true, value_name = "RUN")]
    pub executor_for: Option<String>,
}

/// `pypool call`.
#[derive(Debug, Clone, Default, Args)]
pub struct CallArgs {
    /// The command to run (e.g. `demo.primes`, or the built-in `ping`/`info`).
    #[arg(value_name = "COMMAND")]
    pub command: String,
    /// How the pool is built.
    #[command(flatten)]
    pub pool: PoolArgs,
    /// The command's keyword arguments, a JSON object.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub args: String,
    /// Pretty-prints the JSON output.
    #[arg(long)]
    pub pretty: bool,
}

/// `pypool doctor`.
#[derive(Debug, Clone, Default, Args)]
pub struct DoctorArgs {
    /// Where Python comes from.
    #[command(flatten)]
    pub python: PythonArgs,
    /// Prints the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `pypool show-config`: the settings every subcommand would use.
#[derive(Debug, Clone, Default, Args)]
pub struct ShowConfigArgs {
    /// As `stress` and `call` take them.
    #[command(flatten)]
    pub pool: PoolArgs,
}

/// A count of at least one.
fn positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(value) => Ok(value),
        Err(error) => Err(error.to_string()),
    }
}

/// A `u64` count of at least one.
fn positive_u64(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(value) => Ok(value),
        Err(error) => Err(error.to_string()),
    }
}

/// A positive, finite number of seconds.
pub(crate) fn seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 && value < 1e9 => Ok(value),
        Ok(_) => Err("must be a positive number of seconds".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn stress_flags_parse() {
        let cli = Cli::try_parse_from([
            "pypool",
            "stress",
            "--workers",
            "3",
            "--requests",
            "10",
            "--kill-every",
            "5",
            "--handlers",
            "a.py,b",
            "--handlers",
            "c",
            "--python-path",
            "/x:/y",
            "--command",
            "demo.primes",
            "--args",
            r#"{"limit": 10}"#,
            "--json",
            "--log-level",
            "debug",
        ])
        .unwrap();
        let Command::Stress(stress) = cli.command else {
            panic!("not stress");
        };
        assert_eq!(stress.pool.workers, Some(3));
        assert_eq!(stress.requests, Some(10));
        assert_eq!(stress.kill_every, Some(5));
        assert_eq!(stress.pool.handlers, ["a.py", "b", "c"]);
        assert_eq!(
            stress.pool.python.python_path,
            [PathBuf::from("/x"), PathBuf::from("/y")]
        );
        assert_eq!(stress.command.as_deref(), Some("demo.primes"));
        assert!(stress.json);
        assert_eq!(cli.global.log_level.as_deref(), Some("debug"));
    }

    #[test]
    fn zero_workers_and_args_without_command_are_refused() {
        assert!(Cli::try_parse_from(["pypool", "stress", "--workers", "0"]).is_err());
        assert!(Cli::try_parse_from(["pypool", "stress", "--args", "{}"]).is_err());
        assert!(Cli::try_parse_from(["pypool", "call", "x", "--request-timeout", "-1"]).is_err());
    }

    #[test]
    fn call_takes_a_command_and_global_flags_after_it() {
        let cli = Cli::try_parse_from([
            "pypool",
            "call",
            "demo.primes",
            "--handlers",
            "/tmp/h.py",
            "--args",
            r#"{"limit": 100}"#,
            "--metrics-addr",
            "127.0.0.1:9100",
        ])
        .unwrap();
        let Command::Call(call) = cli.command else {
            panic!("not call");
        };
        assert_eq!(call.command, "demo.primes");
        assert_eq!(call.pool.handlers, ["/tmp/h.py"]);
        assert_eq!(call.args, r#"{"limit": 100}"#);
        assert_eq!(cli.global.metrics_addr.as_deref(), Some("127.0.0.1:9100"));
    }
}

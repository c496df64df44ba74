//! # pypool-cli
//!
//! The `pypool` command, a thin operator's tool on top of the `pypool`
//! facade:
//!
//! * `pypool stress` starts a pool with an indicatif progress bar, runs a
//!   mixed workload (session programs, global programs, plain commands) with
//!   bounded concurrency and optional chaos (SIGKILL a worker every N
//!   requests), checks results, accounts for every request (none may hang or
//!   be lost) and prints a report (human or `--json`) with throughput,
//!   latency percentiles, failures by kind, replacements and session
//!   affinity (from [`pypool::Status`] counters). Exit status 1 when a
//!   request hung, was lost or got a wrong result, or the pool did not end
//!   at full size.
//!   With `--store redis://…` the pool keeps programs, session data and
//!   affinity in Redis; `--hosts N` runs N pool hosts on that store as N
//!   processes (this one creates programs, child `pypool` processes run
//!   them: [`stress::hosts`]) and reports the cross-host success rate.
//! * `pypool call COMMAND --args JSON` runs one command on a small pool and
//!   prints its result (or a typed error) as JSON (`--store` too).
//! * `pypool doctor` prints [`pypool::check_environment`]'s report.
//! * `pypool show-config` prints the effective settings (flags over
//!   environment variables over `pypool.toml` over defaults).
//!
//! Options come from flags, `PYPOOL_*` environment variables and an optional
//! `pypool.toml` ([`config_file`]), resolved in [`options`].
//!
//! Why the layering is written out rather than delegated to a layering
//! crate (figment, config): clap's `env` already gives flags over
//! environment variables, and what is left — `pypool.toml` under both, with
//! per-option defaults that depend on the subcommand (8 workers for
//! `stress`, 1 for `call`), errors that name the file, line and key, and
//! `show-config` printing where each value came from — is most of the code
//! either way. A layering crate would merge untyped maps and lose the
//! per-value source and the precise errors, for little less code; the
//! layering stays hand-written, in one place, with a test per layer
//! (`tests/precedence.rs`).
//! `--metrics-addr` serves the facade's metrics for Prometheus
//! ([`metrics_endpoint`]); logs go to stderr ([`logging`]), so `--json`
//! output on stdout stays clean.
//!
//! This crate knows the `pypool` facade, `pypool-redis` (to build shared
//! stores from `--store`), clap, indicatif, hdrhistogram and the Prometheus
//! exporter. It must not know frames, `tokio::process` or the
//! policy crates' internals: everything it does with workers goes through
//! [`pypool::Pool`], [`pypool::Session`] and [`pypool::Status`]. The one
//! exception is the chaos monkey of `stress`, which sends SIGKILL to a
//! worker's pid as reported by [`pypool::WorkerStatus::pid`] (the process
//! the pool spawned for it).
//!
//! SIGINT and SIGTERM ([`interrupt`]): the first stops gracefully (no new
//! request, in-flight ones finish within a deadline, a report of what was cut
//! short, exit status 130 or 143), the second stops at once.

pub mod app;
pub mod args;
pub mod call;
pub mod config_file;
pub mod doctor;
pub mod interrupt;
pub mod logging;
pub mod metrics_endpoint;
pub mod options;
pub mod pool_setup;
pub mod stress;

//! The pool's metrics, through the `metrics` crate facade. Install any
//! recorder (for example `metrics-exporter-prometheus`) to collect them; with
//! none installed they cost next to nothing. Every metric carries a `pool`
//! label with the pool's name.
//!
//! Label values come from bounded sets only, so a long-running host keeps a
//! fixed number of series: a `command` label is a command some worker
//! announced in its handshake, [`labels::PROGRAM`] for every program (global
//! or a session's; program ids are not labels), or [`labels::OTHER`] for a
//! name no worker registered (a typo, or a caller's input).
//!
//! Durations are histograms in seconds; an exporter chooses their buckets
//! (the `pypool` command exports Prometheus histograms with buckets from
//! 100 µs to 60 s, so several hosts can be aggregated).

use std::time::Duration;

use pypool_breaker::BreakerState;
use pypool_lifecycle::RecycleReason;
use pypool_seam::WorkerExit;

/// Metric names, for dashboards and tests.
pub mod names {
    /// Histogram (seconds): time a request waited for a worker.
    pub const CHECKOUT_WAIT: &str = "pypool_checkout_wait_seconds";
    /// Histogram (seconds): time from sending a request to its outcome; labels `command` (see [`labels`](super::labels)), `outcome` (`ok`/`error`).
    pub const REQUEST_DURATION: &str = "pypool_request_duration_seconds";
    /// Counter: requests that ended in an error; labels `command` (see [`labels`](super::labels)), `kind`.
    pub const REQUEST_ERRORS: &str = "pypool_request_errors_total";
    /// Counter: spawn attempts; label `result` (`ok`/`error`).
    pub const SPAWNS: &str = "pypool_spawns_total";
    /// Counter: worker processes that ended on their own; label `reason` (`code_N`/`signal_N`).
    pub const EXITS: &str = "pypool_worker_exits_total";
    /// Counter: workers removed after a failure and replaced.
    pub const REPLACEMENTS: &str = "pypool_replacements_total";
    /// Counter: workers recycled; label `reason` (`max_requests`/`max_age`/`max_memory`).
    pub const RECYCLES: &str = "pypool_recycles_total";
    /// Gauge: breaker state (0 closed, 1 half-open, 2 open); label `breaker` (`spawn`, or a `command` label value: see [`labels`](super::labels)).
    pub const BREAKER_STATE: &str = "pypool_breaker_state";
    /// Gauge: requests waiting for a worker.
    pub const QUEUE_DEPTH: &str = "pypool_queue_depth";
    /// Counter: session calls by affinity outcome; label `result` (`hit`: served by the bound worker, `miss`: unbound or its worker gone, `spill`: hint mode ran elsewhere because the bound worker stayed busy).
    pub const AFFINITY: &str = "pypool_affinity_total";
    /// Gauge: workers by state; label `state` (`starting`, `ready`, `busy`, `degraded`, `draining`).
    pub const WORKERS: &str = "pypool_workers";
}

/// The fixed `command` label values besides registered command names.
pub mod labels {
    /// `command` label of every program run, global or a session's.
    pub const PROGRAM: &str = "program";
    /// `command` label of a command no worker announced in its handshake.
    pub const OTHER: &str = "other";
}

/// Records a request's duration; `command` is a `command` label value.
pub(crate) fn request_duration(pool: &str, command: String, took: Duration, ok: bool) {
    metrics::histogram!(
        names::REQUEST_DURATION,
        "pool" => pool.to_owned(),
        "command" => command,
        "outcome" => if ok { "ok" } else { "error" }
    )
    .record(took.as_secs_f64());
}

/// Counts a failed request; `command` is a `command` label value.
pub(crate) fn request_failed(pool: &str, command: String, kind: &'static str) {
    metrics::counter!(
        names::REQUEST_ERRORS,
        "pool" => pool.to_owned(),
        "command" => command,
        "kind" => kind
    )
    .increment(1);
}

pub(crate) fn spawned(pool: &str, ok: bool) {
    metrics::counter!(names::SPAWNS, "pool" => pool.to_owned(), "result" => if ok { "ok" } else { "error" })
        .increment(1);
}

pub(crate) fn worker_exit(pool: &str, exit: &WorkerExit) {
    let reason = match (exit.code, exit.signal) {
        (_, Some(signal)) => format!("signal_{signal}"),
        (Some(code), None) => format!("code_{code}"),
        (None, None) => "unknown".to_owned(),
    };
    metrics::counter!(names::EXITS, "pool" => pool.to_owned(), "reason" => reason).increment(1);
}

pub(crate) fn replaced(pool: &str) {
    metrics::counter!(names::REPLACEMENTS, "pool" => pool.to_owned()).increment(1);
}

pub(crate) fn recycled(pool: &str, reason: &RecycleReason) {
    let reason = match reason {
        RecycleReason::MaxRequests { .. } => "max_requests",
        RecycleReason::MaxAge { .. } => "max_age",
        RecycleReason::MaxMemory { .. } => "max_memory",
    };
    metrics::counter!(names::RECYCLES, "pool" => pool.to_owned(), "reason" => reason).increment(1);
}

/// Sets a breaker's state gauge; `breaker` is `spawn` or a `command` label value.
pub(crate) fn breaker_state(pool: &str, breaker: &str, state: BreakerState) {
    let value = match state {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    };
    metrics::gauge!(names::BREAKER_STATE, "pool" => pool.to_owned(), "breaker" => breaker.to_owned()).set(value);
}

pub(crate) fn affinity(pool: &str, result: &'static str) {
    metrics::counter!(names::AFFINITY, "pool" => pool.to_owned(), "result" => result).increment(1);
}

/// The handles of the metrics every request touches, registered once when
/// the pool is built (with the recorder installed then) so the request path
/// builds no metric keys.
#[derive(Debug)]
pub(crate) struct Handles {
    workers: [metrics::Gauge; 5],
    queue_depth: metrics::Gauge,
    checkout_wait: metrics::Histogram,
}

impl Handles {
    pub(crate) fn new(pool: &str) -> Self {
        let gauge = |label: &'static str| metrics::gauge!(names::WORKERS, "pool" => pool.to_owned(), "state" => label);
        Self {
            workers: [
                gauge("starting"),
                gauge("ready"),
                gauge("busy"),
                gauge("degraded"),
                gauge("draining"),
            ],
            queue_depth: metrics::gauge!(names::QUEUE_DEPTH, "pool" => pool.to_owned()),
            checkout_wait: metrics::histogram!(names::CHECKOUT_WAIT, "pool" => pool.to_owned()),
        }
    }

    pub(crate) fn queue_depth(&self, depth: usize) {
        self.queue_depth.set(depth as f64);
    }

    pub(crate) fn checkout_wait(&self, waited: Duration) {
        self.checkout_wait.record(waited.as_secs_f64());
    }

    /// Sets the worker gauges from the counts by state (starting, ready,
    /// busy, degraded, draining).
    pub(crate) fn publish_gauges(&self, counts: [usize; 5]) {
        for (gauge, count) in self.workers.iter().zip(counts) {
            gauge.set(count as f64);
        }
    }
}

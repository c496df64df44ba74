//! Counting what happened to every request: started, ended (with its
//! latency and success or failure kind), hung (its guard fired) or lost
//! (its task vanished without an outcome).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::workload::OpKind;

/// The highest latency the histogram tracks exactly (one hour, in µs);
/// anything longer is recorded as this.
const HIGHEST_MICROS: u64 = 3_600_000_000;
/// How many wrong results are kept as examples for the report.
const EXAMPLES: usize = 3;

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestEnd {
    /// It ended (with a result or an error) after `latency`.
    Ended {
        /// Its part of the mix.
        kind: OpKind,
        /// From its start to its end.
        latency: Duration,
        /// `Ok`, or the failure kind (a [`pypool::PoolError::kind`], or
        /// `wrong_result`) and a description.
        outcome: Result<(), (String, String)>,
    },
    /// It had not ended when its guard fired.
    Hung {
        /// Its part of the mix.
        kind: OpKind,
    },
}

/// Running totals of a stress run.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Requests spawned.
    pub started: u64,
    /// Requests that ended, with a result or an error.
    pub ended: u64,
    /// Requests that ended with a correct result.
    pub succeeded: u64,
    /// Failed requests by kind.
    pub failures: BTreeMap<String, u64>,
    /// Requests whose guard fired.
    pub hung: u64,
    /// Requests whose task ended without an outcome (it panicked).
    pub vanished: u64,
    /// Requests started, by part of the mix.
    pub mix: BTreeMap<OpKind, u64>,
    /// Latencies of ended requests, in microseconds.
    pub latency: Histogram<u64>,
    /// The first few wrong results, for the report.
    pub wrong_result_examples: Vec<String>,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    /// Nothing counted yet.
    pub fn new() -> Self {
        Self {
            started: 0,
            ended: 0,
            succeeded: 0,
            failures: BTreeMap::new(),
            hung: 0,
            vanished: 0,
            mix: BTreeMap::new(),
            latency: new_histogram(),
            wrong_result_examples: Vec::new(),
        }
    }

    /// A request of `kind` was started.
    pub fn start(&mut self, kind: OpKind) {
        self.started += 1;
        *self.mix.entry(kind).or_default() += 1;
    }

    /// A request ended as `end`.
    pub fn finish(&mut self, end: RequestEnd) {
        match end {
            RequestEnd::Ended {
                latency, outcome, ..
            } => {
                self.ended += 1;
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency
                    .saturating_record(micros.clamp(1, HIGHEST_MICROS));
                match outcome {
                    Ok(()) => self.succeeded += 1,
                    Err((kind, detail)) => {
                        if kind == super::check::WRONG_RESULT
                            && self.wrong_result_examples.len() < EXAMPLES
                        {
                            self.wrong_result_examples.push(detail);
                        }
                        *self.failures.entry(kind).or_default() += 1;
                    }
                }
            }
            RequestEnd::Hung { .. } => self.hung += 1,
        }
    }

    /// A request's task vanished without saying how it ended.
    pub fn vanish(&mut self) {
        self.vanished += 1;
    }

    /// Requests that failed (ended with an error or a wrong result).
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    /// Requests with a known end: ended or hung.
    pub fn accounted(&self) -> u64 {
        self.ended + self.hung
    }

    /// Requests started but never accounted for.
    pub fn lost(&self) -> u64 {
        self.started.saturating_sub(self.accounted())
    }
}

/// An empty latency histogram (1 µs to one hour, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds (low >= 1, high >= 2 * low, sigfig <= 5).
    Histogram::new_with_bounds(1, HIGHEST_MICROS, 3).expect("valid histogram bounds")
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Requests measured.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// The slowest.
    pub max: u64,
    /// The mean.
    pub mean: f64,
}

impl LatencySummary {
    /// The summary of `histogram` (all zero when it is empty).
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.50),
            p95: histogram.value_at_quantile(0.95),
            p99: histogram.value_at_quantile(0.99),
            max: histogram.max(),
            mean: histogram.mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(micros: u64, outcome: Result<(), (&str, &str)>) -> RequestEnd {
        RequestEnd::Ended {
            kind: OpKind::Command,
            latency: Duration::from_micros(micros),
            outcome: outcome.map_err(|(kind, detail)| (kind.to_owned(), detail.to_owned())),
        }
    }

    #[test]
    fn percentiles_of_one_to_a_thousand() {
        let mut tally = Tally::new();
        for micros in 1..=1000 {
            tally.start(OpKind::Command);
            tally.finish(ended(micros, Ok(())));
        }
        let summary = LatencySummary::of(&tally.latency);
        assert_eq!(summary.count, 1000);
        // hdrhistogram keeps 3 significant digits: exact at this range.
        assert_eq!(summary.p50, 500);
        assert_eq!(summary.p95, 950);
        assert_eq!(summary.p99, 990);
        assert_eq!(summary.max, 1000);
        assert!((summary.mean - 500.5).abs() < 1.0, "{}", summary.mean);
    }

    #[test]
    fn large_latencies_keep_three_significant_digits() {
        let mut histogram = new_histogram();
        histogram.saturating_record(1_234_567);
        let max = LatencySummary::of(&histogram).max;
        assert!(max.abs_diff(1_234_567) <= 1_234_567 / 1000, "{max}");
        assert_eq!(
            LatencySummary::of(&new_histogram()),
            LatencySummary::default()
        );
    }

    #[test]
    fn every_request_is_accounted_for_or_lost() {
        let mut tally = Tally::new();
        for _ in 0..6 {
            tally.start(OpKind::SessionProgram);
        }
        tally.finish(ended(10, Ok(())));
        tally.finish(ended(10, Err(("worker_exited", "worker 3 was killed"))));
        tally.finish(ended(10, Err(("wrong_result", "expected 168, got 167"))));
        tally.finish(RequestEnd::Hung {
            kind: OpKind::SessionProgram,
        });
        tally.vanish();
        assert_eq!(tally.succeeded, 1);
        assert_eq!(tally.failed(), 2);
        assert_eq!(tally.hung, 1);
        assert_eq!(tally.accounted(), 4);
        // One vanished, one never reported at all.
        assert_eq!(tally.lost(), 2);
        assert_eq!(tally.wrong_result_examples, ["expected 168, got 167"]);
        assert_eq!(tally.mix[&OpKind::SessionProgram], 6);
    }
}

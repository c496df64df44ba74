//! The breaker against a plain reference model, over random sequences of
//! admissions, outcomes, cancellations and clock moves.
//!
//! The model keeps every call as a timestamp and recomputes the rolling window
//! from the whole list on each failure, so it shares no code or data structure
//! with the bucket ring it checks.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use pypool_breaker::{
    BUCKETS_PER_WINDOW, BreakerConfig, BreakerSnapshot, BreakerState, CallOutcome, CircuitBreaker,
    Permit, RateTrip,
};
use pypool_clock::ManualClock;

const CASES: u32 = 2_000;
const MAX_OPS: usize = 80;

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    /// Resolve a permit: `fresh` picks among unresolved ones, otherwise among
    /// all (so permits are sometimes resolved twice).
    Record {
        pick: usize,
        failure: bool,
        fresh: bool,
    },
    Release {
        pick: usize,
        fresh: bool,
    },
    Advance(Duration),
}

/// The model's view of a permit.
#[derive(Debug, Clone, Copy)]
struct Token {
    epoch: u64,
    probe: bool,
    id: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Closed,
    Open { since: u128 },
    HalfOpen { probes: Vec<usize>, successes: u32 },
}

/// The breaker's specification written as plainly as possible; times are
/// nanoseconds since the breaker was created.
#[derive(Debug)]
struct Model {
    trip_after: u32,
    rate: Option<RateTrip>,
    reset: u128,
    probes: usize,
    to_close: u32,
    now: u128,
    mode: Mode,
    epoch: u64,
    in_a_row: u32,
    /// (when, failed) of every call recorded while closed, since the last state change.
    calls: Vec<(u128, bool)>,
    opened_at: Option<u128>,
}

impl Model {
    fn new(config: &BreakerConfig) -> Self {
        Self {
            trip_after: config.consecutive_failures.max(1),
            rate: config.failure_rate,
            reset: config.reset_timeout.as_nanos(),
            probes: config.half_open_probes.max(1) as usize,
            to_close: config.half_open_successes_to_close.max(1),
            now: 0,
            mode: Mode::Closed,
            epoch: 0,
            in_a_row: 0,
            calls: Vec::new(),
            opened_at: None,
        }
    }

    fn change_to(&mut self, mode: Mode) {
        if let Mode::Open { since } = mode {
            self.opened_at = Some(since);
        }
        if mode == Mode::Closed {
            self.in_a_row = 0;
        }
        self.mode = mode;
        self.epoch += 1;
        self.calls.clear();
    }

    fn tick(&mut self) {
        if let Mode::Open { since } = self.mode {
            if self.now - since >= self.reset {
                self.change_to(Mode::HalfOpen {
                    probes: Vec::new(),
                    successes: 0,
                });
            }
        }
    }

    fn state(&mut self) -> BreakerState {
        self.tick();
        match self.mode {
            Mode::Closed => BreakerState::Closed,
            Mode::Open { .. } => BreakerState::Open,
            Mode::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn acquire(&mut self, id: usize) -> Result<Token, Duration> {
        self.tick();
        let epoch = self.epoch;
        match &mut self.mode {
            Mode::Closed => Ok(Token {
                epoch,
                probe: false,
                id,
            }),
            Mode::Open { since } => Err(nanos(self.reset - (self.now - *since))),
            Mode::HalfOpen { probes, .. } if probes.len() < self.probes => {
                probes.push(id);
                Ok(Token {
                    epoch,
                    probe: true,
                    id,
                })
            }
            Mode::HalfOpen { .. } => Err(nanos(self.reset)),
        }
    }

    fn rate_trips(&self) -> bool {
        let Some(rate) = self.rate else {
            return false;
        };
        let width = (rate.window.as_nanos() / u128::from(BUCKETS_PER_WINDOW)).max(1);
        let current = self.now / width;
        let recent: Vec<bool> = self
            .calls
            .iter()
            .filter(|(at, _)| current - at / width < u128::from(BUCKETS_PER_WINDOW))
            .map(|(_, failed)| *failed)
            .collect();
        let total = recent.len() as u32;
        let failed = recent.iter().filter(|f| **f).count() as u32;
        total >= rate.min_calls
            && failed > 0
            && f64::from(failed) >= rate.threshold * f64::from(total)
    }

    fn record(&mut self, token: Token, failure: bool) {
        if token.epoch != self.epoch {
            return;
        }
        match &mut self.mode {
            Mode::Closed => {
                self.calls.push((self.now, failure));
                if failure {
                    self.in_a_row += 1;
                    if self.in_a_row >= self.trip_after || self.rate_trips() {
                        self.change_to(Mode::Open { since: self.now });
                    }
                } else {
                    self.in_a_row = 0;
                }
            }
            Mode::HalfOpen { probes, successes } => {
                if !probes.contains(&token.id) {
                    return;
                }
                probes.retain(|id| *id != token.id);
                if failure {
                    self.in_a_row += 1;
                    self.change_to(Mode::Open { since: self.now });
                } else {
                    *successes += 1;
                    if *successes >= self.to_close {
                        self.change_to(Mode::Closed);
                    }
                }
            }
            Mode::Open { .. } => {}
        }
    }

    fn release(&mut self, token: Token) {
        if token.epoch != self.epoch {
            return;
        }
        if let Mode::HalfOpen { probes, .. } = &mut self.mode {
            probes.retain(|id| *id != token.id);
        }
    }

    fn snapshot(&mut self) -> BreakerSnapshot {
        let state = self.state();
        BreakerSnapshot {
            state,
            consecutive_failures: self.in_a_row,
            open_for: match state {
                BreakerState::Closed => None,
                _ => self.opened_at.map(|at| nanos(self.now - at)),
            },
            retry_after: match self.mode {
                Mode::Open { since } => Some(nanos(self.reset - (self.now - since))),
                _ => None,
            },
            probes_in_flight: match &self.mode {
                Mode::HalfOpen { probes, .. } => probes.len() as u32,
                _ => 0,
            },
        }
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

fn config() -> impl Strategy<Value = BreakerConfig> {
    let rate = prop::option::of(
        (
            prop_oneof![3 => 1_000_000u64..5_000_000_000, 1 => 0u64..40],
            0u32..8,
            prop_oneof![0.0f64..=1.0, Just(1.0), Just(0.5)],
        )
            .prop_map(|(window, min_calls, threshold)| RateTrip {
                window: Duration::from_nanos(window),
                min_calls,
                threshold,
            }),
    );
    (
        // Often too high to trip, so the rolling window decides.
        prop_oneof![0u32..6, Just(1_000)],
        rate,
        prop_oneof![Just(0u64), 1u64..8_000],
        0u32..4,
        0u32..5,
    )
        .prop_map(
            |(consecutive_failures, failure_rate, reset_ms, probes, to_close)| BreakerConfig {
                consecutive_failures,
                failure_rate,
                reset_timeout: Duration::from_millis(reset_ms),
                half_open_probes: probes,
                half_open_successes_to_close: to_close,
            },
        )
}

/// Operations, with clock moves that often land exactly on the reset timeout
/// or on a window bucket boundary.
fn ops(config: BreakerConfig) -> impl Strategy<Value = Vec<Op>> {
    let reset = config.reset_timeout;
    let bucket = config.failure_rate.map_or(Duration::from_secs(1), |rate| {
        rate.window / BUCKETS_PER_WINDOW
    });
    let advance = prop_oneof![
        3 => (0u64..3_000).prop_map(Duration::from_millis),
        1 => Just(reset),
        1 => (1u32..12).prop_map(move |n| bucket * n),
        1 => (0u64..1_000).prop_map(Duration::from_nanos),
    ];
    let op = prop_oneof![
        4 => Just(Op::Acquire),
        4 => (any::<usize>(), any::<bool>(), prop::bool::weighted(0.85))
            .prop_map(|(pick, failure, fresh)| Op::Record { pick, failure, fresh }),
        1 => (any::<usize>(), prop::bool::weighted(0.85))
            .prop_map(|(pick, fresh)| Op::Release { pick, fresh }),
        3 => advance.prop_map(Op::Advance),
    ];
    prop::collection::vec(op, 1..MAX_OPS)
}

fn scenario() -> impl Strategy<Value = (BreakerConfig, Vec<Op>)> {
    config().prop_flat_map(|config| (Just(config), ops(config)))
}

/// One issued permit, as the breaker and the model know it.
struct Issued {
    permit: Permit,
    token: Token,
    resolved: bool,
}

/// Picks an issued permit: among unresolved ones if `fresh`, else among all.
fn choose(issued: &[Issued], pick: usize, fresh: bool) -> Option<usize> {
    let candidates: Vec<usize> = (0..issued.len())
        .filter(|i| !fresh || !issued[*i].resolved)
        .collect();
    if candidates.is_empty() {
        None
    } else {
        Some(candidates[pick % candidates.len()])
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn breaker_agrees_with_the_model((config, ops) in scenario()) {
        let clock = ManualClock::new();
        let mut breaker = CircuitBreaker::new(config, Arc::new(clock.clone()));
        let mut model = Model::new(&config);
        let mut issued: Vec<Issued> = Vec::new();

        for (step, op) in ops.iter().enumerate() {
            match op {
                Op::Acquire => {
                    let real = breaker.try_acquire();
                    let expected = model.acquire(issued.len());
                    match (real, expected) {
                        (Ok(permit), Ok(token)) => {
                            prop_assert_eq!(permit.is_probe(), token.probe, "step {}: {:?}", step, op);
                            issued.push(Issued { permit, token, resolved: false });
                        }
                        (Err(rejected), Err(retry_after)) => {
                            prop_assert_eq!(rejected.retry_after, retry_after, "step {}", step);
                        }
                        (real, expected) => prop_assert!(
                            false,
                            "step {}: breaker {:?}, model {:?}", step, real, expected
                        ),
                    }
                }
                Op::Record { pick, failure, fresh } => {
                    if let Some(i) = choose(&issued, *pick, *fresh) {
                        let outcome = if *failure { CallOutcome::Failure } else { CallOutcome::Success };
                        breaker.record(issued[i].permit, outcome);
                        model.record(issued[i].token, *failure);
                        issued[i].resolved = true;
                    }
                }
                Op::Release { pick, fresh } => {
                    if let Some(i) = choose(&issued, *pick, *fresh) {
                        breaker.release(issued[i].permit);
                        model.release(issued[i].token);
                        issued[i].resolved = true;
                    }
                }
                Op::Advance(by) => {
                    clock.advance(*by);
                    model.now += by.as_nanos();
                }
            }

            let snapshot = breaker.snapshot();
            prop_assert_eq!(snapshot, model.snapshot(), "step {}: after {:?}", step, op);
            prop_assert_eq!(breaker.state(), snapshot.state);
            prop_assert!(
                snapshot.probes_in_flight <= config.half_open_probes.max(1),
                "step {}: {} probes in flight", step, snapshot.probes_in_flight
            );
            // The harness's own count of unresolved probes of the current
            // generation agrees and respects the bound too.
            if snapshot.state == BreakerState::HalfOpen {
                let outstanding = issued
                    .iter()
                    .filter(|p| p.token.probe && !p.resolved && p.token.epoch == model.epoch)
                    .count();
                prop_assert_eq!(outstanding as u32, snapshot.probes_in_flight);
            }
        }
    }
}

//! The circuit breaker.

use std::time::{Duration, Instant};

use pypool_clock::SharedClock;

use crate::window::RollingWindow;
use crate::{BreakerConfig, BreakerSnapshot, BreakerState, CallOutcome, Permit, Rejected};

/// A circuit breaker reading time from an injected clock.
///
/// Not internally synchronised: the owner wraps it in a mutex if several tasks
/// share it. Every method is total (nothing panics, nothing fails except an
/// admission, which is a [`Rejected`] value) and does no I/O.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    clock: SharedClock,
    /// The instant rolling-window offsets are measured from.
    origin: Instant,
    phase: Phase,
    /// Bumped on every state change; permits from another generation are stale.
    generation: u64,
    next_ticket: u64,
    consecutive_failures: u32,
    window: Option<RollingWindow>,
    last_opened: Option<Instant>,
}

#[derive(Debug, Clone)]
enum Phase {
    Closed,
    Open {
        since: Instant,
    },
    HalfOpen {
        /// Tickets of the probes in flight; never more than `half_open_probes`.
        probes: Vec<u64>,
        successes: u32,
    },
}

impl CircuitBreaker {
    /// A closed breaker. Any configuration is accepted (see
    /// [`BreakerConfig::validate`] to reject nonsense early; zero counts are
    /// read as 1).
    pub fn new(config: BreakerConfig, clock: SharedClock) -> Self {
        let config = config.normalized();
        let origin = clock.now();
        Self {
            config,
            clock,
            origin,
            phase: Phase::Closed,
            generation: 0,
            next_ticket: 0,
            consecutive_failures: 0,
            window: config.failure_rate.map(RollingWindow::new),
            last_opened: None,
        }
    }

    /// The configuration as applied (zero counts read as 1).
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Asks to make one call. Closed: always admitted. Open: rejected until
    /// the reset timeout has passed, then the breaker turns half-open.
    /// Half-open: admitted as a probe while fewer than `half_open_probes` are
    /// in flight, rejected otherwise.
    pub fn try_acquire(&mut self) -> Result<Permit, Rejected> {
        let now = self.clock.now();
        self.refresh(now);
        let generation = self.generation;
        let ticket = self.next_ticket;
        match &mut self.phase {
            Phase::Closed => {
                self.next_ticket = ticket.wrapping_add(1);
                Ok(Permit {
                    generation,
                    ticket,
                    probe: false,
                })
            }
            Phase::Open { since } => Err(Rejected {
                retry_after: remaining(self.config.reset_timeout, *since, now),
            }),
            Phase::HalfOpen { probes, .. } => {
                if probes.len() >= slots(self.config.half_open_probes) {
                    return Err(Rejected {
                        retry_after: self.config.reset_timeout,
                    });
                }
                probes.push(ticket);
                self.next_ticket = ticket.wrapping_add(1);
                Ok(Permit {
                    generation,
                    ticket,
                    probe: true,
                })
            }
        }
    }

    /// Records how an admitted call ended. Ignored if the breaker has changed
    /// state since `permit` was issued, or if this probe was already resolved.
    ///
    /// Closed: a success resets the consecutive failures; a failure that
    /// makes `consecutive_failures` in a row, or brings the rolling failure
    /// rate to its threshold, opens the breaker. Half-open: enough successful
    /// probes close it; any failed probe reopens it (and restarts the reset
    /// timeout).
    pub fn record(&mut self, permit: Permit, outcome: CallOutcome) {
        if permit.generation != self.generation {
            return;
        }
        let now = self.clock.now();
        match &mut self.phase {
            Phase::Closed => self.record_closed(now, outcome),
            Phase::HalfOpen { probes, successes } => {
                let Some(position) = probes.iter().position(|t| *t == permit.ticket) else {
                    return;
                };
                probes.swap_remove(position);
                match outcome {
                    CallOutcome::Success => {
                        *successes = successes.saturating_add(1);
                        if *successes >= self.config.half_open_successes_to_close {
                            self.close();
                        }
                    }
                    CallOutcome::Failure => {
                        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                        self.open(now);
                    }
                }
            }
            // An open breaker issues no permits, so none can be current.
            Phase::Open { .. } => {}
        }
    }

    /// Gives a permit back without an outcome (the call was cancelled before
    /// it produced one): it counts as neither success nor failure, and a probe
    /// frees its slot.
    pub fn release(&mut self, permit: Permit) {
        if permit.generation != self.generation {
            return;
        }
        if let Phase::HalfOpen { probes, .. } = &mut self.phase {
            probes.retain(|t| *t != permit.ticket);
        }
    }

    /// The state now (an open breaker whose reset timeout has passed turns
    /// half-open here).
    pub fn state(&mut self) -> BreakerState {
        self.refresh(self.clock.now());
        self.public_state()
    }

    /// A point-in-time view, for status pages and metrics.
    pub fn snapshot(&mut self) -> BreakerSnapshot {
        let now = self.clock.now();
        self.refresh(now);
        let state = self.public_state();
        let open_for = match state {
            BreakerState::Closed => None,
            BreakerState::Open | BreakerState::HalfOpen => self
                .last_opened
                .map(|opened| now.saturating_duration_since(opened)),
        };
        let (retry_after, probes_in_flight) = match &self.phase {
            Phase::Closed => (None, 0),
            Phase::Open { since } => (Some(remaining(self.config.reset_timeout, *since, now)), 0),
            Phase::HalfOpen { probes, .. } => {
                (None, u32::try_from(probes.len()).unwrap_or(u32::MAX))
            }
        };
        BreakerSnapshot {
            state,
            consecutive_failures: self.consecutive_failures,
            open_for,
            retry_after,
            probes_in_flight,
        }
    }

    fn record_closed(&mut self, now: Instant, outcome: CallOutcome) {
        let at = now.saturating_duration_since(self.origin);
        let failed = outcome == CallOutcome::Failure;
        if let Some(window) = &mut self.window {
            window.record(at, failed);
        }
        if !failed {
            self.consecutive_failures = 0;
            return;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let too_many_in_a_row = self.consecutive_failures >= self.config.consecutive_failures;
        let rate_too_high = self.window.as_ref().is_some_and(|w| w.trips(at));
        if too_many_in_a_row || rate_too_high {
            self.open(now);
        }
    }

    /// Turns an open breaker whose reset timeout has passed half-open.
    fn refresh(&mut self, now: Instant) {
        if let Phase::Open { since } = self.phase {
            if now.saturating_duration_since(since) >= self.config.reset_timeout {
                self.enter(Phase::HalfOpen {
                    probes: Vec::new(),
                    successes: 0,
                });
            }
        }
    }

    fn open(&mut self, now: Instant) {
        self.last_opened = Some(now);
        self.enter(Phase::Open { since: now });
    }

    fn close(&mut self) {
        self.consecutive_failures = 0;
        self.enter(Phase::Closed);
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.generation = self.generation.wrapping_add(1);
        if let Some(window) = &mut self.window {
            window.clear();
        }
    }

    fn public_state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// `half_open_probes` as a slot count.
fn slots(probes: u32) -> usize {
    usize::try_from(probes).unwrap_or(usize::MAX)
}

/// How long until `duration` has passed since `since`, at `now`.
fn remaining(duration: Duration, since: Instant, now: Instant) -> Duration {
    duration.saturating_sub(now.saturating_duration_since(since))
}

//! The command breakers: one per announced command and per program (in
//! its namespace, at most [`MAX_PROGRAM_BREAKERS`]), plus one for every
//! command no worker announced — bounded, whatever callers send.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use pypool_breaker::{BreakerState, CallOutcome, CircuitBreaker, Permit, Rejected};
use pypool_seam::WorkerId;

use super::{Core, WaiterToken, WorkerHandle};
use crate::job::JobKey;

/// What a command breaker guards.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum BreakerKey {
    /// A command some worker announced (or the builder declared), or a program.
    Known(JobKey),
    /// Every command no worker announced, together.
    Unknown,
}

/// The most program breakers kept; past it, closed ones are forgotten.
pub(crate) const MAX_PROGRAM_BREAKERS: usize = 4096;

/// How many recently failed workers are remembered (see
/// [`Breakers::charged_exits`]); far more than can end at once.
const CHARGED_EXITS_KEPT: usize = 256;

/// The breakers, by key.
#[derive(Debug, Default)]
pub(super) struct Breakers {
    by_key: HashMap<BreakerKey, CircuitBreaker>,
    /// Workers whose death (exit, broken connection, protocol violation)
    /// has already been counted against a breaker: the other requests that
    /// worker held end with the same failure, but it is one failure of the
    /// worker, not one per request. Bounded; oldest forgotten first.
    charged_exits: VecDeque<WorkerId>,
}

impl Breakers {
    /// Whether this failure of a request on `worker` is the first one of
    /// that worker's death (and so counts): `true` once per worker.
    pub(super) fn charge_worker_death(&mut self, worker: WorkerId) -> bool {
        if self.charged_exits.contains(&worker) {
            return false;
        }
        if self.charged_exits.len() == CHARGED_EXITS_KEPT {
            self.charged_exits.pop_front();
        }
        self.charged_exits.push_back(worker);
        true
    }
}

fn is_program(key: &BreakerKey) -> bool {
    matches!(key, BreakerKey::Known(JobKey::Program { .. }))
}

impl<H: WorkerHandle, T: WaiterToken> Core<H, T> {
    /// Whether `command` was announced by a worker or declared by the builder.
    pub(crate) fn is_known_command(&self, command: &str) -> bool {
        self.idempotent.contains_key(command)
    }

    /// Whether a request keyed `key` may run twice: an idempotent command,
    /// or a global program declared idempotent as `program:<id>`. A
    /// session's program never borrows that declaration.
    pub(crate) fn is_idempotent(&self, key: &JobKey) -> bool {
        match key {
            JobKey::Command(command) => self.idempotent.get(command).copied().unwrap_or(false),
            JobKey::Program { namespace, id } if namespace == "global" => self
                .idempotent
                .get(&format!("program:{id}"))
                .copied()
                .unwrap_or(false),
            JobKey::Program { .. } => false,
        }
    }

    /// The breaker that guards requests keyed `key`.
    fn breaker_key(&self, key: &JobKey) -> BreakerKey {
        match key {
            JobKey::Command(command) if !self.is_known_command(command) => BreakerKey::Unknown,
            known => BreakerKey::Known(known.clone()),
        }
    }

    /// Takes a permit from the breaker that guards `key` (creating it on
    /// first use). `Ok(None)`: no breaker (the program breakers are all in
    /// use by open ones); the request runs unguarded.
    pub(crate) fn admit(&mut self, key: &JobKey) -> Result<Option<(BreakerKey, Permit)>, Rejected> {
        let key = self.breaker_key(key);
        let breakers = &mut self.breakers.by_key;
        if !breakers.contains_key(&key) {
            if is_program(&key) {
                let programs = |breakers: &HashMap<BreakerKey, CircuitBreaker>| {
                    breakers.keys().filter(|key| is_program(key)).count()
                };
                if programs(breakers) >= MAX_PROGRAM_BREAKERS {
                    breakers.retain(|key, breaker| {
                        !is_program(key) || breaker.state() != BreakerState::Closed
                    });
                    if programs(breakers) >= MAX_PROGRAM_BREAKERS {
                        return Ok(None);
                    }
                }
            }
            let breaker = CircuitBreaker::new(self.config.command_breaker, Arc::clone(&self.clock));
            breakers.insert(key.clone(), breaker);
        }
        match breakers.get_mut(&key) {
            Some(breaker) => breaker.try_acquire().map(|permit| Some((key, permit))),
            None => Ok(None),
        }
    }

    /// Records an attempt's outcome on its breaker; returns the breaker's
    /// state when the outcome could have changed it.
    pub(crate) fn record_permit(
        &mut self,
        key: &BreakerKey,
        permit: Permit,
        outcome: CallOutcome,
    ) -> Option<BreakerState> {
        let breaker = self.breakers.by_key.get_mut(key)?;
        breaker.record(permit, outcome);
        // Only a failure or a probe's outcome can change the state (a
        // success in the closed state never does): skip the clock read else.
        let may_change = outcome == CallOutcome::Failure || permit.is_probe();
        may_change.then(|| breaker.state())
    }

    /// Gives back the permit of an attempt that never ran.
    pub(crate) fn release_permit(&mut self, key: &BreakerKey, permit: Permit) {
        if let Some(breaker) = self.breakers.by_key.get_mut(key) {
            breaker.release(permit);
        }
    }

    /// How many command breakers exist (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn breaker_count(&self) -> usize {
        self.breakers.by_key.len()
    }
}

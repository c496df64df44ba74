//! The command breakers: one per announced command and per program (in
//! its namespace, at most [`MAX_PROGRAM_BREAKERS`]), plus one for every
//! command no worker announced — bounded, whatever callers send.

use std::collections::HashMap;
use std::sync::Arc;

use pypool_breaker::{BreakerState, CallOutcome, CircuitBreaker, Permit, Rejected};

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

/// The breakers, by key.
#[derive(Debug, Default)]
pub(super) struct Breakers {
    by_key: HashMap<BreakerKey, CircuitBreaker>,
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

//! Starting workers (behind the spawn breaker, with the recovery policy's
//! backoff between failed attempts) and their exits.

use std::time::Duration;

use pypool_breaker::{CallOutcome, Permit};
use pypool_lifecycle::{Event, ExitInfo};
use pypool_seam::{SpawnError, WorkerId};

use super::worker::Worker;
use super::{Core, Effect, Effects, Note, Retirement, WaitFailure, WaiterToken, WorkerHandle};

/// Whether a spawn attempt may go ahead.
#[derive(Debug)]
pub(crate) enum SpawnGate {
    /// Spawn now, under this spawn-breaker permit.
    Go(Permit),
    /// The spawn breaker is open: ask again after this delay.
    Wait(Duration),
    /// The slot is no longer wanted (shut down, resized away): stop trying.
    Abandon,
}

impl<H: WorkerHandle, T: WaiterToken> Core<H, T> {
    /// Adds a Starting slot; the shell spawns its worker.
    pub(super) fn start_spawn(&mut self, overflow: bool, fx: &mut Effects<H, T>) {
        let id = self.next_worker_id;
        self.next_worker_id += 1;
        let worker = Worker::starting(self.new_lifecycle(), overflow);
        self.workers.insert(id, worker);
        fx.push(Effect::Spawn(id));
    }

    /// Whether worker `id`'s next spawn attempt may go ahead.
    pub(crate) fn spawn_gate(&mut self, id: WorkerId, fx: &mut Effects<H, T>) -> SpawnGate {
        if self.shutting_down || !self.workers.contains_key(&id) {
            self.workers.remove(&id);
            return SpawnGate::Abandon;
        }
        let admitted = self.spawn_breaker.try_acquire();
        fx.push(Effect::Note(Note::SpawnBreaker(self.spawn_breaker.state())));
        match admitted {
            Ok(permit) => SpawnGate::Go(permit),
            Err(rejected) => SpawnGate::Wait(rejected.retry_after),
        }
    }

    /// Worker `id` completed its handshake, announcing `commands` (name,
    /// idempotent) and `capacity`. Returns false if its slot is no longer
    /// wanted: the shell kills it.
    pub(crate) fn spawned<'a>(
        &mut self,
        id: WorkerId,
        permit: Permit,
        handle: H,
        commands: impl IntoIterator<Item = (&'a str, bool)>,
        capacity: usize,
        fx: &mut Effects<H, T>,
    ) -> bool {
        let wanted = !self.shutting_down && self.workers.contains_key(&id);
        if !wanted {
            // Shut down or resized away while starting.
            self.spawn_breaker.release(permit);
            self.workers.remove(&id);
            return false;
        }
        for (command, idempotent) in commands {
            let known = self.idempotent.entry(command.to_owned()).or_insert(false);
            *known |= idempotent;
        }
        self.counters.spawned += 1;
        let capacity = u32::try_from(capacity.max(1)).unwrap_or(u32::MAX);
        self.any_shared |= capacity > 1;
        if let Some(worker) = self.workers.get_mut(&id) {
            worker.lifecycle.set_capacity(capacity);
            worker.handle = Some(handle);
            // The spawn counts as a success for the spawn breaker only once
            // the worker has proved itself (see `confirm_spawn`).
            worker.spawn_permit = Some(permit);
        }
        self.apply(id, Event::HandshakeOk);
        tracing::debug!(worker_id = id, "worker ready");
        self.settle(id, fx);
        true
    }

    /// Worker `id`'s spawn attempt number `attempt` failed; returns how long
    /// to wait before the next attempt.
    pub(crate) fn spawn_failed(
        &mut self,
        id: WorkerId,
        permit: Permit,
        attempt: u32,
        error: &SpawnError,
        fx: &mut Effects<H, T>,
    ) -> Duration {
        self.spawn_breaker.record(permit, CallOutcome::Failure);
        self.counters.spawn_failures += 1;
        tracing::warn!(worker_id = id, %error, attempt, "worker failed to start");
        // The state machine sees the failure; the slot gets a fresh one for
        // the next attempt.
        self.apply(id, Event::HandshakeFailed);
        let fresh = self.new_lifecycle();
        if let Some(worker) = self.workers.get_mut(&id) {
            worker.lifecycle = fresh;
        }
        fx.push(Effect::Note(Note::SpawnFailed(error.clone())));
        // Requests waiting while no worker is alive would otherwise only
        // learn of a broken interpreter from a checkout timeout.
        if self.live_workers() == 0 {
            self.fail_waiters(&WaitFailure::Spawn(error.clone()), fx);
        }
        self.spawn_backoff(attempt)
    }

    /// Worker `id` completed a request or passed a health check: its spawn
    /// was a success. A worker that dies before that counts as a failed
    /// spawn (see `retire`), so workers crashing on arrival cannot cause a
    /// respawn storm.
    pub(super) fn confirm_spawn(&mut self, id: WorkerId) {
        if let Some(permit) = self
            .workers
            .get_mut(&id)
            .and_then(|worker| worker.spawn_permit.take())
        {
            self.spawn_breaker.record(permit, CallOutcome::Success);
        }
    }

    /// Worker `id`'s process ended: it leaves the pool (a replacement
    /// starts). Returns whether it was still in the books.
    pub(crate) fn exited(&mut self, id: WorkerId, exit: ExitInfo, fx: &mut Effects<H, T>) -> bool {
        if !self.workers.contains_key(&id) {
            return false;
        }
        self.apply(id, Event::ProcessExited(exit));
        self.retire(id, Retirement::Failed, fx);
        true
    }

    /// Workers through their handshake and still in the books.
    pub(super) fn live_workers(&self) -> usize {
        self.workers
            .values()
            .filter(|worker| worker.handle.is_some())
            .count()
    }
}

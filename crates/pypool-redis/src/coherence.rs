//! This host's local copies of program definitions and affinity bindings,
//! kept coherent by Redis's server-assisted client-side caching.
//!
//! The stores' one connection speaks RESP3 and has tracking on in
//! broadcasting mode for the program and binding keys
//! (`CLIENT TRACKING ON BCAST NOLOOP PREFIX {prefix}:prog: PREFIX
//! {prefix}:aff:s:`): whenever *another* connection — another host — changes
//! such a key, Redis pushes an invalidation naming it, and the copies that
//! depend on it are dropped. This host's own writes do not come back
//! (`NOLOOP`): the stores drop the copies they change themselves.
//!
//! A copy is served only while tracking is known to be on. The connection
//! dropping (a `Disconnection` push), any failed operation (Redis away, a
//! partition: the heartbeat notices within a third of its time-to-live plus
//! the timeout) drops every copy and stops serving them until tracking is
//! switched on again on the (new) connection. A read that started before an
//! invalidation, or before tracking came on, does not leave a copy (a
//! generation counter), so a copy is never older than the last
//! invalidation this host has received.
//!
//! What this gives: a session call on this host needs no round trip when
//! the program's definition and the session's binding are here; a change
//! made through another host is seen as soon as its invalidation arrives
//! (the push travels with Redis's reply to the writer: on a LAN well under
//! a millisecond).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pypool_affinity::{SessionId, WorkerId};
use pypool_store::{Namespace, ProgramId, StoredProgram};
use redis::{PushInfo, PushKind, Value};
use tokio::sync::Notify;

/// At most this many copies of each kind are kept (then all are dropped at
/// once: a missing copy only costs a round trip).
const MAX_COPIES: usize = 10_000;

/// How long to wait before switching tracking on again after a failure
/// (doubling up to [`RETRY_AT_MOST`] while it keeps failing: a Redis that
/// refuses `CLIENT TRACKING`, say to an ACL-restricted user, costs a
/// command every 2 seconds and no copies are served).
const RETRY_AFTER: Duration = Duration::from_millis(100);
/// The longest wait between attempts to switch tracking on.
const RETRY_AT_MOST: Duration = Duration::from_secs(2);

/// A program as `viewer` sees it (`None`: a caller without a session).
type ProgramKey = (Option<SessionId>, ProgramId);

#[derive(Debug, Default)]
struct State {
    /// Tracking is on for the current connection: copies may be served.
    live: bool,
    /// Bumped on every invalidation, loss and (re)start of tracking.
    generation: u64,
    /// Bumped on every loss of tracking.
    losses: u64,
    programs: HashMap<ProgramKey, StoredProgram>,
    /// Session → (worker, when Redis last recorded its use), on the store's clock.
    bindings: HashMap<SessionId, (WorkerId, Instant)>,
}

/// The local copies and the tracking state (see the module documentation).
#[derive(Debug)]
pub(crate) struct Coherence {
    prefix: String,
    state: Mutex<State>,
    lost: Notify,
}

impl Coherence {
    pub(crate) fn new(prefix: String) -> Arc<Self> {
        Arc::new(Self {
            prefix,
            state: Mutex::default(),
            lost: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The prefixes of the tracked keys.
    pub(crate) fn tracked_prefixes(&self) -> [String; 2] {
        [
            format!("{}:prog:", self.prefix),
            format!("{}:aff:s:", self.prefix),
        ]
    }

    /// A push from Redis on the stores' connection.
    pub(crate) fn on_push(&self, push: &PushInfo) {
        match push.kind {
            PushKind::Invalidate => {
                let mut state = self.state();
                state.generation += 1;
                match push.data.first() {
                    Some(Value::Array(keys)) => {
                        for key in keys {
                            match key {
                                Value::BulkString(key) => {
                                    self.invalidate(&mut state, &String::from_utf8_lossy(key));
                                }
                                _ => clear(&mut state),
                            }
                        }
                    }
                    // A flush of the whole database, or a shape we do not know.
                    _ => clear(&mut state),
                }
            }
            PushKind::Disconnection => self.lose(),
            _ => {}
        }
    }

    fn invalidate(&self, state: &mut State, key: &str) {
        let Some(rest) = key
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix(':'))
        else {
            return;
        };
        if rest == "prog:g" {
            // Every copy may show a global program (or fall back to one).
            state.programs.clear();
        } else if let Some(session) = rest.strip_prefix("prog:s:") {
            state
                .programs
                .retain(|(viewer, _), _| viewer.as_ref().is_none_or(|v| v.as_str() != session));
        } else if let Some(session) = rest.strip_prefix("aff:s:") {
            state.bindings.retain(|bound, _| bound.as_str() != session);
        }
    }

    /// Tracking may be off (the connection dropped or an operation failed):
    /// drop every copy and serve none until it is on again.
    pub(crate) fn lose(&self) {
        let mut state = self.state();
        let was_live = state.live;
        state.live = false;
        state.generation += 1;
        state.losses += 1;
        clear(&mut state);
        drop(state);
        if was_live {
            self.lost.notify_one();
        }
    }

    /// The generation now: take it before a read whose answer may be kept.
    pub(crate) fn generation(&self) -> u64 {
        self.state().generation
    }

    /// The copy of program `id` as `viewer` sees it.
    pub(crate) fn program(
        &self,
        viewer: Option<&SessionId>,
        id: &ProgramId,
    ) -> Option<StoredProgram> {
        let state = self.state();
        if !state.live {
            return None;
        }
        state.programs.get(&(viewer.cloned(), id.clone())).cloned()
    }

    /// Keeps a copy of a program read at `generation`, unless anything was
    /// invalidated since.
    pub(crate) fn keep_program(
        &self,
        generation: u64,
        viewer: Option<&SessionId>,
        id: &ProgramId,
        program: &StoredProgram,
    ) {
        let mut state = self.state();
        if !state.live || state.generation != generation {
            return;
        }
        if state.programs.len() >= MAX_COPIES {
            state.programs.clear();
        }
        state
            .programs
            .insert((viewer.cloned(), id.clone()), program.clone());
    }

    /// This host changed `namespace`'s programs (no push comes back).
    pub(crate) fn forget_programs(&self, namespace: &Namespace) {
        let mut state = self.state();
        state.generation += 1;
        match namespace {
            Namespace::Global => state.programs.clear(),
            Namespace::Session(session) => state
                .programs
                .retain(|(viewer, _), _| viewer.as_ref() != Some(session)),
        }
    }

    /// The copy of `session`'s binding on this host: the worker and when
    /// Redis last recorded its use.
    pub(crate) fn binding(&self, session: &SessionId) -> Option<(WorkerId, Instant)> {
        let state = self.state();
        if !state.live {
            return None;
        }
        state.bindings.get(session).copied()
    }

    /// Keeps a copy of a binding Redis confirmed (used at `at`) in a round
    /// trip started at `generation`, unless anything was invalidated since.
    pub(crate) fn keep_binding(
        &self,
        generation: u64,
        session: &SessionId,
        worker: WorkerId,
        at: Instant,
    ) {
        let mut state = self.state();
        if !state.live || state.generation != generation {
            return;
        }
        if state.bindings.len() >= MAX_COPIES {
            state.bindings.clear();
        }
        state.bindings.insert(session.clone(), (worker, at));
    }

    /// Records a new last use of a copy (a refresh was sent).
    pub(crate) fn touch_binding(&self, session: &SessionId, worker: WorkerId, at: Instant) {
        let mut state = self.state();
        if let Some(copy) = state.bindings.get_mut(session) {
            if copy.0 == worker {
                copy.1 = at;
            }
        }
    }

    /// Drops the copy of `session`'s binding.
    pub(crate) fn forget_binding(&self, session: &SessionId) {
        let mut state = self.state();
        state.generation += 1;
        state.bindings.remove(session);
    }

    /// Drops the copies of bindings to `worker`.
    pub(crate) fn forget_worker(&self, worker: WorkerId) {
        let mut state = self.state();
        state.generation += 1;
        state.bindings.retain(|_, (bound, _)| *bound != worker);
    }

    /// Tracking was switched on: copies may be served, unless it was lost
    /// (`losses` changed) since the switch began.
    fn go_live(&self, losses: u64) -> bool {
        let mut state = self.state();
        if state.losses != losses {
            return false;
        }
        state.live = true;
        state.generation += 1;
        true
    }

    /// Keeps tracking on: switches it on with `switch_on` (which must run
    /// on the stores' connection), then waits until it is lost, and again.
    /// Runs until the task is aborted.
    pub(crate) async fn keep_tracking<F, Fut>(self: Arc<Self>, switch_on: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let mut retry_after = RETRY_AFTER;
        loop {
            let lost = self.lost.notified();
            let before = self.state().losses;
            if switch_on().await && self.go_live(before) {
                retry_after = RETRY_AFTER;
                lost.await;
                continue;
            }
            tokio::time::sleep(retry_after).await;
            retry_after = (retry_after * 2).min(RETRY_AT_MOST);
        }
    }
}

fn clear(state: &mut State) {
    state.programs.clear();
    state.bindings.clear();
}

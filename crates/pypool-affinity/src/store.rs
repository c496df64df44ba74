//! The affinity store contract.

use async_trait::async_trait;

use crate::SessionId;

/// The id of a worker in the pool (the pool facade's numbering).
pub type WorkerId = u64;

/// Remembers which worker each session last ran on.
///
/// A binding is only a preference: the pool may always run a session's
/// request on another worker, because programs live centrally in the host
/// and are sent to whichever worker needs them. So every method is
/// infallible: an implementation that cannot reach its backing store (a
/// future networked one, say) answers with a miss or does nothing, and the
/// session simply rebinds on its next call.
///
/// Bindings expire after an idle time-to-live: each hit from
/// [`lookup`](Self::lookup) (and each [`bind`](Self::bind)) restarts it. An
/// expired binding behaves as absent in every method, even before
/// [`sweep`](Self::sweep) has dropped it.
#[async_trait]
pub trait AffinityStore: Send + Sync + std::fmt::Debug {
    /// The worker `session` is bound to, if the binding exists and has not
    /// expired. A hit restarts the binding's idle time-to-live; an expired
    /// binding is a miss and is removed.
    async fn lookup(&self, session: &SessionId) -> Option<WorkerId>;

    /// Binds `session` to `worker`, replacing any earlier binding, and starts
    /// its idle time-to-live.
    async fn bind(&self, session: &SessionId, worker: WorkerId);

    /// Unbinds every session bound to `worker` (called when the worker is
    /// removed from the pool); they rebind on their next call. Returns how
    /// many live bindings were removed (expired ones are dropped too but not
    /// counted).
    async fn unbind_worker(&self, worker: WorkerId) -> usize;

    /// Removes `session`'s binding (called when the session ends). Returns
    /// whether a live binding was removed.
    async fn remove_session(&self, session: &SessionId) -> bool;

    /// Drops every expired binding and returns how many it dropped. The pool
    /// calls it periodically so that sessions that never come back do not
    /// hold memory.
    async fn sweep(&self) -> usize;

    /// How many bindings the store holds, including expired ones that no
    /// [`sweep`](Self::sweep) or lookup has dropped yet; call `sweep` first
    /// for the number of live bindings.
    async fn len(&self) -> usize;

    /// Whether the store holds no bindings (see [`len`](Self::len)).
    async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}

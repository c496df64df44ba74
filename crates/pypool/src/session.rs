//! Sessions: a handle whose calls prefer one worker (affinity) but never
//! depend on it, its own programs, and a small key-value map — all kept by
//! the host, so any worker can serve any session.

use std::sync::Arc;
use std::time::Duration;

use pypool_affinity::{AffinityMode, SessionId, WorkerId};
use pypool_store::{Namespace, ProgramId, ProgramKind, ProgramSpec, StoredProgram};
use serde_json::{Map, Value};

use crate::core::Affinity;
use crate::inner::Inner;
use crate::job::{Job, JobKey};
use crate::lease::{CommandPermit, Lease};
use crate::{Pool, PoolError, metrics};

/// How a request reaches a worker when it belongs to a session.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) session: SessionId,
    pub(crate) mode: AffinityMode,
}

impl Inner {
    /// Checks out the session's bound worker according to the affinity
    /// mode, or any worker when the session is unbound or its worker gone.
    /// `binding` is the session's binding when the caller already looked it
    /// up (`None`: look it up here).
    pub(crate) async fn checkout_routed(
        self: &Arc<Self>,
        command: &str,
        key: &JobKey,
        route: &Route,
        binding: Option<Option<WorkerId>>,
    ) -> Result<(Lease, CommandPermit), PoolError> {
        self.touch_session(&route.session);
        let bound = match binding {
            Some(bound) => bound,
            None => self.stores.affinity.lookup(&route.session).await,
        };
        let Some(worker_id) = bound.filter(|worker_id| self.has_worker(*worker_id)) else {
            self.count_affinity(Affinity::Miss);
            return self.checkout_admitted(command, key).await;
        };
        // Breaker admission happens in the checkout's own lock take.
        let checked_out = match route.mode {
            AffinityMode::StrictFailFast => {
                if !self.has_room(worker_id) {
                    // Admitted as any call would be, then refused: the breaker
                    // speaks first, as it does on every path.
                    if let Some((key, permit)) = self.admit(command, key)?.take() {
                        self.lock().core.release_permit(&key, permit);
                    }
                    return Err(PoolError::WorkerBusy {
                        session: route.session.as_str().to_owned(),
                        worker_id,
                    });
                }
                self.checkout_inner(command, Some(worker_id), Duration::ZERO, Some(key))
                    .await
                    .map_err(|error| match error {
                        PoolError::CheckoutTimeout { .. } => PoolError::WorkerBusy {
                            session: route.session.as_str().to_owned(),
                            worker_id,
                        },
                        other => other,
                    })
            }
            AffinityMode::Strict => {
                self.checkout_inner(
                    command,
                    Some(worker_id),
                    self.config.timeouts.checkout,
                    Some(key),
                )
                .await
            }
            AffinityMode::Hint { wait } => {
                match self
                    .checkout_inner(command, Some(worker_id), wait, Some(key))
                    .await
                {
                    Err(PoolError::CheckoutTimeout { .. }) => {
                        // Programs are central: any worker serves the session as well.
                        self.count_affinity(Affinity::Spill);
                        return self.checkout_admitted(command, key).await;
                    }
                    other => other,
                }
            }
        };
        match &checked_out {
            // The bound worker left the pool at checkout (recycled): another served.
            Ok((lease, _)) if lease.worker_id() != worker_id => {
                self.count_affinity(Affinity::Miss);
            }
            Ok(_) => self.count_affinity(Affinity::Hit),
            Err(_) => {}
        }
        checked_out
    }

    fn count_affinity(&self, outcome: Affinity) {
        let label = match outcome {
            Affinity::Hit => "hit",
            Affinity::Miss => "miss",
            Affinity::Spill => "spill",
        };
        metrics::affinity(&self.config.name, label);
        self.lock().core.count_affinity(outcome);
    }

    /// Records that `session` was used now (its data expires a TTL after its last use).
    pub(crate) fn touch_session(&self, session: &SessionId) {
        let now = tokio::time::Instant::now();
        let mut seen = self
            .session_last_used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.insert(session.clone(), now);
    }

    /// Drops affinity bindings idle past the TTL and, when configured,
    /// deletes the programs and data of sessions idle that long.
    pub(crate) async fn sweep_sessions(&self) {
        self.stores.affinity.sweep().await;
        let now = tokio::time::Instant::now();
        let expired: Vec<SessionId> = {
            let mut seen = self
                .session_last_used
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let expired: Vec<SessionId> = seen
                .iter()
                .filter(|(_, last)| now.duration_since(**last) >= self.config.session_ttl)
                .map(|(session, _)| session.clone())
                .collect();
            for session in &expired {
                seen.remove(session);
            }
            expired
        };
        // Without data expiry the map only needs the sessions still live:
        // the pruning above keeps it bounded either way.
        if !self.config.expire_session_data {
            return;
        }
        for session in expired {
            tracing::debug!(session = session.as_str(), "session expired");
            if let Err(error) = self.delete_session(&session).await {
                // Kept for the next sweep: an expired session's data is never
                // forgotten while it could not be deleted.
                tracing::warn!(session = session.as_str(), %error, "deleting an expired session failed; retrying at the next sweep");
                self.session_last_used
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(session)
                    .or_insert(now.checked_sub(self.config.session_ttl).unwrap_or(now));
            }
        }
    }

    pub(crate) async fn delete_session(
        &self,
        session: &SessionId,
    ) -> Result<SessionDeleted, PoolError> {
        self.session_last_used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(session);
        self.stores.affinity.remove_session(session).await;
        Ok(SessionDeleted {
            programs: self.stores.programs.delete_session(session).await?,
            data_keys: self.stores.session_data.delete_session(session).await?,
        })
    }
}

/// Sweeps sessions every `interval` until the pool is gone or shuts down.
pub(crate) fn start_sweeper(inner: std::sync::Weak<Inner>, interval: Duration) {
    crate::periodic::every(inner, interval, |inner| async move {
        inner.sweep_sessions().await;
    });
}

/// What deleting a session removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SessionDeleted {
    /// Programs the session owned.
    pub programs: usize,
    /// Keys of its data map.
    pub data_keys: usize,
}

/// A session: calls prefer the worker the session last used (see
/// [`AffinityMode`]) but run anywhere, because programs and data live in the
/// host. Obtained from [`Pool::session`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct Session {
    pool: Pool,
    route: Route,
}

impl Session {
    pub(crate) fn new(pool: Pool, session: SessionId) -> Self {
        let mode = pool.inner().config.affinity_mode;
        Self {
            pool,
            route: Route { session, mode },
        }
    }

    /// The session's id.
    pub fn id(&self) -> &SessionId {
        &self.route.session
    }

    /// The same session with another affinity mode for its calls.
    pub fn with_affinity(mut self, mode: AffinityMode) -> Self {
        self.route.mode = mode;
        self
    }

    /// Runs a registered command with this session's affinity. Commands
    /// named `pypool.*` are refused ([`PoolError::ReservedCommand`]).
    pub async fn execute(&self, command: &str, args: Value) -> Result<Value, PoolError> {
        crate::pool::check_command(command)?;
        let job = Job::Command {
            command: command.to_owned(),
            args: crate::pool::object_args(command, args)?,
        };
        self.pool.inner().run(&job, Some(&self.route)).await
    }

    /// Creates a program owned by this session (an error if the id exists).
    pub async fn create_program(
        &self,
        id: &str,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, PoolError> {
        self.touch();
        self.pool
            .inner()
            .store_program(Some(&self.route.session), id, spec, false)
            .await
    }

    /// Creates or replaces a program owned by this session; a changed
    /// definition gets a new version, so no worker runs the old one.
    pub async fn put_program(
        &self,
        id: &str,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, PoolError> {
        self.touch();
        self.pool
            .inner()
            .store_program(Some(&self.route.session), id, spec, true)
            .await
    }

    /// A program this session can see (its own, or a global one).
    pub async fn program(&self, id: &str) -> Result<StoredProgram, PoolError> {
        self.touch();
        self.pool
            .inner()
            .find_program(Some(&self.route.session), id)
            .await
    }

    /// The programs this session can see. Fails with
    /// [`PoolError::Store`] only when the program store cannot be reached.
    pub async fn programs(&self) -> Result<Vec<StoredProgram>, PoolError> {
        self.touch();
        Ok(self
            .pool
            .inner()
            .stores
            .programs
            .list(Some(&self.route.session))
            .await?)
    }

    /// Deletes one of this session's programs.
    pub async fn delete_program(&self, id: &str) -> Result<(), PoolError> {
        self.touch();
        self.pool
            .inner()
            .remove_program(Some(&self.route.session), id)
            .await
    }

    /// Runs a program this session can see, on any worker (preferring the
    /// session's); its inputs are its keyword arguments.
    pub async fn execute_program(&self, id: &str, inputs: Value) -> Result<Value, PoolError> {
        self.pool
            .inner()
            .run_program(Some(&self.route), id, inputs)
            .await
    }

    /// A value from the session's data map (`None`: no such key). Fails
    /// only when the store cannot be reached — "could not look" is never
    /// answered as "absent".
    pub async fn get(&self, key: &str) -> Result<Option<Value>, PoolError> {
        self.touch();
        Ok(self
            .pool
            .inner()
            .stores
            .session_data
            .get(&self.route.session, key)
            .await?)
    }

    /// Stores a value in the session's data map (kept by the host, not a worker).
    pub async fn set(&self, key: &str, value: Value) -> Result<(), PoolError> {
        self.touch();
        Ok(self
            .pool
            .inner()
            .stores
            .session_data
            .set(&self.route.session, key, value)
            .await?)
    }

    /// The session's whole data map; fails only when the store cannot be reached.
    pub async fn data(&self) -> Result<Map<String, Value>, PoolError> {
        self.touch();
        Ok(self
            .pool
            .inner()
            .stores
            .session_data
            .all(&self.route.session)
            .await?)
    }

    /// Counts as a use of the session, for data expiry.
    fn touch(&self) {
        self.pool.inner().touch_session(&self.route.session);
    }

    /// Deletes the session: its worker binding, its programs and its data.
    /// Fails when a store cannot be reached (nothing is then known to be
    /// gone; deleting again later is safe).
    pub async fn delete(self) -> Result<SessionDeleted, PoolError> {
        self.pool.inner().delete_session(&self.route.session).await
    }
}

/// Program operations shared by the pool (global namespace, `session` None)
/// and by sessions (their own namespace).
impl Inner {
    async fn store_program(
        &self,
        session: Option<&SessionId>,
        id: &str,
        spec: ProgramSpec,
        replace: bool,
    ) -> Result<StoredProgram, PoolError> {
        let id = ProgramId::new(id)?;
        self.check_allowed(&id, &spec)?;
        let owner = namespace_of(session);
        let programs = &self.stores.programs;
        let stored = if replace {
            programs.put(owner, id, spec).await
        } else {
            programs.create(owner, id, spec).await
        };
        Ok(stored?)
    }

    async fn find_program(
        &self,
        session: Option<&SessionId>,
        id: &str,
    ) -> Result<StoredProgram, PoolError> {
        let id = ProgramId::new(id)?;
        Ok(self.stores.programs.get(session, &id).await?)
    }

    async fn remove_program(&self, session: Option<&SessionId>, id: &str) -> Result<(), PoolError> {
        let id = ProgramId::new(id)?;
        Ok(self
            .stores
            .programs
            .delete(&namespace_of(session), &id)
            .await?)
    }

    async fn run_program(
        self: &Arc<Self>,
        route: Option<&Route>,
        id: &str,
        inputs: Value,
    ) -> Result<Value, PoolError> {
        let inputs = crate::pool::object_args(id, inputs)?;
        // The inputs travel one level down, inside `pypool.run_program`'s args.
        crate::pool::check_depth(id, &inputs, 1)?;
        // A session's binding and the program's definition are independent
        // reads: done together, they cost one store round trip, not two.
        let (program, binding) = match route {
            Some(route) => {
                let (program, bound) = tokio::join!(
                    self.find_program(Some(&route.session), id),
                    self.stores.affinity.lookup(&route.session)
                );
                (program?, Some(bound))
            }
            None => (self.find_program(None, id).await?, None),
        };
        let job = Job::Program {
            inputs,
            program: Box::new(program),
        };
        self.run_with_binding(&job, route, binding).await
    }
}

impl Inner {
    /// Refuses a `python` program whose callable is outside the allowed modules.
    #[allow(clippy::result_large_err, reason = "returned to the caller as is")]
    fn check_allowed(&self, id: &ProgramId, spec: &ProgramSpec) -> Result<(), PoolError> {
        let Some(allowed) = &self.config.allowed_program_modules else {
            return Ok(());
        };
        if spec.kind != ProgramKind::Python {
            return Ok(());
        }
        let callable = spec
            .spec
            .get("callable")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if module_allowed(callable, allowed) {
            return Ok(());
        }
        Err(PoolError::ProgramNotAllowed {
            program: id.as_str().to_owned(),
            callable: callable.to_owned(),
            allowed: if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed.join(", ")
            },
        })
    }
}

/// Whether `callable` (`module:function`) names a module equal to, or inside,
/// one of `prefixes`.
pub(crate) fn module_allowed(callable: &str, prefixes: &[String]) -> bool {
    let module = callable.split(':').next().unwrap_or_default().trim();
    prefixes.iter().any(|prefix| {
        module == prefix
            || module
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

fn namespace_of(session: Option<&SessionId>) -> Namespace {
    session.map_or(Namespace::Global, |session| {
        Namespace::Session(session.clone())
    })
}

impl Pool {
    /// A handle on session `id` (created on first use). Errors if the id is
    /// not 1–128 characters of letters, digits, `_ - . :`.
    #[allow(
        clippy::result_large_err,
        reason = "the pool's one error type, as every call returns"
    )]
    pub fn session(&self, id: &str) -> Result<Session, PoolError> {
        Ok(Session::new(self.clone(), SessionId::new(id)?))
    }

    /// Creates a global program, visible to every session and to anonymous calls.
    pub async fn create_program(
        &self,
        id: &str,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, PoolError> {
        self.inner().store_program(None, id, spec, false).await
    }

    /// Creates or replaces a global program.
    pub async fn put_program(
        &self,
        id: &str,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, PoolError> {
        self.inner().store_program(None, id, spec, true).await
    }

    /// A global program.
    pub async fn program(&self, id: &str) -> Result<StoredProgram, PoolError> {
        self.inner().find_program(None, id).await
    }

    /// The global programs; fails only when the program store cannot be reached.
    pub async fn programs(&self) -> Result<Vec<StoredProgram>, PoolError> {
        Ok(self.inner().stores.programs.list(None).await?)
    }

    /// Deletes a global program.
    pub async fn delete_program(&self, id: &str) -> Result<(), PoolError> {
        self.inner().remove_program(None, id).await
    }

    /// Runs a global program on any worker.
    pub async fn execute_program(&self, id: &str, inputs: Value) -> Result<Value, PoolError> {
        self.inner().run_program(None, id, inputs).await
    }

    /// Replaces the pool's worker-wide settings (for example `{"lm": {...}}`
    /// for DSPy). Every worker applies them before its next request —
    /// including workers started or replaced later. Returns the new version.
    ///
    /// Settings a worker would refuse (an `lm` without a model, an unknown
    /// `lm` key, an `api_key` anywhere) are refused here with
    /// [`PoolError::InvalidSettings`], and the settings in force stay.
    #[allow(
        clippy::result_large_err,
        reason = "the pool's one error type, as every call returns"
    )]
    pub fn configure(&self, settings: Map<String, Value>) -> Result<u64, PoolError> {
        if let Some(detail) = crate::settings_check::problem(&settings) {
            return Err(PoolError::InvalidSettings { detail });
        }
        Ok(self.inner().replace_settings(settings))
    }

    /// The pool's current settings and their version (0: never configured).
    pub fn settings(&self) -> (u64, Map<String, Value>) {
        self.inner().settings_snapshot()
    }

    /// Runs the session sweep now (expired bindings, and expired sessions'
    /// data when configured); the pool also runs it periodically.
    pub async fn sweep_sessions(&self) {
        self.inner().sweep_sessions().await;
    }
}

//! Scripted mode: every spawn is decided by the test, through a [`SpawnHandle`].

use std::fmt;
use std::sync::Arc;

use pypool_seam::{Handshake, SpawnError, SpawnRequest, WorkerConnection, WorkerExit, WorkerId};
use pypool_wire::CommandInfo;
use tokio::sync::{mpsc, oneshot};

use crate::connection::MockConnection;
use crate::handshake::{check_handshake, default_handshake};
use crate::stats::{BehaviourStats, StatsInner};
use crate::worker_core::WorkerCore;
use crate::worker_handle::WorkerHandle;

/// What the test decided for one spawn.
enum Decision {
    Accept(MockConnection),
    Fail(SpawnError),
}

/// The spawner half of scripted mode: forwards each spawn to the test.
#[derive(Debug)]
pub(crate) struct ScriptedSpawner {
    pending: mpsc::UnboundedSender<PendingSpawn>,
    extra_commands: Arc<[CommandInfo]>,
    stats: Arc<StatsInner>,
}

impl ScriptedSpawner {
    pub(crate) fn new(
        extra_commands: Vec<CommandInfo>,
        stats: Arc<StatsInner>,
    ) -> (Self, SpawnHandle) {
        let (pending_tx, pending_rx) = mpsc::unbounded_channel();
        let handle = SpawnHandle {
            pending: pending_rx,
            stats: BehaviourStats::from_inner(Arc::clone(&stats)),
        };
        let spawner = Self {
            pending: pending_tx,
            extra_commands: extra_commands.into(),
            stats,
        };
        (spawner, handle)
    }

    pub(crate) async fn spawn(
        &self,
        request: SpawnRequest,
    ) -> Result<Arc<dyn WorkerConnection>, SpawnError> {
        let (decision_tx, decision_rx) = oneshot::channel();
        let pending = PendingSpawn {
            request: request.clone(),
            extra_commands: Arc::clone(&self.extra_commands),
            decision: decision_tx,
            stats: Arc::clone(&self.stats),
        };
        if self.pending.send(pending).is_err() {
            return Err(SpawnError::Refused {
                reason: "the test dropped the mock's SpawnHandle, so no spawn can be answered"
                    .to_owned(),
            });
        }
        let decision = async {
            match decision_rx.await {
                Ok(decision) => decision,
                // `hang()`, or the PendingSpawn was dropped: the worker never answers.
                Err(_no_answer) => std::future::pending().await,
            }
        };
        match tokio::time::timeout(request.handshake_timeout, decision).await {
            Err(_elapsed) => Err(SpawnError::HandshakeTimeout {
                worker_id: request.worker_id,
                timeout: request.handshake_timeout,
                stderr_tail: String::new(),
            }),
            Ok(Decision::Fail(error)) => Err(error),
            Ok(Decision::Accept(connection)) => {
                // On error, `connection` is dropped here, which kills the worker.
                check_handshake(connection.handshake(), &request)?;
                Ok(Arc::new(connection))
            }
        }
    }
}

/// The test's end of a scripted [`MockSpawner`](crate::MockSpawner): yields
/// one [`PendingSpawn`] per `spawn` call, in call order.
pub struct SpawnHandle {
    pending: mpsc::UnboundedReceiver<PendingSpawn>,
    stats: BehaviourStats,
}

impl SpawnHandle {
    /// Waits for the pool's next `spawn` call; `None` once every clone of the
    /// spawner is dropped and no spawn is left.
    pub async fn next_spawn(&mut self) -> Option<PendingSpawn> {
        self.pending.recv().await
    }

    /// The next `spawn` call if one is already waiting, without waiting.
    pub fn try_next_spawn(&mut self) -> Option<PendingSpawn> {
        self.pending.try_recv().ok()
    }

    /// How many times the pool has called `spawn`.
    pub fn spawn_count(&self) -> u64 {
        self.stats.spawns()
    }

    /// The spawner's counters.
    pub fn stats(&self) -> BehaviourStats {
        self.stats.clone()
    }
}

impl fmt::Debug for SpawnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnHandle")
            .field("spawn_count", &self.spawn_count())
            .finish_non_exhaustive()
    }
}

/// One `spawn` call waiting for the test's decision. Dropping it without a
/// decision is the same as [`PendingSpawn::hang`].
pub struct PendingSpawn {
    request: SpawnRequest,
    extra_commands: Arc<[CommandInfo]>,
    decision: oneshot::Sender<Decision>,
    stats: Arc<StatsInner>,
}

impl PendingSpawn {
    /// What the pool asked for.
    pub fn request(&self) -> &SpawnRequest {
        &self.request
    }

    /// The id the pool asked the new worker to announce.
    pub fn worker_id(&self) -> WorkerId {
        self.request.worker_id
    }

    /// The handshake [`accept`](Self::accept) sends; tweak it and pass it to
    /// [`accept_with`](Self::accept_with) to test the host's checks.
    pub fn default_handshake(&self) -> Handshake {
        default_handshake(self.request.worker_id, &self.extra_commands)
    }

    /// The worker sends the default handshake; the returned handle drives it.
    ///
    /// If the spawn already gave up (its handshake timeout passed, or the pool
    /// dropped the spawn future), the worker is killed at once, as the real
    /// spawner kills a worker it does not hand back: see
    /// [`WorkerHandle::was_killed`].
    pub fn accept(self) -> WorkerHandle {
        let handshake = self.default_handshake();
        self.accept_with(handshake)
    }

    /// The worker sends `handshake`. The spawner checks it like the real one:
    /// another protocol version fails the spawn with
    /// [`SpawnError::ProtocolMismatch`], another worker id with
    /// [`SpawnError::BadHandshake`], and in both cases the worker is killed.
    pub fn accept_with(self, handshake: Handshake) -> WorkerHandle {
        let (core, requests) = WorkerCore::start(handshake, self.stats);
        let handle = WorkerHandle::new(Arc::clone(&core), requests);
        // If the spawn is gone, the connection comes back and dropping it kills the worker.
        let _gave_up = self
            .decision
            .send(Decision::Accept(MockConnection::new(core)));
        handle
    }

    /// The spawn fails with `error`.
    pub fn fail(self, error: SpawnError) {
        let _gave_up = self.decision.send(Decision::Fail(error));
    }

    /// The worker exits with `exit` before its handshake, having written
    /// `stderr_tail` on stderr.
    pub fn exit_before_handshake(self, exit: WorkerExit, stderr_tail: &str) {
        let error = SpawnError::ExitedBeforeHandshake {
            worker_id: self.request.worker_id,
            exit,
            stderr_tail: stderr_tail.to_owned(),
        };
        self.fail(error);
    }

    /// The worker reports a startup error (e.g. kind `handler_import`) instead
    /// of a handshake.
    pub fn startup_error(self, kind: &str, message: &str) {
        let error = SpawnError::StartupFailed {
            worker_id: self.request.worker_id,
            kind: kind.to_owned(),
            message: message.to_owned(),
            traceback: None,
            stderr_tail: String::new(),
        };
        self.fail(error);
    }

    /// The worker never answers: the spawn fails with
    /// [`SpawnError::HandshakeTimeout`] once `request().handshake_timeout`
    /// has passed on tokio's clock (so paused time works).
    pub fn hang(self) {}
}

impl fmt::Debug for PendingSpawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingSpawn")
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

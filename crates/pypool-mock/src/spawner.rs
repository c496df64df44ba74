//! [`MockSpawner`]: the mock's [`WorkerSpawner`], in scripted or behaviour mode.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use pypool_seam::{SpawnError, SpawnRequest, WorkerConnection, WorkerSpawner};
use pypool_wire::CommandInfo;

use crate::behaviour::{Behaviour, BehaviourError};
use crate::behaviour_worker::BehaviourShared;
use crate::scripted::{ScriptedSpawner, SpawnHandle};
use crate::stats::{BehaviourStats, StatsInner};

#[derive(Debug)]
enum Mode {
    Scripted(ScriptedSpawner),
    Behaviour(Arc<BehaviourShared>),
}

/// A [`WorkerSpawner`] of in-process mock workers. Clones share the same
/// workers, script and counters.
#[derive(Clone)]
pub struct MockSpawner {
    mode: Arc<Mode>,
    stats: Arc<StatsInner>,
}

impl MockSpawner {
    /// Scripted mode: each `spawn` waits for the test to decide it through
    /// the returned [`SpawnHandle`]. Workers announce `ping` and `info`.
    pub fn scripted() -> (Self, SpawnHandle) {
        Self::scripted_with_commands(Vec::new())
    }

    /// Scripted mode whose workers announce `commands` after `ping` and `info`.
    pub fn scripted_with_commands(
        commands: impl IntoIterator<Item = CommandInfo>,
    ) -> (Self, SpawnHandle) {
        let stats = Arc::new(StatsInner::default());
        let (scripted, handle) =
            ScriptedSpawner::new(commands.into_iter().collect(), Arc::clone(&stats));
        let spawner = Self {
            mode: Arc::new(Mode::Scripted(scripted)),
            stats,
        };
        (spawner, handle)
    }

    /// Behaviour mode: workers answer on their own as `behaviour` says.
    /// Fails if the behaviour cannot be run (see [`Behaviour::validate`]).
    pub fn with_behaviour(behaviour: Behaviour) -> Result<Self, BehaviourError> {
        behaviour.validate()?;
        let stats = Arc::new(StatsInner::default());
        let shared = BehaviourShared::new(behaviour, Arc::clone(&stats));
        Ok(Self {
            mode: Arc::new(Mode::Behaviour(Arc::new(shared))),
            stats,
        })
    }

    /// The spawner's counters (spawns, crashes injected, requests served, …).
    pub fn stats(&self) -> BehaviourStats {
        BehaviourStats::from_inner(Arc::clone(&self.stats))
    }
}

impl fmt::Debug for MockSpawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &*self.mode {
            Mode::Scripted(_) => "scripted",
            Mode::Behaviour(_) => "behaviour",
        };
        f.debug_struct("MockSpawner")
            .field("mode", &mode)
            .field("stats", &self.stats())
            .finish()
    }
}

#[async_trait]
impl WorkerSpawner for MockSpawner {
    async fn spawn(&self, request: SpawnRequest) -> Result<Arc<dyn WorkerConnection>, SpawnError> {
        let number = self.stats.spawn_started();
        let spawned = match &*self.mode {
            Mode::Scripted(scripted) => scripted.spawn(request).await,
            Mode::Behaviour(shared) => shared.spawn(request, number).await,
        };
        if spawned.is_err() {
            self.stats.spawn_failed();
        }
        spawned
    }
}

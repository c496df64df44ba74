//! Building a pool.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pypool_affinity::{AffinityMode, AffinityStore, InMemoryAffinityStore};
use pypool_breaker::BreakerConfig;
use pypool_lifecycle::{LifecycleConfig, RecycleLimits};
use pypool_process::{PythonSpawner, PythonSpawnerConfig, StartMethod};
use pypool_recovery::RecoveryConfig;
use pypool_seam::WorkerSpawner;
use pypool_store::{
    InMemoryProgramStore, InMemorySessionDataStore, ProgramStore, SessionDataStore,
};

use crate::Timeouts;
use crate::clock::TokioClock;
use crate::config::{PoolConfig, StartMode};
use crate::inner::{Inner, Stores};
use crate::pool::Pool;

/// Why a pool could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting is out of range.
    #[error("invalid pool setting `{setting}`: {reason}")]
    InvalidSetting {
        /// The setting.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `build` was called outside a tokio runtime.
    #[error(
        "Pool::builder().build() must be called inside a tokio runtime (it starts background tasks)"
    )]
    NoRuntime,
}

/// Builds a [`Pool`]; every setting has a sensible default.
///
/// | setting | default |
/// |---|---|
/// | workers | real Python (`python3 -m pypool_worker`) |
/// | `size` | 4 |
/// | `max_overflow` | 0 |
/// | `start_mode` | eager (all workers spawned concurrently at build) |
/// | `min_ready` | `size` when eager, 0 when lazy |
/// | `queue_bound` | 1024 waiting requests |
/// | `timeouts` | see [`Timeouts`] |
/// | `health_check_interval` | 30 s |
/// | `health_failure_threshold`, `request_failure_threshold` | 3 |
/// | recycling | none (see `max_requests`, `max_age`, `max_memory_bytes`) |
/// | recovery | 3 attempts within 30 s, only when safe |
/// | spawn breaker | opens after 5 consecutive failed spawns, probes after 5 s |
/// | command breaker | opens after 20 consecutive failures of one command, probes after 5 s |
/// | affinity mode | hint (prefer the session's worker for up to 50 ms, then any) |
/// | session TTL | 5 minutes idle, then the session's worker binding lapses |
/// | expire session data | off (a lapsed session keeps its programs and data until deleted) |
/// | stores | in memory (affinity, programs, session data) |
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    spawner: Option<Arc<dyn WorkerSpawner>>,
    python: PythonSpawnerConfig,
    config: PoolConfig,
    min_ready: Option<usize>,
    affinity_store: Option<Arc<dyn AffinityStore>>,
    program_store: Option<Arc<dyn ProgramStore>>,
    session_data_store: Option<Arc<dyn SessionDataStore>>,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PoolBuilder {
    /// A builder with the defaults listed above.
    pub fn new() -> Self {
        Self {
            spawner: None,
            python: PythonSpawnerConfig::default(),
            min_ready: None,
            affinity_store: None,
            program_store: None,
            session_data_store: None,
            config: PoolConfig {
                name: "pypool".to_owned(),
                size: 4,
                max_overflow: 0,
                start_mode: StartMode::Eager,
                min_ready: 4,
                queue_bound: 1024,
                timeouts: Timeouts::default(),
                health_check_interval: Some(Duration::from_secs(30)),
                lifecycle: LifecycleConfig::default(),
                recycle: RecycleLimits::default(),
                recovery: RecoveryConfig::default(),
                spawn_breaker: BreakerConfig::default(),
                command_breaker: BreakerConfig {
                    consecutive_failures: 20,
                    ..BreakerConfig::default()
                },
                idempotent_commands: HashSet::new(),
                seed: 0x5EED_F00D,
                affinity_mode: AffinityMode::default(),
                session_ttl: Duration::from_secs(300),
                expire_session_data: false,
                allowed_program_modules: None,
                stream_window: pypool_seam::DEFAULT_STREAM_WINDOW,
            },
        }
    }

    /// Names the pool (the `pool` label of its metrics).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// How many workers the pool keeps.
    pub fn size(mut self, size: usize) -> Self {
        self.config.size = size;
        self
    }

    /// How many extra workers may be spawned under load (retired when idle).
    pub fn max_overflow(mut self, extra: usize) -> Self {
        self.config.max_overflow = extra;
        self
    }

    /// Eager (spawn all at build) or lazy (spawn on demand).
    pub fn start_mode(mut self, mode: StartMode) -> Self {
        self.config.start_mode = mode;
        self
    }

    /// How many workers [`Pool::ready`] waits for.
    pub fn min_ready(mut self, workers: usize) -> Self {
        self.min_ready = Some(workers);
        self
    }

    /// How many requests may wait for a worker before `execute` fails with `Overloaded`.
    pub fn queue_bound(mut self, bound: usize) -> Self {
        self.config.queue_bound = bound;
        self
    }

    /// How many chunks of one streamed request (`execute_stream`) may wait
    /// in the host, read by nobody yet (default 32): the host memory bound
    /// per stream. The worker sends a chunk only with credit, and credit
    /// returns as the stream is read, so a consumer that stops reading
    /// pauses the handler instead of growing a buffer.
    pub fn stream_window(mut self, chunks: std::num::NonZeroU32) -> Self {
        self.config.stream_window = chunks;
        self
    }

    /// All time limits at once.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.config.timeouts = timeouts;
        self
    }

    /// How often idle workers are pinged; `None` turns health checks off.
    pub fn health_check_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.health_check_interval = interval;
        self
    }

    /// Consecutive failed health checks after which a worker is replaced.
    pub fn health_failure_threshold(mut self, failures: u32) -> Self {
        self.config.lifecycle.health_failure_threshold = failures;
        self
    }

    /// Consecutive failed requests (worker faults, not Python exceptions)
    /// after which a worker is replaced.
    pub fn request_failure_threshold(mut self, failures: u32) -> Self {
        self.config.lifecycle.request_failure_threshold = failures;
        self
    }

    /// Recycles a worker after it served this many requests.
    pub fn max_requests(mut self, requests: u64) -> Self {
        self.config.recycle.max_requests = Some(requests);
        self
    }

    /// Recycles a worker once it is this old.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.config.recycle.max_age = Some(age);
        self
    }

    /// Recycles a worker whose resident memory (read from the OS) reaches this many bytes.
    pub fn max_memory_bytes(mut self, bytes: u64) -> Self {
        self.config.recycle.max_memory_bytes = Some(bytes);
        self
    }

    /// The retry policy.
    pub fn recovery(mut self, recovery: RecoveryConfig) -> Self {
        self.config.recovery = recovery;
        self
    }

    /// The breaker that paces spawning when workers fail to start.
    pub fn spawn_breaker(mut self, breaker: BreakerConfig) -> Self {
        self.config.spawn_breaker = breaker;
        self
    }

    /// The breaker each command gets, so one failing command cannot drown the pool.
    pub fn command_breaker(mut self, breaker: BreakerConfig) -> Self {
        self.config.command_breaker = breaker;
        self
    }

    /// Declares `command` idempotent (safe to retry after a crash), in
    /// addition to what workers declare in their handshake.
    pub fn idempotent(mut self, command: impl Into<String>) -> Self {
        self.config.idempotent_commands.insert(command.into());
        self
    }

    /// Seeds the retry jitter (for reproducible runs).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// How sessions use their bound worker by default (a session handle can override it).
    pub fn affinity_mode(mut self, mode: AffinityMode) -> Self {
        self.config.affinity_mode = mode;
        self
    }

    /// How long an idle session keeps its worker binding (default 5 minutes).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.config.session_ttl = ttl;
        self
    }

    /// Whether a session idle for longer than the session TTL loses its
    /// programs and data too (default: off; deleting a session always does).
    pub fn expire_session_data(mut self, expire: bool) -> Self {
        self.config.expire_session_data = expire;
        self
    }

    /// Restricts which modules `python` programs may name: a program whose
    /// callable's module is not one of `prefixes` or inside one (`"my_pkg"`
    /// allows `my_pkg` and `my_pkg.sub`, not `my_pkgx`) is refused when it is
    /// created ([`PoolError::ProgramNotAllowed`](crate::PoolError::ProgramNotAllowed)),
    /// and workers refuse to build it too. Default: any module — a program
    /// definition is code (`os:system` is a callable), so set this whenever
    /// callers you do not fully trust can create programs.
    pub fn allowed_program_modules<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let prefixes = prefixes
            .into_iter()
            .map(|prefix| prefix.into().trim().trim_end_matches('.').to_owned())
            .collect();
        self.config.allowed_program_modules = Some(prefixes);
        self
    }

    /// Which environment variables workers get (default
    /// [`EnvPolicy::Inherit`](crate::EnvPolicy::Inherit): the host's whole
    /// environment); see [`EnvPolicy`](crate::EnvPolicy).
    pub fn env_policy(mut self, policy: crate::EnvPolicy) -> Self {
        self.python.env_policy = policy;
        self
    }

    /// Keeps session → worker bindings in `store` (default: in memory).
    pub fn affinity_store(mut self, store: impl AffinityStore + 'static) -> Self {
        self.affinity_store = Some(Arc::new(store));
        self
    }

    /// Keeps program definitions in `store` (default: in memory).
    pub fn program_store(mut self, store: impl ProgramStore + 'static) -> Self {
        self.program_store = Some(Arc::new(store));
        self
    }

    /// Keeps session data in `store` (default: in memory).
    pub fn session_data_store(mut self, store: impl SessionDataStore + 'static) -> Self {
        self.session_data_store = Some(Arc::new(store));
        self
    }

    /// Uses another worker implementation (a mock in tests, a custom launcher).
    pub fn spawner(mut self, spawner: impl WorkerSpawner) -> Self {
        self.spawner = Some(Arc::new(spawner));
        self
    }

    /// The Python interpreter (default `python3`).
    pub fn interpreter(mut self, interpreter: impl Into<String>) -> Self {
        self.python.interpreter = interpreter.into();
        self
    }

    /// A handler module name or `.py` file every worker imports at start.
    pub fn handler(mut self, handler: impl Into<String>) -> Self {
        self.python.handlers.push(handler.into());
        self
    }

    /// A folder prepended to the workers' `PYTHONPATH`.
    pub fn python_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.python.python_path.push(dir.into());
        self
    }

    /// An environment variable for the workers.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.python.env.push((key.into(), value.into()));
        self
    }

    /// Imports `module` (e.g. `"dspy"`) in every worker at start, so the
    /// first program does not pay for it; by default DSPy is imported only
    /// when a DSPy program is first used.
    pub fn preload(mut self, module: impl Into<String>) -> Self {
        self.python.preload.push(module.into());
        self
    }

    /// How workers start: [`StartMethod::Fork`] (the default on Linux: a
    /// template process imports the handlers and preloads once and each
    /// worker is forked from it) or [`StartMethod::Spawn`] (each worker its
    /// own interpreter).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.python.start_method = method;
        self
    }

    /// With [`StartMethod::Fork`]: whether one worker is kept forked ahead
    /// of need, so a replacement only adopts it (default true; one more idle
    /// process that shares the template's pages; see
    /// `PythonSpawnerConfig::standby`).
    pub fn fork_standby(mut self, standby: bool) -> Self {
        self.python.standby = standby;
        self
    }

    /// How many requests each worker holds at once (default: the worker
    /// decides, 1 when every handler is `serial`, else 64).
    pub fn worker_capacity(mut self, capacity: u32) -> Self {
        self.python.capacity = Some(capacity.max(1));
        self
    }

    /// The workers' log level (`debug`, `info`, `warning`, `error`).
    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.python.log_level = level.into();
        self
    }

    /// Replaces the whole Python worker configuration.
    pub fn python(mut self, config: PythonSpawnerConfig) -> Self {
        self.python = config;
        self
    }

    /// Validates the settings, starts the pool's background tasks and, in
    /// eager mode, spawns every worker concurrently. Returns at once; await
    /// [`Pool::ready`] to wait for the workers.
    pub fn build(self) -> Result<Pool, BuildError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(BuildError::NoRuntime);
        }
        let mut config = self.config;
        validate(&config)?;
        config.min_ready = self.min_ready.unwrap_or(match config.start_mode {
            StartMode::Eager => config.size,
            StartMode::Lazy => 0,
        });
        if config.min_ready > config.size + config.max_overflow {
            return Err(BuildError::InvalidSetting {
                setting: "min_ready",
                reason: format!(
                    "{} is more than size + max_overflow ({})",
                    config.min_ready,
                    config.size + config.max_overflow
                ),
            });
        }
        let mut python = self.python;
        python
            .allowed_program_modules
            .clone_from(&config.allowed_program_modules);
        let spawner = self
            .spawner
            .unwrap_or_else(|| Arc::new(PythonSpawner::new(python)));
        let clock: pypool_clock::SharedClock = Arc::new(TokioClock);
        let stores = Stores {
            affinity: self.affinity_store.unwrap_or_else(|| {
                Arc::new(InMemoryAffinityStore::new(
                    config.session_ttl,
                    Arc::clone(&clock),
                ))
            }),
            programs: self
                .program_store
                .unwrap_or_else(|| Arc::new(InMemoryProgramStore::new())),
            session_data: self
                .session_data_store
                .unwrap_or_else(|| Arc::new(InMemorySessionDataStore::new())),
        };
        let inner = Inner::new(config, spawner, stores, clock);
        Ok(Pool::start(inner))
    }
}

fn validate(config: &PoolConfig) -> Result<(), BuildError> {
    let invalid = |setting: &'static str, reason: &str| BuildError::InvalidSetting {
        setting,
        reason: reason.to_owned(),
    };
    if config.size == 0 && config.max_overflow == 0 {
        return Err(invalid(
            "size",
            "a pool needs at least one worker (size or max_overflow above 0)",
        ));
    }
    if config.queue_bound == 0 {
        return Err(invalid("queue_bound", "must be at least 1"));
    }
    let timeouts = &config.timeouts;
    for (setting, value) in [
        ("timeouts.spawn", timeouts.spawn),
        ("timeouts.checkout", timeouts.checkout),
        ("timeouts.request", timeouts.request),
        ("timeouts.health_check", timeouts.health_check),
    ] {
        if value.is_zero() {
            return Err(invalid(setting, "must be above zero"));
        }
    }
    if timeouts.stream_idle.is_some_and(|idle| idle.is_zero()) {
        return Err(invalid(
            "timeouts.stream_idle",
            "must be above zero (use None for no idle limit)",
        ));
    }
    if config
        .health_check_interval
        .is_some_and(|interval| interval.is_zero())
    {
        return Err(invalid(
            "health_check_interval",
            "must be above zero (use None to turn checks off)",
        ));
    }
    if let Some(prefixes) = &config.allowed_program_modules {
        if let Some(bad) = prefixes.iter().find(|prefix| !is_module_path(prefix)) {
            return Err(invalid(
                "allowed_program_modules",
                &format!("`{bad}` is not a Python module path (`package.module`)"),
            ));
        }
    }
    config
        .recovery
        .validate()
        .map_err(|error| invalid("recovery", &error.to_string()))?;
    config
        .spawn_breaker
        .validate()
        .map_err(|error| invalid("spawn_breaker", &error.to_string()))?;
    config
        .command_breaker
        .validate()
        .map_err(|error| invalid("command_breaker", &error.to_string()))?;
    Ok(())
}

/// Whether `text` is a dotted Python module path (`pkg.module`).
fn is_module_path(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|first| first.is_alphabetic() || first == '_')
                && part.chars().all(|c| c.is_alphanumeric() || c == '_')
        })
}

//! Behaviour mode's configuration: how every worker of a spawner behaves.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pypool_seam::{RemoteError, Request};
use pypool_wire::CommandInfo;
use serde_json::Value;

use crate::handshake::command;
use crate::worker_core::DEFAULT_RSS_BYTES;

/// Answers requests in behaviour mode (every command but the built-in `ping`
/// and `info`): a result or a remote error.
pub type Handler = Arc<dyn Fn(&Request) -> Result<Value, RemoteError> + Send + Sync>;

/// How long a behaviour-mode worker takes per request, on tokio's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatencyDistribution {
    /// Always the same.
    Fixed(Duration),
    /// Uniform in `[min, max)`, drawn from the seeded generator.
    Uniform {
        /// The shortest latency.
        min: Duration,
        /// The bound the latency stays below (equal to `min` for a fixed one).
        max: Duration,
    },
    /// The Nth request across the spawner (1-based) takes entry `(N - 1) % len`.
    Cycle(Vec<Duration>),
}

impl LatencyDistribution {
    /// The latency of the `number`th request (1-based), given a uniform `draw` in `[0, 1)`.
    pub(crate) fn sample(&self, number: u64, draw: f64) -> Duration {
        match self {
            Self::Fixed(latency) => *latency,
            Self::Uniform { min, max } => *min + max.saturating_sub(*min).mul_f64(draw),
            Self::Cycle(latencies) => {
                let len = u64::try_from(latencies.len()).unwrap_or(u64::MAX);
                number
                    .checked_sub(1)
                    .and_then(|index| index.checked_rem(len))
                    .and_then(|index| usize::try_from(index).ok())
                    .and_then(|index| latencies.get(index))
                    .copied()
                    .unwrap_or(Duration::ZERO)
            }
        }
    }
}

impl Default for LatencyDistribution {
    /// No latency at all.
    fn default() -> Self {
        Self::Fixed(Duration::ZERO)
    }
}

/// Which spawns of a behaviour-mode spawner fail (with
/// [`SpawnError::StartupFailed`](pypool_seam::SpawnError::StartupFailed),
/// kind `handler_import`). Spawns are numbered from 1 in call order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpawnFailure {
    /// Spawns 1 to N fail, later ones succeed.
    FirstN(u64),
    /// Every Nth spawn fails (N, 2N, …).
    EveryNth(u64),
}

impl SpawnFailure {
    /// Whether spawn number `number` (1-based) fails.
    pub(crate) fn fails(self, number: u64) -> bool {
        match self {
            Self::FirstN(count) => number <= count,
            Self::EveryNth(interval) => interval != 0 && number % interval == 0,
        }
    }
}

/// A behaviour that cannot be run, from
/// [`MockSpawner::with_behaviour`](crate::MockSpawner::with_behaviour).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BehaviourError {
    /// `failure_rate` is not a probability.
    #[error("failure_rate must be between 0.0 and 1.0, got {0}")]
    FailureRateOutOfRange(f64),
    /// `crash_every` is `Some(0)`.
    #[error("crash_every must be at least 1 (use None for no crashes)")]
    ZeroCrashInterval,
    /// `spawn_failure` is `EveryNth(0)`.
    #[error("SpawnFailure::EveryNth needs an interval of at least 1 (use None for no failures)")]
    ZeroSpawnFailureInterval,
    /// A uniform latency whose `min` exceeds its `max`.
    #[error("uniform latency needs min <= max, got min {min:?} and max {max:?}")]
    InvertedLatencyRange {
        /// The configured minimum.
        min: Duration,
        /// The configured maximum.
        max: Duration,
    },
    /// A cycle of no latencies.
    #[error("a latency cycle needs at least one entry (use Fixed(Duration::ZERO) for none)")]
    EmptyLatencyCycle,
}

/// How every worker of a behaviour-mode [`MockSpawner`](crate::MockSpawner)
/// behaves. Build it with struct update syntax over
/// [`Behaviour::default()`] or with the builder methods.
///
/// Requests are numbered from 1 across the whole spawner, in the order
/// workers start handling them; the seeded generator makes the same numbers
/// fail (and get the same uniform latency) on every run with the same seed.
#[derive(Clone)]
pub struct Behaviour {
    /// Time each request takes before its answer.
    pub latency: LatencyDistribution,
    /// The probability (0.0 to 1.0) that a request gets a Python-exception
    /// reply (`RuntimeError`) instead of its handler's answer.
    pub failure_rate: f64,
    /// Request number N, 2N, … crashes its worker (signal 9) after its
    /// latency, instead of being answered. `None`: never.
    pub crash_every: Option<u64>,
    /// Time from spawn to handshake; longer than the spawn request's
    /// handshake timeout means the spawn fails with a handshake timeout.
    pub spawn_latency: Duration,
    /// Which spawns fail. `None`: none.
    pub spawn_failure: Option<SpawnFailure>,
    /// Answers every command but `ping` and `info`. `None`: echo the
    /// arguments as `{"echo": args, "worker_id": id}`.
    pub handler: Option<Handler>,
    /// Commands announced after the built-in `ping` and `info`.
    pub commands: Vec<CommandInfo>,
    /// Seed of the generator behind `failure_rate` and uniform latencies.
    pub seed: u64,
    /// Resident memory a fresh worker reports.
    pub rss_bytes: u64,
    /// Resident memory a worker gains per request it answers.
    pub rss_growth_per_request: u64,
    /// How many requests a worker holds at once (its handshake's
    /// `capacity`; 0 counts as 1). Above 1, a worker serves up to that many
    /// requests concurrently, each after its own latency.
    pub capacity: u32,
    /// Answer every request inside `call`, in the caller's task, without a
    /// worker task: the fastest mock, for measuring the pool's own overhead.
    /// `latency`, `failure_rate` and `crash_every` are ignored.
    pub instant: bool,
    /// How many chunks (`{"seq": i}`) a worker sends, under the stream's
    /// credit, for a request sent with `call_stream`, before its answer (an
    /// instant worker sends none).
    pub stream_chunks: u64,
}

impl Default for Behaviour {
    /// Instant echo workers that never fail, seed 0, 32 MiB resident memory.
    fn default() -> Self {
        Self {
            latency: LatencyDistribution::default(),
            failure_rate: 0.0,
            crash_every: None,
            spawn_latency: Duration::ZERO,
            spawn_failure: None,
            handler: None,
            commands: Vec::new(),
            seed: 0,
            rss_bytes: DEFAULT_RSS_BYTES,
            rss_growth_per_request: 0,
            capacity: 1,
            instant: false,
            stream_chunks: 0,
        }
    }
}

impl Behaviour {
    /// Sets [`latency`](Self::latency).
    pub fn latency(mut self, latency: LatencyDistribution) -> Self {
        self.latency = latency;
        self
    }

    /// Sets a fixed [`latency`](Self::latency).
    pub fn fixed_latency(self, latency: Duration) -> Self {
        self.latency(LatencyDistribution::Fixed(latency))
    }

    /// Sets [`failure_rate`](Self::failure_rate).
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate = rate;
        self
    }

    /// Sets [`crash_every`](Self::crash_every) to `Some(every)`.
    pub fn crash_every(mut self, every: u64) -> Self {
        self.crash_every = Some(every);
        self
    }

    /// Sets [`spawn_latency`](Self::spawn_latency).
    pub fn spawn_latency(mut self, latency: Duration) -> Self {
        self.spawn_latency = latency;
        self
    }

    /// Sets [`spawn_failure`](Self::spawn_failure).
    pub fn spawn_failure(mut self, failure: SpawnFailure) -> Self {
        self.spawn_failure = Some(failure);
        self
    }

    /// Sets [`handler`](Self::handler).
    pub fn handler(
        mut self,
        handler: impl Fn(&Request) -> Result<Value, RemoteError> + Send + Sync + 'static,
    ) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// Adds a command to [`commands`](Self::commands).
    pub fn command(mut self, name: &str, idempotent: bool) -> Self {
        self.commands.push(command(name, idempotent));
        self
    }

    /// Sets [`seed`](Self::seed).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets [`rss_bytes`](Self::rss_bytes) and
    /// [`rss_growth_per_request`](Self::rss_growth_per_request).
    pub fn rss(mut self, initial_bytes: u64, growth_per_request: u64) -> Self {
        self.rss_bytes = initial_bytes;
        self.rss_growth_per_request = growth_per_request;
        self
    }

    /// Sets [`capacity`](Self::capacity).
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets [`stream_chunks`](Self::stream_chunks).
    pub fn stream_chunks(mut self, chunks: u64) -> Self {
        self.stream_chunks = chunks;
        self
    }

    /// Sets [`instant`](Self::instant).
    pub fn instant(mut self, instant: bool) -> Self {
        self.instant = instant;
        self
    }

    /// Checks that this behaviour can be run.
    pub fn validate(&self) -> Result<(), BehaviourError> {
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err(BehaviourError::FailureRateOutOfRange(self.failure_rate));
        }
        if self.crash_every == Some(0) {
            return Err(BehaviourError::ZeroCrashInterval);
        }
        if self.spawn_failure == Some(SpawnFailure::EveryNth(0)) {
            return Err(BehaviourError::ZeroSpawnFailureInterval);
        }
        match &self.latency {
            LatencyDistribution::Uniform { min, max } if min > max => {
                Err(BehaviourError::InvertedLatencyRange {
                    min: *min,
                    max: *max,
                })
            }
            LatencyDistribution::Cycle(latencies) if latencies.is_empty() => {
                Err(BehaviourError::EmptyLatencyCycle)
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Behaviour")
            .field("latency", &self.latency)
            .field("failure_rate", &self.failure_rate)
            .field("crash_every", &self.crash_every)
            .field("spawn_latency", &self.spawn_latency)
            .field("spawn_failure", &self.spawn_failure)
            .field("handler", &self.handler.as_ref().map(|_| "custom"))
            .field("commands", &self.commands)
            .field("seed", &self.seed)
            .field("rss_bytes", &self.rss_bytes)
            .field("rss_growth_per_request", &self.rss_growth_per_request)
            .field("capacity", &self.capacity)
            .field("instant", &self.instant)
            .field("stream_chunks", &self.stream_chunks)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_takes_entries_in_turn() {
        let cycle =
            LatencyDistribution::Cycle(vec![Duration::from_millis(1), Duration::from_millis(2)]);
        let taken: Vec<_> = (1..=4).map(|n| cycle.sample(n, 0.5)).collect();
        assert_eq!(taken, [1, 2, 1, 2].map(Duration::from_millis),);
    }

    #[test]
    fn uniform_spans_its_range() {
        let uniform = LatencyDistribution::Uniform {
            min: Duration::from_millis(10),
            max: Duration::from_millis(20),
        };
        assert_eq!(uniform.sample(1, 0.0), Duration::from_millis(10));
        assert_eq!(uniform.sample(1, 0.5), Duration::from_millis(15));
    }

    #[test]
    fn spawn_failure_patterns() {
        let first: Vec<_> = (1..=4).map(|n| SpawnFailure::FirstN(2).fails(n)).collect();
        assert_eq!(first, [true, true, false, false]);
        let every: Vec<_> = (1..=4)
            .map(|n| SpawnFailure::EveryNth(2).fails(n))
            .collect();
        assert_eq!(every, [false, true, false, true]);
    }

    #[test]
    fn validation_names_the_bad_setting() {
        assert_eq!(Behaviour::default().validate(), Ok(()));
        assert_eq!(
            Behaviour::default().failure_rate(1.5).validate(),
            Err(BehaviourError::FailureRateOutOfRange(1.5))
        );
        assert!(
            Behaviour::default()
                .failure_rate(f64::NAN)
                .validate()
                .is_err()
        );
        assert_eq!(
            Behaviour::default().crash_every(0).validate(),
            Err(BehaviourError::ZeroCrashInterval)
        );
        assert_eq!(
            Behaviour::default()
                .spawn_failure(SpawnFailure::EveryNth(0))
                .validate(),
            Err(BehaviourError::ZeroSpawnFailureInterval)
        );
        assert_eq!(
            Behaviour::default()
                .latency(LatencyDistribution::Cycle(Vec::new()))
                .validate(),
            Err(BehaviourError::EmptyLatencyCycle)
        );
        let inverted = Behaviour::default().latency(LatencyDistribution::Uniform {
            min: Duration::from_secs(2),
            max: Duration::from_secs(1),
        });
        assert!(matches!(
            inverted.validate(),
            Err(BehaviourError::InvertedLatencyRange { .. })
        ));
    }
}

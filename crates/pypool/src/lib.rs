#![doc = include_str!("../README.md")]
//!
//! ## What this crate must not know
//!
//! Every request drives its worker's state machine (`pypool-lifecycle`); a
//! failed one goes through the recovery policy (`pypool-recovery`), and
//! circuit breakers (`pypool-breaker`) guard spawning and each command.
//! Workers sit behind the `pypool-seam` traits: real Python processes
//! (`pypool-process`) by default, or the scriptable mock (`pypool-mock`) in
//! tests. This crate must not know bytes, frames or `tokio::process`: it
//! talks to workers only through the seam.

mod builder;
mod checkout;
mod clock;
mod config;
mod core;
mod error;
mod execute;
mod health;
mod inner;
mod job;
mod lease;
pub mod metrics;
mod periodic;
mod pool;
mod session;
mod settings_check;
mod spawning;
mod status;
mod timeouts;
#[cfg(feature = "tower")]
mod tower_service;
#[cfg(test)]
mod unit_tests;

pub use builder::{BuildError, PoolBuilder};
pub use config::StartMode;
pub use core::PoolCounters;
pub use error::PoolError;
pub use pool::{Pool, ShutdownReport};
pub use session::{Session, SessionDeleted};
pub use status::{Status, WorkerStatus};
pub use timeouts::Timeouts;
#[cfg(feature = "tower")]
pub use tower_service::{PoolFuture, PoolRequest, PoolService};

pub use pypool_affinity::{AffinityMode, AffinityStore, IdError, InMemoryAffinityStore, SessionId};
pub use pypool_breaker::{BreakerConfig, BreakerState, RateTrip};
pub use pypool_lifecycle::{Health, RecycleLimits, State as WorkerState};
pub use pypool_process::{
    EnvPolicy, EnvironmentReport, MIN_PYTHON, PythonSpawnerConfig, StartMethod, check_environment,
    embedded_runtime_digest,
};
pub use pypool_recovery::{Jitter, RecoveryConfig};
pub use pypool_seam::{
    MAX_NESTING_DEPTH, RemoteError, RemoteErrorKind, SpawnError, WorkerExit, WorkerId,
};
pub use pypool_store::{
    InMemoryProgramStore, InMemorySessionDataStore, Namespace, ProgramId, ProgramKind, ProgramSpec,
    ProgramStore, SessionDataStore, StoreError, StoredProgram,
};

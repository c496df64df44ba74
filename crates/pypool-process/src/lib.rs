//! Real Python workers behind pypool's worker seam.
//!
//! [`PythonSpawner`] implements [`pypool_seam::WorkerSpawner`]: it starts
//! `python -m pypool_worker` without a shell, in its own process group, waits
//! for the handshake (with a timeout, reporting what the worker printed on
//! stderr if it died), and hands back a [`ProcessConnection`] that sends framed
//! requests, matches replies by id, forwards every stderr line to `tracing`
//! tagged with the worker id, and kills the whole process tree when the last
//! handle is dropped.
//!
//! Signals go only to the process it spawned (its group, and its descendants
//! found in `/proc`), never to a pid a worker reported, and never after the
//! process was reaped; the handshake's pid must lie in the spawned tree. The
//! worker's guardian (`pypool_worker.guardian`) takes the worker's tree down
//! when the host dies. See ARCHITECTURE.md, "Process ownership".
//!
//! This is the only crate of the workspace that knows `tokio::process`,
//! process groups and signals. It must not know pools, policies or sessions;
//! bytes and frames belong to `pypool-wire`, whose codec it plugs into the
//! child's pipes.

mod config;
mod connection;
mod environment;
mod fork;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod memory;
mod runtime;
mod signals;
mod spawner;
mod stderr;

pub use config::{EnvPolicy, PythonSpawnerConfig, StartMethod};
pub use connection::ProcessConnection;
pub use environment::{EnvironmentReport, MIN_PYTHON, check_environment};
pub use runtime::{RuntimeUnpackError, embedded_runtime_digest, embedded_runtime_dir};
pub use spawner::PythonSpawner;

//! In-process mock workers behind pypool's worker seam.
//!
//! [`MockSpawner`] implements [`pypool_seam::WorkerSpawner`] and hands out
//! [`MockConnection`]s implementing [`pypool_seam::WorkerConnection`], so the
//! pool facade's whole test suite runs without Python. It behaves like the
//! real process connection where the pool can tell: replies are matched by
//! id, an abandoned call's request stays in flight until the worker answers
//! and that late answer is discarded, a protocol violation kills the worker,
//! `terminate()` lets in-flight requests finish then exits with code 0,
//! `kill()` (or dropping the connection) exits with signal 9 at once.
//!
//! Two modes, in the style of `tower-test`:
//!
//! * **Scripted** ([`MockSpawner::scripted`]): the test decides every step.
//!   Each `spawn` arrives as a [`PendingSpawn`] (accept, fail, exit before the
//!   handshake, hang until the handshake timeout), each accepted worker is
//!   driven through a [`WorkerHandle`], and each request arrives as a
//!   [`PendingRequest`] (reply, error, reply later, hang, crash, garbage,
//!   reply to an unknown id; for a `call_stream`, send chunks one at a time
//!   under the stream's credit, then end it).
//! * **Behaviour** ([`MockSpawner::with_behaviour`]): workers are tokio tasks
//!   that answer on their own, with a [`LatencyDistribution`], a failure rate,
//!   a crash every N requests and spawn failures, reproducibly from a seed;
//!   [`BehaviourStats`] counts what happened; a streaming request gets
//!   [`Behaviour::stream_chunks`] chunks under its credit before its answer.
//!   Meant for load tests.
//!
//! All timing uses tokio's clock, so tests run under `tokio::time::pause`.
//!
//! This crate must not know processes, pipes, signals (beyond reporting a
//! signal number in a [`WorkerExit`](pypool_seam::WorkerExit)) or bytes: it
//! exchanges the message *types* of `pypool-wire` in memory, never frames. It
//! knows nothing of pools or policies either.
//!
//! # Scripted mode
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use pypool_mock::{Delivery, MockSpawner};
//! use pypool_seam::{CallError, Outcome, Request, SpawnRequest, WorkerExit, WorkerSpawner};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let (spawner, mut spawns) = MockSpawner::scripted();
//! let pool_side = tokio::spawn(async move {
//!     let request = SpawnRequest { worker_id: 1, handshake_timeout: Duration::from_secs(5) };
//!     spawner.spawn(request).await
//! });
//!
//! // The test accepts the spawn and gets a handle on the new worker.
//! let mut worker = spawns.next_spawn().await.unwrap().accept();
//! let connection = pool_side.await.unwrap().unwrap();
//! assert_eq!(connection.handshake().pid, 10_001);
//!
//! // The pool calls; the test answers.
//! let call = |id| {
//!     let connection = Arc::clone(&connection);
//!     tokio::spawn(async move {
//!         let request = Request { id, command: "ping".into(), args: Default::default() };
//!         connection.call(request).await
//!     })
//! };
//! let first = call(1);
//! let pending = worker.next_request().await.unwrap();
//! assert_eq!(pending.reply(serde_json::json!("pong")), Delivery::Delivered);
//! assert_eq!(
//!     first.await.unwrap(),
//!     Ok(Outcome::Ok { result: serde_json::json!("pong") })
//! );
//!
//! // Now the worker dies in the middle of a request.
//! let second = call(2);
//! worker.next_request().await.unwrap().crash(WorkerExit::signal(9));
//! assert!(matches!(
//!     second.await.unwrap(),
//!     Err(CallError::WorkerExited { request_id: 2, .. })
//! ));
//! # }
//! ```
//!
//! # Behaviour mode
//!
//! ```
//! use std::time::Duration;
//! use pypool_mock::{Behaviour, MockSpawner};
//! use pypool_seam::{CallError, Request, SpawnRequest, WorkerSpawner};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let behaviour = Behaviour::default()
//!     .fixed_latency(Duration::from_millis(20))
//!     .crash_every(3);
//! let spawner = MockSpawner::with_behaviour(behaviour).unwrap();
//! let request = SpawnRequest { worker_id: 7, handshake_timeout: Duration::from_secs(5) };
//! let worker = spawner.spawn(request).await.unwrap();
//!
//! let mut outcomes = Vec::new();
//! for id in 1..=3 {
//!     let request = Request { id, command: "echo".into(), args: Default::default() };
//!     outcomes.push(worker.call(request).await);
//! }
//! assert!(outcomes[0].is_ok() && outcomes[1].is_ok());
//! assert!(matches!(outcomes[2], Err(CallError::WorkerExited { .. })));
//! assert_eq!(spawner.stats().crashes_injected(), 1);
//! assert_eq!(spawner.stats().requests_served(), 2);
//! # }
//! ```

mod behaviour;
mod behaviour_worker;
mod connection;
mod handshake;
mod prng;
mod remote_error;
mod scripted;
mod spawner;
mod stats;
mod worker_core;
mod worker_handle;

pub use behaviour::{Behaviour, BehaviourError, Handler, LatencyDistribution, SpawnFailure};
pub use connection::MockConnection;
pub use handshake::{MOCK_PYTHON_VERSION, command, default_handshake, mock_pid};
pub use remote_error::{cancelled, python_exception};
pub use scripted::{PendingSpawn, SpawnHandle};
pub use spawner::MockSpawner;
pub use stats::BehaviourStats;
pub use worker_core::{ChunkDelivery, DEFAULT_RSS_BYTES, Delivery};
pub use worker_handle::{PendingRequest, WorkerHandle};

//! Session ids and session-to-worker affinity for pypool.
//!
//! The old system's worst bug was that a program created on worker A could
//! not run on worker B. In pypool, programs live centrally in the host
//! (`pypool-store`) and are sent to whichever worker runs them, so a session
//! only *prefers* a worker (its caches are warm there) and never depends on
//! one. This crate holds the pieces of that preference:
//!
//! - [`SessionId`] and [`validate_id`], the id rules every pypool id shares;
//! - [`AffinityMode`], how strictly the pool keeps a session on its worker
//!   (the pool facade implements the behaviour);
//! - [`AffinityStore`], an async trait for the session → worker bindings,
//!   with idle expiry, so that a networked store can implement it later, and
//!   [`InMemoryAffinityStore`], the in-process implementation.
//!
//! This crate must not know how workers run or how requests are routed: no
//! processes, no wire protocol, no pool, no programs. Worker ids are plain
//! numbers ([`WorkerId`]); time comes only from the injected
//! [`pypool_clock::SharedClock`], so tests use a `ManualClock` and never sleep.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use pypool_affinity::{AffinityStore, InMemoryAffinityStore, SessionId};
//! use pypool_clock::ManualClock;
//!
//! # futures::executor::block_on(async {
//! let clock = ManualClock::new();
//! let store: Arc<dyn AffinityStore> =
//!     Arc::new(InMemoryAffinityStore::new(Duration::from_secs(300), Arc::new(clock.clone())));
//! let session: SessionId = "user-7:chat".parse()?;
//!
//! assert_eq!(store.lookup(&session).await, None, "first call: no preference yet");
//! store.bind(&session, 2).await;
//! assert_eq!(store.lookup(&session).await, Some(2));
//!
//! // Worker 2 is replaced: its sessions rebind on their next call.
//! assert_eq!(store.unbind_worker(2).await, 1);
//! assert_eq!(store.lookup(&session).await, None);
//! # Ok::<(), pypool_affinity::IdError>(())
//! # }).unwrap();
//! ```

mod id;
mod memory;
mod mode;
mod recency;
mod store;

pub use id::{IdError, MAX_ID_BYTES, SessionId, is_id_character, validate_id};
pub use memory::{AffinityStats, InMemoryAffinityStore};
pub use mode::AffinityMode;
pub use store::{AffinityStore, WorkerId};

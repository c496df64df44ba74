//! Central storage for pypool: program definitions and per-session data.
//!
//! The old system's worst bug was that a program created on worker A could
//! not run on worker B, because programs lived inside workers. In pypool the
//! host keeps every program here, validated and content-versioned, and sends
//! the definition to whichever worker runs it (workers only cache programs by
//! id and [version](ProgramSpec::version)). Sessions likewise keep their small
//! shared state here, not in a worker.
//!
//! - [`ProgramStore`] / [`InMemoryProgramStore`]: [`ProgramSpec`] definitions
//!   (Python callables and DSPy modules) owned by a [`Namespace`] — global or
//!   one session. A session sees its own programs and the global ones, its
//!   own shadowing a global one with the same id, and never another
//!   session's.
//! - [`SessionDataStore`] / [`InMemorySessionDataStore`]: a bounded JSON
//!   key-value map per session ([`SessionDataLimits`]).
//!
//! Both contracts are async traits so that a Redis-backed store shared by
//! several pool hosts will implement these traits later. This crate must not
//! know Redis, workers, processes or the wire protocol: it stores and
//! validates definitions and nothing else. It never stores secrets either:
//! a definition holding an API key is rejected (it names the environment
//! variable with `api_key_env` instead).
//!
//! ```
//! use pypool_affinity::SessionId;
//! use pypool_store::{
//!     InMemoryProgramStore, Namespace, ProgramId, ProgramKind, ProgramSpec, ProgramStore, StoreError,
//! };
//! use serde_json::json;
//!
//! # futures::executor::block_on(async {
//! let store = InMemoryProgramStore::new();
//! let alice = SessionId::new("alice")?;
//! let qa = ProgramId::new("qa")?;
//! let spec = ProgramSpec::new(
//!     ProgramKind::Dspy,
//!     json!({"module": "ChainOfThought", "signature": "question -> answer"}),
//! );
//!
//! let stored = store.create(Namespace::Session(alice.clone()), qa.clone(), spec).await?;
//! assert_eq!(stored.version.len(), 16);
//! assert_eq!(store.get(Some(&alice), &qa).await?, stored);
//!
//! let bob = SessionId::new("bob")?;
//! let hidden = store.get(Some(&bob), &qa).await.unwrap_err();
//! assert!(matches!(hidden, StoreError::ProgramNotFound { .. }));
//! assert_eq!(
//!     hidden.to_string(),
//!     "program `qa` not found for session `bob`; create it first \
//!      (sessions see their own programs and global ones)"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod error;
mod memory_programs;
mod memory_session_data;
mod namespace;
mod program_id;
mod program_store;
mod session_data;
mod spec;
mod version;

pub use error::StoreError;
pub use memory_programs::InMemoryProgramStore;
pub use memory_session_data::InMemorySessionDataStore;
pub use namespace::Namespace;
pub use program_id::ProgramId;
pub use program_store::{ProgramStore, StoredProgram};
pub use session_data::{SESSION_DATA_KEY_KIND, SessionDataLimits, SessionDataStore};
pub use spec::{ProgramKind, ProgramSpec, is_api_key_name};
pub use version::{canonical_json, content_version, fnv1a_64};

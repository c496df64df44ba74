//! Errors of the program and session-data stores.

use pypool_affinity::{IdError, SessionId};

use crate::{Namespace, ProgramId, ProgramKind};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An id or session-data key broke the id rules.
    #[error(transparent)]
    InvalidId(#[from] IdError),

    /// `create` was given an id that already exists in that namespace.
    #[error(
        "program `{id}` already exists in {namespace}; use put to replace it, or pick another id"
    )]
    ProgramExists {
        /// The id that is taken.
        id: ProgramId,
        /// Where it is taken.
        namespace: Namespace,
    },

    /// No program with this id is visible to the caller (another session's
    /// programs are never visible).
    #[error(
        "program `{id}` not found{}; create it first (sessions see their own programs and global ones)",
        match session { Some(session) => format!(" for session `{session}`"), None => " in the global namespace".to_owned() }
    )]
    ProgramNotFound {
        /// The id asked for.
        id: ProgramId,
        /// The session that asked, or `None` for a global lookup.
        session: Option<SessionId>,
    },

    /// The program definition is not valid for its kind.
    #[error("invalid {kind} program definition: {problem}")]
    InvalidSpec {
        /// The kind of program.
        kind: ProgramKind,
        /// What is wrong and how to fix it.
        problem: String,
    },

    /// The program definition contains an API key.
    #[error(
        "API keys must not be stored in program definitions (found key `{path}`); name the environment variable with `api_key_env`"
    )]
    ApiKeyInDefinition {
        /// Where the key was found, e.g. `lm.api_key` or `demos[2].secret_key`.
        path: String,
    },

    /// A session-data value is too large.
    #[error(
        "value for session data key `{key}` is larger than {max_bytes} bytes as JSON; keep large data elsewhere and store a reference"
    )]
    SessionValueTooLarge {
        /// The key being set.
        key: String,
        /// The largest value allowed, in bytes of JSON.
        max_bytes: usize,
    },

    /// A session already holds the maximum number of session-data keys.
    #[error(
        "session `{session}` already holds {max_keys} session data keys, the maximum; remove one or reuse an existing key"
    )]
    TooManySessionKeys {
        /// The session.
        session: SessionId,
        /// The most keys a session may hold.
        max_keys: usize,
    },

    /// The backing store (a shared Redis, say) did not answer in time or
    /// failed; nothing is known about whether the operation was applied.
    /// In-memory stores never return it.
    #[error(
        "the shared store is unavailable ({operation}): {reason}; check that it is running and reachable, pypool reconnects on its own"
    )]
    StoreUnavailable {
        /// The store operation that failed, e.g. `program get`.
        operation: &'static str,
        /// What the store client reported (never a password).
        reason: String,
    },
}

//! The program store contract.

use async_trait::async_trait;
use pypool_affinity::SessionId;
use serde::{Deserialize, Serialize};

use crate::{Namespace, ProgramId, ProgramSpec, StoreError};

/// A validated program definition as stored, with its owner and content version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredProgram {
    /// The program's id (unique within its namespace).
    pub id: ProgramId,
    /// Who owns it.
    pub owner: Namespace,
    /// The definition.
    pub spec: ProgramSpec,
    /// The content version, [`ProgramSpec::version`]: workers cache programs
    /// by (namespace, id, version), so a changed definition is never run from a stale cache.
    pub version: String,
}

impl StoredProgram {
    /// Validates `spec` and computes its version; every store builds its
    /// records this way.
    pub fn new(owner: Namespace, id: ProgramId, spec: ProgramSpec) -> Result<Self, StoreError> {
        spec.validate()?;
        let version = spec.version();
        Ok(Self {
            id,
            owner,
            spec,
            version,
        })
    }
}

/// Program definitions, kept centrally so any worker can run any program.
///
/// Visibility: a caller with a session sees its own programs and the global
/// ones, and its own program shadows a global one with the same id; a caller
/// without a session sees only global programs. Another session's programs
/// are invisible: asking for one is [`StoreError::ProgramNotFound`], exactly
/// as if it did not exist.
///
/// The `namespace` passed to the writing methods must be the caller's own
/// (its session, or global for an administrator): the pool facade derives it
/// from the caller, never from request data.
#[async_trait]
pub trait ProgramStore: Send + Sync + std::fmt::Debug {
    /// Stores a new program. Fails with [`StoreError::ProgramExists`] if the
    /// id is taken in `namespace` (use [`put`](Self::put) to replace), or
    /// with a validation error if the definition is invalid.
    async fn create(
        &self,
        namespace: Namespace,
        id: ProgramId,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, StoreError>;

    /// Stores a program, replacing any with the same id in `namespace`. The
    /// version changes if and only if the definition changes.
    async fn put(
        &self,
        namespace: Namespace,
        id: ProgramId,
        spec: ProgramSpec,
    ) -> Result<StoredProgram, StoreError>;

    /// The program `id` as `viewer` sees it: its own if it has one, otherwise
    /// the global one.
    async fn get(
        &self,
        viewer: Option<&SessionId>,
        id: &ProgramId,
    ) -> Result<StoredProgram, StoreError>;

    /// Every program `viewer` sees (its own and the global ones it does not
    /// shadow), sorted by id. Fails only when the store cannot be reached
    /// ([`StoreError::StoreUnavailable`]): "no programs" is never a stand-in
    /// for "could not look".
    async fn list(&self, viewer: Option<&SessionId>) -> Result<Vec<StoredProgram>, StoreError>;

    /// Deletes the program `id` from `namespace` (only there: deleting a
    /// session's program uncovers a global one it shadowed).
    async fn delete(&self, namespace: &Namespace, id: &ProgramId) -> Result<(), StoreError>;

    /// Deletes all of `session`'s programs (the session ended) and returns
    /// how many there were. Fails when the store cannot be reached, so a
    /// caller never believes a session's programs gone when they are not.
    async fn delete_session(&self, session: &SessionId) -> Result<usize, StoreError>;
}

//! Who owns a program.

use std::fmt;

use pypool_affinity::SessionId;
use serde::{Deserialize, Serialize};

/// The owner of a stored program.
///
/// A session sees its own programs and the global ones; its own program
/// shadows a global one with the same id; it never sees another session's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    /// Visible to every session (and to callers without a session).
    Global,
    /// Visible only to this session.
    Session(SessionId),
}

impl Namespace {
    /// The owning session, or `None` for [`Namespace::Global`].
    pub fn session(&self) -> Option<&SessionId> {
        match self {
            Self::Global => None,
            Self::Session(session) => Some(session),
        }
    }
}

impl From<SessionId> for Namespace {
    fn from(session: SessionId) -> Self {
        Self::Session(session)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Global => f.write_str("the global namespace"),
            Self::Session(session) => write!(f, "session `{session}`"),
        }
    }
}

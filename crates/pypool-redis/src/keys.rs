//! The key layout (documented in ARCHITECTURE.md, "pypool-redis").
//!
//! Every key starts with the prefix `pypool:{pool}`. Ids follow the id
//! rules (letters, digits, `_ - . :`), and each id is the *last* part of
//! its key, so a `:` inside an id cannot make two keys collide.

use pypool_affinity::SessionId;
use pypool_store::Namespace;

/// `{prefix}:prog:g`, the hash of global programs, or
/// `{prefix}:prog:s:{session}`, the hash of one session's programs (field:
/// program id; value: the `StoredProgram` as JSON, version included).
pub(crate) fn programs(prefix: &str, namespace: &Namespace) -> String {
    match namespace {
        Namespace::Global => format!("{prefix}:prog:g"),
        Namespace::Session(session) => session_programs(prefix, session),
    }
}

/// `{prefix}:prog:s:{session}`.
pub(crate) fn session_programs(prefix: &str, session: &SessionId) -> String {
    format!("{prefix}:prog:s:{session}")
}

/// `{prefix}:data:{session}`, the hash of one session's data (field: key;
/// value: compact JSON).
pub(crate) fn session_data(prefix: &str, session: &SessionId) -> String {
    format!("{prefix}:data:{session}")
}

/// `{prefix}:host:{host}`, a host's heartbeat (exists while the host lives).
pub(crate) fn heartbeat(prefix: &str, host: &str) -> String {
    format!("{prefix}:host:{host}")
}

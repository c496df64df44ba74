//! The handshake a mock worker announces, and the host-side check of it.

use pypool_seam::{Handshake, SpawnError, SpawnRequest, WorkerId};
use pypool_wire::{CommandInfo, Concurrency, PROTOCOL_VERSION};

/// The Python version mock workers announce.
pub const MOCK_PYTHON_VERSION: &str = "3.11.0-mock";

/// The fake process id of mock worker `worker_id`: `10000 + worker_id`
/// (saturating at `u32::MAX`).
pub fn mock_pid(worker_id: WorkerId) -> u32 {
    u32::try_from(worker_id.saturating_add(10_000)).unwrap_or(u32::MAX)
}

/// The handshake a mock worker sends by default: protocol
/// [`PROTOCOL_VERSION`], the requested worker id, pid `10000 + id`, Python
/// [`MOCK_PYTHON_VERSION`], and the built-in idempotent commands `ping` and
/// `info` followed by `extra_commands` (an extra command named `ping` or
/// `info` replaces the built-in entry).
pub fn default_handshake(worker_id: WorkerId, extra_commands: &[CommandInfo]) -> Handshake {
    let mut commands: Vec<CommandInfo> = ["ping", "info"]
        .into_iter()
        .filter(|builtin| !extra_commands.iter().any(|extra| extra.name == *builtin))
        .map(|name| CommandInfo {
            name: name.to_owned(),
            idempotent: true,
            concurrency: Concurrency::Serial,
        })
        .collect();
    commands.extend_from_slice(extra_commands);
    Handshake {
        protocol: PROTOCOL_VERSION,
        worker_id,
        pid: mock_pid(worker_id),
        python_version: MOCK_PYTHON_VERSION.to_owned(),
        commands,
        capacity: 1,
    }
}

/// A command entry for [`default_handshake`]'s `extra_commands`.
pub fn command(name: &str, idempotent: bool) -> CommandInfo {
    CommandInfo {
        name: name.to_owned(),
        idempotent,
        concurrency: Concurrency::Serial,
    }
}

/// The checks the real spawner makes on a handshake before handing the
/// worker to the pool.
pub(crate) fn check_handshake(
    handshake: &Handshake,
    request: &SpawnRequest,
) -> Result<(), SpawnError> {
    if handshake.protocol != PROTOCOL_VERSION {
        return Err(SpawnError::ProtocolMismatch {
            worker_id: request.worker_id,
            worker_version: handshake.protocol,
            host_version: PROTOCOL_VERSION,
        });
    }
    if handshake.worker_id != request.worker_id {
        return Err(SpawnError::BadHandshake {
            worker_id: request.worker_id,
            reason: format!(
                "it announced worker id {}, expected {}",
                handshake.worker_id, request.worker_id
            ),
            stderr_tail: String::new(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_handshake_lists_builtins_then_extras() {
        let handshake = default_handshake(4, &[command("summarise", false)]);
        assert_eq!(handshake.pid, 10_004);
        assert_eq!(handshake.worker_id, 4);
        let names: Vec<_> = handshake
            .commands
            .iter()
            .map(|c| (c.name.as_str(), c.idempotent))
            .collect();
        assert_eq!(
            names,
            [("ping", true), ("info", true), ("summarise", false)]
        );
    }

    #[test]
    fn an_extra_builtin_name_replaces_the_builtin() {
        let handshake = default_handshake(1, &[command("info", false)]);
        let names: Vec<_> = handshake
            .commands
            .iter()
            .map(|c| (c.name.as_str(), c.idempotent))
            .collect();
        assert_eq!(names, [("ping", true), ("info", false)]);
    }

    #[test]
    fn pid_saturates() {
        assert_eq!(mock_pid(u64::MAX), u32::MAX);
    }
}

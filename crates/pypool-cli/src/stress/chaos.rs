//! Chaos: killing a worker now and then, as a crash in production would.

use pypool::{Pool, WorkerId, WorkerState};
use serde::Serialize;

use super::rng::Rng;

/// What one strike did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum Strike {
    /// The worker's process was sent SIGKILL.
    Killed {
        /// The worker.
        worker_id: WorkerId,
        /// Its process.
        pid: u32,
    },
    /// No worker was serving (all starting or gone).
    NoTarget,
    /// The signal could not be sent.
    Failed {
        /// The worker.
        worker_id: WorkerId,
        /// Why.
        reason: String,
    },
}

/// Something that hurts the pool on purpose.
pub trait Chaos: Send {
    /// Strikes once.
    fn strike(&mut self, pool: &Pool) -> Strike;
}

/// SIGKILLs the process of a random serving (ready or busy) worker.
#[derive(Debug, Clone)]
pub struct KillRandomWorker {
    rng: Rng,
}

impl KillRandomWorker {
    /// Victims are drawn from a generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed ^ 0xC4A0_5EED),
        }
    }
}

impl Chaos for KillRandomWorker {
    fn strike(&mut self, pool: &Pool) -> Strike {
        let candidates: Vec<(WorkerId, u32)> = pool
            .status()
            .worker_details
            .iter()
            .filter(|worker| matches!(worker.state, WorkerState::Ready | WorkerState::Busy))
            .filter_map(|worker| Some((worker.id, worker.pid?)))
            .collect();
        let Some(&(worker_id, pid)) = self.rng.pick(&candidates) else {
            return Strike::NoTarget;
        };
        match sigkill_child(pid) {
            Ok(()) => {
                tracing::info!(worker_id, pid, "chaos: killed worker");
                Strike::Killed { worker_id, pid }
            }
            Err(reason) => {
                tracing::warn!(worker_id, pid, %reason, "chaos: could not kill worker");
                Strike::Failed { worker_id, reason }
            }
        }
    }
}

/// Sends SIGKILL to `pid`, after checking (where `/proc` exists) that it is
/// a descendant of this process (a spawned worker is our child; a worker
/// forked from a template is the template's child, below us), so a stale or
/// mock pid never hits a stranger.
fn sigkill_child(pid: u32) -> Result<(), String> {
    let raw = i32::try_from(pid).map_err(|_| format!("pid {pid} is out of range"))?;
    if raw <= 1 {
        return Err(format!("refusing to signal pid {pid}"));
    }
    if let Some(parent) = parent_of(pid) {
        if !is_descendant(pid) {
            return Err(format!(
                "pid {pid} is not a descendant of this process (its parent is {parent})"
            ));
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(raw),
        nix::sys::signal::Signal::SIGKILL,
    )
    .map_err(|errno| format!("kill({pid}, SIGKILL) failed: {errno}"))
}

/// Whether this process is an ancestor of `pid`, per `/proc`.
fn is_descendant(pid: u32) -> bool {
    let me = std::process::id();
    let mut current = pid;
    for _ in 0..64 {
        match parent_of(current) {
            Some(parent) if parent == me => return true,
            Some(parent) if parent > 1 => current = parent,
            _ => return false,
        }
    }
    false
}

/// The parent pid of `pid` from `/proc/<pid>/stat`, where available.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may contain spaces and parentheses.
    let after_comm = stat.rsplit_once(')')?.1;
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// No chaos at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoChaos;

impl Chaos for NoChaos {
    fn strike(&mut self, _pool: &Pool) -> Strike {
        Strike::NoTarget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_is_not_our_child_is_never_signalled() {
        // Our own parent is not our child.
        let parent = parent_of(std::process::id());
        if let Some(parent) = parent.filter(|&pid| pid > 1) {
            let refused = sigkill_child(parent).unwrap_err();
            assert!(refused.contains("not a descendant"), "{refused}");
        }
        assert!(sigkill_child(1).is_err());
        assert!(sigkill_child(0).is_err());
    }
}

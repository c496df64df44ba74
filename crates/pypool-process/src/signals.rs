//! Signals to a worker and its process group.

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// Sends SIGKILL to the whole process group led by `pid` (the worker and
/// anything it started). Errors (the group is already gone) are ignored.
pub(crate) fn kill_group(pid: u32) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
    }
}

/// Sends SIGTERM to the worker alone, asking it to finish its request and exit.
pub(crate) fn terminate(pid: u32) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(raw), Signal::SIGTERM);
    }
}

//! The process the host spawned, and every signal sent to it or its tree.
//!
//! Ownership rules (ARCHITECTURE.md, "Processes"):
//! * every signal goes to the process the spawner started (its pid, and the
//!   process group it leads), or to a descendant found by walking `/proc`
//!   down from it — never to a number a worker reported;
//! * no signal is sent once the spawned process has been reaped: the reaper
//!   ([`SpawnedProcess::wait_and_reap`]) marks it reaped under the same lock
//!   the signallers hold, before it calls `waitpid`, so a recycled pid is
//!   never hit. Until then the pid (a zombie at worst) and its group id
//!   cannot be reused.

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;

/// How many `/proc` scans a kill makes, at most, while it stops the tree
/// (each scan finds what the previous stops let through).
const MAX_STOP_ROUNDS: usize = 16;

/// How deep a handshake's pid may sit below the spawned process (a wrapper,
/// the guardian, the worker — and room to spare).
const MAX_ANCESTRY_DEPTH: usize = 64;

/// The process the spawner started, leader of its own process group.
#[derive(Debug)]
pub(crate) struct SpawnedProcess {
    pid: Pid,
    /// `true` once the process is being (or has been) reaped.
    reaped: Mutex<bool>,
    /// For a worker forked by a template (not our child): a pidfd, through
    /// which the process itself is signalled, so a signal can never reach a
    /// recycled pid even if the template died and its zombies were reaped by
    /// someone else.
    pidfd: Option<OwnedFd>,
}

impl SpawnedProcess {
    /// The process `pid`, just spawned by us in its own group and not yet reaped.
    pub(crate) fn new(pid: u32) -> Option<Self> {
        let raw = i32::try_from(pid).ok().filter(|&raw| raw > 0)?;
        Some(Self {
            pid: Pid::from_raw(raw),
            reaped: Mutex::new(false),
            pidfd: None,
        })
    }

    /// The process `pid` that the template `template` (a process this host
    /// spawned, or a descendant of it) says it forked: accepted only if
    /// `/proc` says its parent is the template, checked after a pidfd was
    /// opened on it (so the pidfd names that very child: the template does
    /// not reap a child before the host's `release`).
    pub(crate) fn forked(pid: u32, template: u32) -> Result<Self, String> {
        let raw = i32::try_from(pid)
            .ok()
            .filter(|&raw| raw > 0)
            .ok_or_else(|| format!("the template reported an invalid pid {pid}"))?;
        let pidfd = rustix::process::Pid::from_raw(raw)
            .ok_or_else(|| format!("the template reported an invalid pid {pid}"))
            .and_then(|target| {
                rustix::process::pidfd_open(target, rustix::process::PidfdFlags::empty()).map_err(
                    |error| {
                        format!(
                            "cannot open a pidfd on pid {pid} (reported by the template): {error}"
                        )
                    },
                )
            })?;
        match parent_of(raw) {
            Some(parent) if parent.unsigned_abs() == template => Ok(Self {
                pid: Pid::from_raw(raw),
                reaped: Mutex::new(false),
                pidfd: Some(pidfd),
            }),
            parent => Err(format!(
                "the template (pid {template}) reported pid {pid}, whose parent is {parent:?}, not the template"
            )),
        }
    }

    /// Sends `signal` to the process itself (through its pidfd, if it has one).
    fn signal_leader(&self, signal: Signal) {
        match &self.pidfd {
            Some(pidfd) => {
                let signal = match signal {
                    Signal::SIGKILL => rustix::process::Signal::KILL,
                    Signal::SIGTERM => rustix::process::Signal::TERM,
                    _ => rustix::process::Signal::STOP,
                };
                let _ = rustix::process::pidfd_send_signal(pidfd, signal);
            }
            None => {
                let _ = kill(self.pid, signal);
            }
        }
    }

    /// For a forked worker whose end the template reported (still a zombie,
    /// not reaped): kills what is left of its group, then marks it reaped,
    /// so no signal is sent once the template may reap it.
    pub(crate) fn mark_reaped(&self) {
        let mut reaped = self.reaped.lock().unwrap_or_else(PoisonError::into_inner);
        if !*reaped {
            let _ = killpg(self.pid, Signal::SIGKILL);
            *reaped = true;
        }
    }

    /// Marks it reaped without signalling anything (its parent is gone and
    /// someone else may already have reaped it).
    pub(crate) fn forget(&self) {
        *self.reaped.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// A stand-in for a process that was never spawned (the fuzzer's
    /// in-memory connections): it counts as reaped, so it is never signalled.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn never_signalled() -> Self {
        Self {
            pid: Pid::from_raw(i32::MAX),
            reaped: Mutex::new(true),
            pidfd: None,
        }
    }

    /// Its pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid.as_raw().unsigned_abs()
    }

    fn live(&self) -> Option<MutexGuard<'_, bool>> {
        let guard = self.reaped.lock().unwrap_or_else(PoisonError::into_inner);
        (!*guard).then_some(guard)
    }

    /// Sends SIGTERM to the spawned process alone (the guardian forwards it to
    /// the worker), unless it has been reaped.
    pub(crate) fn terminate(&self) {
        if let Some(_live) = self.live() {
            self.signal_leader(Signal::SIGTERM);
        }
    }

    /// SIGKILLs the spawned process, its process group and every descendant
    /// (including those that left the group or started their own session),
    /// unless it has been reaped. The tree is stopped first (SIGSTOP), scan
    /// after scan, so nothing can fork its way out between scan and kill.
    pub(crate) fn kill_tree(&self) {
        let Some(_live) = self.live() else {
            return;
        };
        let _ = killpg(self.pid, Signal::SIGSTOP);
        let mut stopped: HashSet<i32> = HashSet::new();
        for _ in 0..MAX_STOP_ROUNDS {
            let fresh: Vec<i32> = descendants(self.pid.as_raw())
                .into_iter()
                .filter(|pid| !stopped.contains(pid))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for pid in fresh {
                let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
                stopped.insert(pid);
            }
        }
        for pid in descendants(self.pid.as_raw()).into_iter().chain(stopped) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = killpg(self.pid, Signal::SIGKILL);
        self.signal_leader(Signal::SIGKILL);
    }

    /// Whether `pid` is the spawned process or one of its descendants, per
    /// `/proc`, checked while the spawned process is not reaped.
    pub(crate) fn owns(&self, pid: u32) -> bool {
        let Some(_live) = self.live() else {
            return false;
        };
        let Ok(mut current) = i32::try_from(pid) else {
            return false;
        };
        for _ in 0..MAX_ANCESTRY_DEPTH {
            if current == self.pid.as_raw() {
                return true;
            }
            match parent_of(current) {
                Some(parent) if parent > 0 => current = parent,
                _ => return false,
            }
        }
        false
    }

    /// Blocks until the spawned process has exited, without reaping it; then
    /// kills what is left of its process group (nothing outlives the process
    /// the host owns), marks it reaped and calls `reap`, which must reap it.
    pub(crate) fn wait_and_reap<R>(&self, reap: impl FnOnce() -> R) -> R {
        // Ends when it exited (still a zombie), or is not our child any
        // more: either way nothing is left to wait for.
        while let Err(Errno::EINTR) = waitid(
            Id::Pid(self.pid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        ) {}
        let mut reaped = self.reaped.lock().unwrap_or_else(PoisonError::into_inner);
        if !*reaped {
            // The zombie leader keeps the group id reserved: this hits only
            // processes that were started inside the worker's group.
            let _ = killpg(self.pid, Signal::SIGKILL);
            *reaped = true;
        }
        reap()
    }
}

/// The parent of `pid`, from `/proc/<pid>/stat`.
pub(crate) fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_parent(&stat)
}

/// The parent pid field of a `/proc/<pid>/stat` line (the command name is
/// parenthesised and may contain spaces and parentheses).
fn parse_parent(stat: &str) -> Option<i32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every descendant of `root` (not `root`), from one scan of `/proc`.
fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(parent) = parent_of(pid) {
                children.entry(parent).or_default().push(pid);
            }
        }
    }
    let mut found = Vec::new();
    let mut stack = vec![root];
    let mut seen = HashSet::from([root]);
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(child) {
                found.push(child);
                stack.push(child);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_parent_after_a_tricky_command_name() {
        assert_eq!(parse_parent("42 (a) b (c)) S 7 42 42 0"), Some(7));
        assert_eq!(parse_parent("42 (python3) R 1 1 1"), Some(1));
        assert_eq!(parse_parent("garbage"), None);
    }

    #[test]
    fn refuses_pids_that_are_not_processes_it_could_have_spawned() {
        assert!(SpawnedProcess::new(0).is_none());
        assert!(SpawnedProcess::new(u32::MAX).is_none());
    }

    #[test]
    fn owns_itself_and_its_children_but_not_its_parent() {
        let me = std::process::id();
        let process = SpawnedProcess::new(me).expect("a valid pid");
        assert!(process.owns(me));
        let parent = parent_of(i32::try_from(me).expect("fits")).expect("a parent");
        assert!(!process.owns(parent.unsigned_abs()));
        assert!(!process.owns(0));
        assert!(!process.owns(u32::MAX));
        // Never kill ourselves from a test: mark it reaped first.
        *process.reaped.lock().expect("not poisoned") = true;
        assert!(!process.owns(me), "nothing is owned once reaped");
    }
}

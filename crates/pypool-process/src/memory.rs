//! Reading a worker's resident memory from the operating system.
//!
//! A memory limit is about what the worker costs the machine, so the figure
//! is the resident set of the worker's whole process tree: the worker and
//! every live descendant (processes its handlers started, and theirs). A
//! descendant that has been re-parented away (a daemon that double-forked)
//! is no longer in the tree and not counted.

use std::collections::{HashSet, VecDeque};

/// The most processes one tree walk visits: a bound against a fork bomb
/// making the walk itself expensive.
const MAX_TREE: usize = 4096;

/// The resident set size, in bytes, of `pid` and all its descendants, from
/// `/proc/<pid>/status` (Linux). `None` where the worker's own status file
/// does not exist or cannot be parsed; a descendant that vanishes during the
/// walk is skipped.
pub(crate) fn resident_bytes(pid: u32) -> Option<u64> {
    let mut total = process_resident_bytes(pid)?;
    for child in descendants(pid) {
        total = total.saturating_add(process_resident_bytes(child).unwrap_or(0));
    }
    Some(total)
}

/// The resident set size of `pid` alone.
fn process_resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// Every live descendant of `pid`, breadth first (`pid` itself excluded).
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut seen = HashSet::from([pid]);
    let mut queue = VecDeque::from([pid]);
    let by_parent = if children_files_exist(pid) {
        None
    } else {
        Some(parents_by_scan())
    };
    while let Some(parent) = queue.pop_front() {
        let children = match &by_parent {
            None => children_of(parent),
            Some(table) => table
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(child, _)| *child)
                .collect(),
        };
        for child in children {
            if found.len() >= MAX_TREE {
                return found;
            }
            if seen.insert(child) {
                found.push(child);
                queue.push_back(child);
            }
        }
    }
    found
}

/// Whether the kernel offers `/proc/<pid>/task/<tid>/children`
/// (`CONFIG_PROC_CHILDREN`).
fn children_files_exist(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}/task/{pid}/children")).exists()
}

/// The children of `pid`, from the `children` file of each of its threads.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| parse_pids(&text))
        .collect()
}

/// `(pid, parent pid)` of every process, from a scan of `/proc` (the
/// fallback where `children` files do not exist).
fn parents_by_scan() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            Some((pid, parse_ppid(&status)?))
        })
        .collect()
}

fn parse_pids(text: &str) -> Vec<u32> {
    text.split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

fn parse_ppid(status: &str) -> Option<u32> {
    let line = status.lines().find(|line| line.starts_with("PPid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss_in_kib() {
        let status = "Name:\tpython3\nVmPeak:\t 1000 kB\nVmRSS:\t   12345 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
    }

    #[test]
    fn missing_or_garbled_line_is_none() {
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn parses_parent_pid_and_children_lists() {
        assert_eq!(parse_ppid("Name:\tx\nPPid:\t4321\n"), Some(4321));
        assert_eq!(parse_pids("12 345 6789 \n"), vec![12, 345, 6789]);
        assert_eq!(parse_pids(""), Vec::<u32>::new());
    }

    #[test]
    fn own_process_has_memory() {
        let me = std::process::id();
        assert!(resident_bytes(me).is_some_and(|bytes| bytes > 0));
    }

    #[test]
    fn a_child_process_counts_towards_its_parent() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep starts");
        let child_pid = child.id();
        let found = descendants(me).contains(&child_pid);
        let scanned = parents_by_scan().contains(&(child_pid, me));
        let _ = child.kill();
        let _ = child.wait();
        assert!(found, "child {child_pid} is a descendant of {me}");
        assert!(scanned, "the /proc scan sees child {child_pid} of {me}");
    }
}

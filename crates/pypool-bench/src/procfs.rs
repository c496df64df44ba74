//! What the benchmark reads from `/proc` and does to worker processes: the
//! proportional set size of process trees, and SIGKILL (the chaos and
//! replacement workloads crash workers as a segfault or the OOM killer would).

use std::collections::BTreeSet;
use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The summed `Pss` of every process in the trees rooted at `roots` (each
/// process counted once), bytes, read from `/proc/<pid>/smaps_rollup` under
/// `proc` (normally `/proc`). A root that has gone is an error; a descendant
/// that ends while the trees are walked is skipped.
pub fn pss_of_trees(proc: &Path, roots: &[u32]) -> Result<u64, String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<(u32, bool)> = roots.iter().map(|&pid| (pid, true)).collect();
    let mut total = 0;
    while let Some((pid, root)) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        let rollup = match std::fs::read_to_string(proc.join(pid.to_string()).join("smaps_rollup"))
        {
            Ok(rollup) => rollup,
            Err(error) if root => {
                return Err(format!("cannot read the PSS of process {pid}: {error}"));
            }
            Err(_) => continue,
        };
        total += pss_kib(&rollup)
            .ok_or_else(|| format!("process {pid}'s smaps_rollup has no `Pss:` line"))?
            * 1024;
        stack.extend(children(proc, pid).into_iter().map(|child| (child, false)));
    }
    Ok(total)
}

/// The ancestor of `pid` that is a direct child of `host` (`pid` itself if
/// its parent is `host`, or if the chain cannot be read): the root of the
/// whole tree the host started for it. For a worker forked from a template
/// that is the template's own tree, which holds the template, every worker
/// forked from it and the standby.
pub fn root_below(proc: &Path, pid: u32, host: u32) -> u32 {
    let mut current = pid;
    // Bounded: a parent chain is never longer than the number of processes.
    for _ in 0..4096 {
        match parent(proc, current) {
            Some(parent) if parent != host && parent > 1 => current = parent,
            _ => return current,
        }
    }
    current
}

/// The parent pid of `pid`, from `/proc/<pid>/stat`.
fn parent(proc: &Path, pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The `Pss:` value of a `smaps_rollup` text, KiB.
fn pss_kib(rollup: &str) -> Option<u64> {
    rollup
        .lines()
        .find_map(|line| line.strip_prefix("Pss:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// The children of `pid`, over all its threads.
fn children(proc: &Path, pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(proc.join(pid.to_string()).join("task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|child| child.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Sends SIGKILL to `pid`.
pub fn sigkill(pid: u32) -> Result<(), String> {
    let raw = i32::try_from(pid).map_err(|_| format!("pid {pid} is out of range"))?;
    kill(Pid::from_raw(raw), Signal::SIGKILL)
        .map_err(|error| format!("cannot SIGKILL process {pid}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(proc: &Path, pid: u32, pss_kib: u64, children: &str) {
        let dir = proc.join(pid.to_string());
        std::fs::create_dir_all(dir.join("task").join(pid.to_string())).expect("a folder");
        std::fs::write(
            dir.join("smaps_rollup"),
            format!(
                "00400000-7fff [rollup]\nRss:  {}\nPss:  {pss_kib} kB\nPss_Anon: 1 kB\n",
                pss_kib * 2
            ),
        )
        .expect("smaps_rollup");
        std::fs::write(
            dir.join("task").join(pid.to_string()).join("children"),
            children,
        )
        .expect("children");
    }

    #[test]
    fn pss_sums_each_process_of_the_trees_once() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let proc = dir.path();
        // 10 -> 11 -> 12, and 20 -> 12 as well (counted once); 13 has gone.
        process(proc, 10, 100, "11 ");
        process(proc, 11, 40, "12 13");
        process(proc, 12, 7, "");
        process(proc, 20, 1_000, "12");
        assert_eq!(
            pss_of_trees(proc, &[10, 20]),
            Ok((100 + 40 + 7 + 1_000) * 1024)
        );
        assert_eq!(pss_of_trees(proc, &[11]), Ok(47 * 1024));
        let gone = pss_of_trees(proc, &[10, 99]).expect_err("a root that has gone");
        assert!(gone.contains("99"), "{gone}");
    }

    fn stat(proc: &Path, pid: u32, parent: u32) {
        let dir = proc.join(pid.to_string());
        std::fs::create_dir_all(&dir).expect("a folder");
        std::fs::write(dir.join("stat"), format!("{pid} (py (x)) S {parent} 1 1\n")).expect("stat");
    }

    #[test]
    fn the_root_below_the_host_is_the_topmost_ancestor_under_it() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let proc = dir.path();
        // host 5 -> template guardian 6 -> template 7 -> worker guardian 8;
        // host 5 -> spawned worker guardian 9.
        stat(proc, 6, 5);
        stat(proc, 7, 6);
        stat(proc, 8, 7);
        stat(proc, 9, 5);
        assert_eq!(root_below(proc, 8, 5), 6);
        assert_eq!(root_below(proc, 9, 5), 9);
        // An unreadable chain stops where it is.
        assert_eq!(root_below(proc, 42, 5), 42);
    }

    #[test]
    fn the_pss_line_is_read_not_the_pss_anon_line() {
        assert_eq!(pss_kib("Rss: 9 kB\nPss_Anon: 3 kB\nPss: 5 kB\n"), Some(5));
        assert_eq!(pss_kib("Rss: 9 kB\n"), None);
    }

    #[test]
    fn this_process_has_a_pss() {
        let own = pss_of_trees(Path::new("/proc"), &[std::process::id()]).expect("our own PSS");
        assert!(own > 0);
    }
}

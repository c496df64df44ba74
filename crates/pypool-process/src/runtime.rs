//! The embedded Python worker runtime: `pypool_worker` ships inside this
//! crate and is unpacked, once, to a content-addressed cache folder.
//!
//! The folder is `<cache>/runtime-<digest>/`, where `<cache>` is
//! `$PYPOOL_CACHE_DIR`, else `$XDG_CACHE_HOME/pypool`, else
//! `$HOME/.cache/pypool`, else `<temp>/pypool-cache`. A new build with changed
//! Python files gets a new digest, so a stale copy is never used; unpacking
//! writes into a private folder and renames it into place, so concurrent
//! processes never see a half-written runtime.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_runtime.rs"));
}

/// The file whose presence marks a completely unpacked runtime.
const COMPLETE_MARKER: &str = ".complete";

/// Why the embedded runtime could not be unpacked.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "cannot unpack pypool's Python runtime into {dir}: {message}; set PYPOOL_CACHE_DIR to a writable folder"
)]
pub struct RuntimeUnpackError {
    /// The folder it was being unpacked into.
    pub dir: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// The content digest of the embedded runtime (names its cache folder).
pub fn embedded_runtime_digest() -> &'static str {
    embedded::DIGEST
}

/// The folder to put on `PYTHONPATH` so `python -m pypool_worker` runs the
/// embedded runtime; unpacks it on first use (once per process).
pub fn embedded_runtime_dir() -> Result<PathBuf, RuntimeUnpackError> {
    static UNPACKED: OnceLock<Result<PathBuf, RuntimeUnpackError>> = OnceLock::new();
    UNPACKED.get_or_init(|| unpack_into(&cache_root())).clone()
}

/// The cache root, from the environment (see the module docs).
fn cache_root() -> PathBuf {
    let from_env = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = from_env("PYPOOL_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = from_env("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("pypool");
    }
    if let Some(home) = from_env("HOME") {
        return PathBuf::from(home).join(".cache").join("pypool");
    }
    std::env::temp_dir().join("pypool-cache")
}

/// Unpacks the runtime under `root` unless a complete copy is there already;
/// returns its folder.
pub(crate) fn unpack_into(root: &Path) -> Result<PathBuf, RuntimeUnpackError> {
    let target = root.join(format!("runtime-{}", embedded::DIGEST));
    if target.join(COMPLETE_MARKER).is_file() {
        return Ok(target);
    }
    let failed = |error: io::Error| RuntimeUnpackError {
        dir: target.clone(),
        message: error.to_string(),
    };
    std::fs::create_dir_all(root).map_err(failed)?;
    let staging = root.join(format!(
        ".runtime-{}.{}-{}",
        embedded::DIGEST,
        std::process::id(),
        unique_suffix()
    ));
    let written = write_files(&staging);
    if let Err(error) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(failed(error));
    }
    match std::fs::rename(&staging, &target) {
        Ok(()) => Ok(target),
        Err(error) => {
            let _ = std::fs::remove_dir_all(&staging);
            // Another process may have won the race; its copy is as good.
            if target.join(COMPLETE_MARKER).is_file() {
                Ok(target)
            } else if target.exists() {
                // An incomplete copy left by a crash: replace it.
                std::fs::remove_dir_all(&target).map_err(failed)?;
                unpack_into(root)
            } else {
                Err(failed(error))
            }
        }
    }
}

fn write_files(staging: &Path) -> io::Result<()> {
    for (name, contents) in embedded::FILES {
        let path = staging.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents)?;
    }
    std::fs::write(staging.join(COMPLETE_MARKER), embedded::DIGEST)
}

/// Distinguishes staging folders of threads of one process.
fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_package_is_embedded_with_its_entry_point() {
        let names: Vec<&str> = embedded::FILES.iter().map(|(name, _)| *name).collect();
        for expected in [
            "pypool_worker/__init__.py",
            "pypool_worker/__main__.py",
            "pypool_worker/demo.py",
            "pypool_worker/programs/__init__.py",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        assert!(names.iter().all(|name| !name.contains("__pycache__")));
        assert_eq!(embedded_runtime_digest().len(), 16);
    }

    #[test]
    fn unpacking_writes_every_file_once_and_reuses_a_complete_copy() {
        let root = tempfile::tempdir().unwrap();
        let dir = unpack_into(root.path()).unwrap();
        assert_eq!(
            dir,
            root.path().join(format!("runtime-{}", embedded::DIGEST))
        );
        for (name, contents) in embedded::FILES {
            assert_eq!(std::fs::read(dir.join(name)).unwrap(), *contents, "{name}");
        }
        // A second unpack finds the complete copy and leaves it alone.
        let marker = dir.join("pypool_worker/__init__.py");
        std::fs::write(&marker, b"# touched").unwrap();
        assert_eq!(unpack_into(root.path()).unwrap(), dir);
        assert_eq!(std::fs::read(&marker).unwrap(), b"# touched");
        // No staging folder is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }

    #[test]
    fn an_incomplete_copy_left_by_a_crash_is_replaced() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join(format!("runtime-{}", embedded::DIGEST));
        std::fs::create_dir_all(target.join("pypool_worker")).unwrap();
        std::fs::write(target.join("pypool_worker/__init__.py"), b"half").unwrap();
        let dir = unpack_into(root.path()).unwrap();
        assert!(dir.join(COMPLETE_MARKER).is_file());
        assert_ne!(
            std::fs::read(dir.join("pypool_worker/__init__.py")).unwrap(),
            b"half"
        );
    }

    #[test]
    fn concurrent_unpacks_agree_on_one_complete_copy() {
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| unpack_into(root.path()).unwrap()))
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .collect()
        });
        assert!(dirs.windows(2).all(|pair| pair[0] == pair[1]));
        assert!(dirs[0].join(COMPLETE_MARKER).is_file());
    }

    #[test]
    fn an_unwritable_cache_is_an_error_that_says_how_to_fix_it() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("not-a-folder");
        std::fs::write(&file, b"").unwrap();
        let error = unpack_into(&file).unwrap_err();
        assert!(
            error.to_string().contains("set PYPOOL_CACHE_DIR"),
            "{error}"
        );
    }
}

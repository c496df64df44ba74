#![allow(
    clippy::panic,
    reason = "a build script reports a broken checkout by failing the build"
)]

//! Embeds the Python worker runtime (`python/pypool_worker`, standard library
//! only) into the crate, so a program that depends on pypool needs no clone
//! of this repository and no pip step.
//!
//! Writes `$OUT_DIR/embedded_runtime.rs` with every `.py` file of the package
//! (as `include_bytes!`) and a content digest naming the cache folder the
//! files are unpacked to at run time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where the package is looked for, in order: a copy inside the crate (for a
/// packaged crate), then the workspace's `python/` folder.
fn package_dir(manifest_dir: &Path) -> PathBuf {
    let inside = manifest_dir.join("python").join("pypool_worker");
    if inside.is_dir() {
        return inside;
    }
    manifest_dir.join("../../python/pypool_worker")
}

fn collect(dir: &Path, prefix: &str, files: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "__pycache__" && !name.starts_with('.') {
                collect(&path, &format!("{prefix}{name}/"), files);
            }
        } else if name.ends_with(".py") {
            files.push((format!("{prefix}{name}"), path));
        }
    }
}

/// FNV-1a, 64 bits: stable across Rust versions (unlike `DefaultHasher`).
fn fnv1a(state: &mut u64, bytes: &[u8]) {
    for byte in bytes {
        *state ^= u64::from(*byte);
        *state = state.wrapping_mul(0x0100_0000_01b3);
    }
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let package = package_dir(&manifest_dir);
    let package = package.canonicalize().unwrap_or_else(|error| {
        panic!(
            "the Python runtime is missing at {}: {error}",
            package.display()
        )
    });
    println!("cargo:rerun-if-changed={}", package.display());

    let mut files = Vec::new();
    collect(&package, "pypool_worker/", &mut files);
    assert!(
        files
            .iter()
            .any(|(name, _)| name == "pypool_worker/__main__.py"),
        "{} does not look like the pypool_worker package",
        package.display()
    );

    let mut digest = 0xcbf2_9ce4_8422_2325_u64;
    let mut source = String::from(
        "/// The runtime's files: path inside the cache folder, and contents.\n\
         pub(crate) static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (name, path) in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let contents = std::fs::read(path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        fnv1a(&mut digest, name.as_bytes());
        fnv1a(&mut digest, &(contents.len() as u64).to_le_bytes());
        fnv1a(&mut digest, &contents);
        let _ = writeln!(
            source,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        );
    }
    source.push_str("];\n");
    let _ = writeln!(
        source,
        "/// A digest of every file's path and contents: the cache folder's name.\n\
         pub(crate) const DIGEST: &str = \"{digest:016x}\";"
    );
    std::fs::write(out_dir.join("embedded_runtime.rs"), source).expect("OUT_DIR is writable");
}

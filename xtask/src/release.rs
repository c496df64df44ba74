//! Release checks: the documentation builds without warnings, and the crates
//! build from their packaged (`.crate`) form as a registry user gets them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{cargo, run};

/// Packages that are never published: skipped by `cargo package`.
const UNPUBLISHED: &[&str] = &["xtask", "pypool-integration", "pypool-bench"];

/// `cargo doc --workspace --no-deps --all-features` (so feature-gated items
/// such as `pypool`'s tower service are documented too) with every rustdoc
/// warning (broken intra-doc links included) turned into an error.
pub(crate) fn doc(root: &Path) -> Result<(), String> {
    let started = Instant::now();
    let mut command = cargo();
    command
        .current_dir(root)
        .env("RUSTDOCFLAGS", "-D warnings")
        .args(["doc", "--workspace", "--no-deps", "--all-features"]);
    let result = run(&mut command);
    eprintln!("xtask: doc took {:.1?}", started.elapsed());
    result
}

/// Packages every publishable crate (`cargo package --workspace`), then
/// builds every packaged crate and the `pypool` command from the `.crate`
/// contents alone — a scratch workspace of the unpacked crates, each
/// dependency between them patched to its unpacked copy — and runs
/// `pypool doctor` with an empty runtime cache, so the Python runtime is
/// unpacked from what the packaged `pypool-process` embeds.
///
/// The scratch build is cargo's own verification (a build of each unpacked
/// crate), done once for all crates with the workspace's profile and target
/// folder, so the third-party crates the tests built are reused.
pub(crate) fn package_check(root: &Path) -> Result<(), String> {
    let started = Instant::now();
    let target = target_dir(root);
    let mut package = cargo();
    package
        .current_dir(root)
        .args(["package", "--workspace", "--no-verify"]);
    for name in UNPUBLISHED {
        package.args(["--exclude", name]);
    }
    if std::env::var_os("PYPOOL_PACKAGE_ALLOW_DIRTY").is_some() {
        package.arg("--allow-dirty");
    }
    run(&mut package)?;
    let packaged = started.elapsed();

    let scratch = target.join("package-check");
    let crates = unpack_crates(&target.join("package"), &scratch)?;
    if !crates.iter().any(|(name, _)| name == "pypool-cli") {
        return Err(format!(
            "no pypool-cli .crate in {}",
            target.join("package").display()
        ));
    }
    write_scratch_workspace(root, &scratch, &crates)?;
    let mut build = cargo();
    build
        .current_dir(&scratch)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .args(["build", "--workspace"]);
    run(&mut build)?;
    let built = started.elapsed();

    let cache = scratch.join("empty-cache");
    if cache.exists() {
        std::fs::remove_dir_all(&cache)
            .map_err(|error| format!("cannot empty {}: {error}", cache.display()))?;
    }
    let pypool = target.join("debug").join("pypool");
    run(Command::new(&pypool)
        .arg("doctor")
        .env("PYPOOL_CACHE_DIR", &cache))?;
    let unpacked_runtime = std::fs::read_dir(&cache)
        .map(|entries| entries.count())
        .unwrap_or(0);
    if unpacked_runtime == 0 {
        return Err(format!(
            "`pypool doctor` left nothing in the empty cache {}: the packaged runtime was not unpacked",
            cache.display()
        ));
    }
    eprintln!(
        "xtask: package-check took {:.1?} (package {:.1?}, build from the packages {:.1?}, doctor {:.1?})",
        started.elapsed(),
        packaged,
        built - packaged,
        started.elapsed() - built
    );
    Ok(())
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        })
        .unwrap_or_else(|| root.join("target"))
}

/// Unpacks every `pypool*-VERSION.crate` that `cargo package` wrote to
/// `dir` into a fresh `scratch` folder; returns `(crate name, folder name)`.
fn unpack_crates(dir: &Path, scratch: &Path) -> Result<Vec<(String, String)>, String> {
    if scratch.exists() {
        std::fs::remove_dir_all(scratch)
            .map_err(|error| format!("cannot clear {}: {error}", scratch.display()))?;
    }
    std::fs::create_dir_all(scratch)
        .map_err(|error| format!("cannot create {}: {error}", scratch.display()))?;
    let suffix = format!("-{}.crate", env!("CARGO_PKG_VERSION"));
    let entries = std::fs::read_dir(dir)
        .map_err(|error| format!("cannot read {}: {error}", dir.display()))?;
    let mut crates = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(&suffix) else {
            continue;
        };
        if !name.starts_with("pypool") {
            continue;
        }
        // A .crate is a gzipped tar holding one `NAME-VERSION/` folder.
        run(Command::new("tar")
            .arg("-xzf")
            .arg(entry.path())
            .arg("-C")
            .arg(scratch))?;
        let folder = file.trim_end_matches(".crate").to_owned();
        // A packaged binary crate carries its own lock file; the workspace's rules.
        let _ = std::fs::remove_file(scratch.join(&folder).join("Cargo.lock"));
        crates.push((name.to_owned(), folder));
    }
    crates.sort();
    Ok(crates)
}

/// A workspace whose members are the unpacked crates, each dependency on
/// one of them patched to its folder (they are not on the registry yet),
/// with the workspace's lock file and dependency profile.
fn write_scratch_workspace(
    root: &Path,
    scratch: &Path,
    crates: &[(String, String)],
) -> Result<(), String> {
    let mut members = Vec::new();
    let mut patches = String::new();
    for (name, folder) in crates {
        members.push(format!("{folder:?}"));
        patches.push_str(&format!("{name} = {{ path = {folder:?} }}\n"));
    }
    let manifest = format!(
        "# Written by `cargo xtask package-check`: the packaged crates, built\n\
         # from their .crate contents only.\n\
         [workspace]\nresolver = \"3\"\nmembers = [{}]\n\n\
         [profile.dev.package.\"*\"]\nopt-level = 1\n\n[patch.crates-io]\n{patches}",
        members.join(", ")
    );
    let path = scratch.join("Cargo.toml");
    std::fs::write(&path, manifest)
        .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    // Start from the workspace's lock file so third-party crates resolve to
    // the versions already built in the shared target folder.
    std::fs::copy(root.join("Cargo.lock"), scratch.join("Cargo.lock"))
        .map_err(|error| format!("cannot copy the lock file: {error}"))?;
    Ok(())
}

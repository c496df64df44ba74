//! pypool used from a plain `Cargo.toml` dependency: a scratch crate outside
//! the workspace depends on `pypool` by path and runs a handler file from its
//! own folder, with nothing but a `python3` on PATH, no `PYTHONPATH`, no pip
//! step and an empty runtime cache — the embedded runtime is all it needs.
//!
//! Kept cheap: the scratch crate lives at a fixed place under the target
//! folder with its own target folder, and its files are rewritten only when
//! they change, so after the first run `cargo build --offline` finds it up to
//! date (unless pypool itself changed) and only the run is paid for. The run
//! is of the built binary, in a bare environment.
#![cfg(feature = "real-python")]
#![allow(clippy::panic, reason = "a test fails by panicking")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use pypool_integration::{python, repo_root};
const MAIN_RS: &str = r#"
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = pypool::Pool::builder().size(2).handler("shout.py").build()?;
    pool.ready().await?;
    let result = pool
        .execute("shout", serde_json::json!({ "text": "hello from a dependency" }))
        .await?;
    println!("RESULT {result}");
    pool.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
"#;

const HANDLER: &str = r#"
from pypool_worker import command

@command
def shout(text):
    print("printing is harmless")  # goes to stderr, never into the frame stream
    return {"shouted": text.upper() + "!"}
"#;

/// Writes `contents` to `path` unless it already holds them (an unchanged
/// file keeps its timestamp, so cargo does not rebuild).
fn write(path: &Path, contents: &[u8]) {
    if std::fs::read(path).is_ok_and(|existing| existing == contents) {
        return;
    }
    std::fs::write(path, contents).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
}

/// The target folder the workspace builds into.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from)
}

/// The real interpreter behind the test's `python3` (a pyenv shim, say, is a
/// script that needs more than itself on PATH).
fn real_python() -> PathBuf {
    let output = Command::new(python())
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("the test interpreter runs");
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(!path.is_empty(), "no sys.executable from {}", python());
    PathBuf::from(path)
}

#[test]
fn a_scratch_crate_depending_on_pypool_runs_a_handler_from_its_own_folder() {
    let root = repo_root();
    let base = target_dir().join("scratch-dependency");
    let scratch = base.join("crate");
    std::fs::create_dir_all(scratch.join("src")).expect("scratch folder");
    let manifest = format!(
        "[package]\nname = \"scratch\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [dependencies]\n\
         pypool = {{ path = {:?} }}\n\
         serde_json = \"1\"\n\
         tokio = {{ version = \"1\", features = [\"macros\", \"rt-multi-thread\"] }}\n\n\
         [workspace]\n",
        root.join("crates").join("pypool").display().to_string()
    );
    write(&scratch.join("Cargo.toml"), manifest.as_bytes());
    // The workspace's lock file, so nothing new is resolved or downloaded.
    let lock = std::fs::read(root.join("Cargo.lock")).expect("lock file");
    write(&scratch.join("Cargo.lock"), &lock);
    write(&scratch.join("src").join("main.rs"), MAIN_RS.as_bytes());
    write(&scratch.join("shout.py"), HANDLER.as_bytes());

    let started = Instant::now();
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["build", "--quiet", "--offline"])
        .current_dir(&scratch)
        // Its own target folder: the workspace's is locked by the running `cargo test`.
        .env("CARGO_TARGET_DIR", base.join("target"))
        // No debug info: smaller artifacts, faster links; nothing here is debugged.
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        build.status.success(),
        "the scratch crate did not build ({}):\n{}",
        build.status,
        String::from_utf8_lossy(&build.stderr)
    );
    eprintln!("scratch crate built in {:.1?}", started.elapsed());

    // A bare environment: PATH holds only a `python3`, nothing else is set.
    let run_dir = base.join(format!("run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    let bin = run_dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin folder");
    std::os::unix::fs::symlink(real_python(), bin.join("python3")).expect("python3 link");
    let cache = run_dir.join("runtime-cache");
    let started = Instant::now();
    let output = Command::new(base.join("target").join("debug").join("scratch"))
        .current_dir(&scratch)
        .env_clear()
        .env("PATH", &bin)
        .env("PYPOOL_CACHE_DIR", &cache)
        .output()
        .expect("the scratch binary runs");
    eprintln!("scratch binary ran in {:.1?}", started.elapsed());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the scratch crate failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains(r#"RESULT {"shouted":"HELLO FROM A DEPENDENCY!"}"#),
        "{stdout}\n{stderr}"
    );
    let unpacked: Vec<_> = std::fs::read_dir(&cache)
        .expect("the runtime was unpacked into the cache")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        unpacked,
        [format!("runtime-{}", pypool::embedded_runtime_digest())],
        "one content-addressed runtime folder"
    );
    let _ = std::fs::remove_dir_all(&run_dir);
}

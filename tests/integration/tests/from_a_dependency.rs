//! pypool used from a plain `Cargo.toml` dependency: a scratch crate outside
//! the workspace depends on `pypool` by path and runs a handler file from its
//! own folder, with the `python3` on PATH, no `PYTHONPATH`, no pip step and an
//! empty runtime cache — the embedded runtime is all it needs.
#![cfg(feature = "real-python")]
#![allow(clippy::panic, reason = "a test fails by panicking")]

use std::path::Path;
use std::process::Command;

use pypool_integration::repo_root;

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

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
}

#[test]
fn a_scratch_crate_depending_on_pypool_runs_a_handler_from_its_own_folder() {
    let root = repo_root();
    let scratch = std::env::temp_dir().join(format!("pypool-scratch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(scratch.join("src")).expect("scratch folder");
    write(
        &scratch.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"scratch\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [dependencies]\n\
             pypool = {{ path = {:?} }}\n\
             serde_json = \"1\"\n\
             tokio = {{ version = \"1\", features = [\"macros\", \"rt-multi-thread\"] }}\n\n\
             [workspace]\n",
            root.join("crates").join("pypool").display().to_string()
        ),
    );
    // The workspace's lock file, so nothing new is resolved or downloaded.
    std::fs::copy(root.join("Cargo.lock"), scratch.join("Cargo.lock")).expect("lock file");
    write(&scratch.join("src").join("main.rs"), MAIN_RS);
    write(&scratch.join("shout.py"), HANDLER);

    let cache = scratch.join("runtime-cache");
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["run", "--quiet"])
        .current_dir(&scratch)
        // Its own target folder: the workspace's is locked by the running `cargo test`.
        .env(
            "CARGO_TARGET_DIR",
            root.join("target").join("scratch-dependency"),
        )
        .env("PYPOOL_CACHE_DIR", &cache)
        .env_remove("PYTHONPATH")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
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
    let _ = std::fs::remove_dir_all(&scratch);
}

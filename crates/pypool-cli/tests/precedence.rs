//! The `pypool` binary's settings precedence (flag > environment >
//! pypool.toml > default) and its bad-input exits, through
//! `pypool show-config` and `pypool call`: no worker is started.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// The binary with a clean `PYPOOL_*` environment, run in `dir`.
fn pypool(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pypool"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PYPOOL_") {
            command.env_remove(key);
        }
    }
    command.env_remove("RUST_LOG").current_dir(dir);
    command
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}): stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

const FILE: &str = r#"
python = "python-from-file"
workers = 3
handlers = ["file_handlers.py"]

[stress]
workers = 5
requests = 10
concurrency = 2
"#;

#[test]
fn flags_beat_environment_beats_file_beats_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pypool.toml"), FILE).unwrap();

    // File over defaults (./pypool.toml is read when it exists).
    let output = pypool(dir.path()).arg("show-config").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let settings = json(&output);
    let stress = &settings["stress"];
    assert_eq!(stress["pool"]["workers"], 5);
    assert_eq!(stress["requests"], 10);
    assert_eq!(stress["concurrency"], 2);
    assert_eq!(stress["sessions"], 16, "default");
    assert_eq!(stress["pool"]["python"]["interpreter"], "python-from-file");
    let handlers = stress["pool"]["handlers"].as_array().unwrap();
    assert_eq!(handlers[0], "pypool_worker.demo");
    assert!(handlers[1].as_str().unwrap().ends_with("file_handlers.py"));
    assert_eq!(settings["call_pool"]["workers"], 3);

    // Environment over file.
    let output = pypool(dir.path())
        .arg("show-config")
        .env("PYPOOL_PYTHON", "python-from-env")
        .env("PYPOOL_WORKERS", "6")
        .env("PYPOOL_HANDLERS", "env_a,env_b")
        .output()
        .unwrap();
    let settings = json(&output);
    assert_eq!(settings["stress"]["pool"]["workers"], 6);
    assert_eq!(settings["call_pool"]["workers"], 6);
    assert_eq!(
        settings["stress"]["pool"]["python"]["interpreter"],
        "python-from-env"
    );
    assert_eq!(
        settings["call_pool"]["handlers"],
        serde_json::json!(["env_a", "env_b"])
    );

    // Flags over environment.
    let output = pypool(dir.path())
        .args([
            "show-config",
            "--python",
            "python-from-flag",
            "--workers",
            "7",
        ])
        .env("PYPOOL_PYTHON", "python-from-env")
        .env("PYPOOL_WORKERS", "6")
        .output()
        .unwrap();
    let settings = json(&output);
    assert_eq!(settings["stress"]["pool"]["workers"], 7);
    assert_eq!(
        settings["stress"]["pool"]["python"]["interpreter"],
        "python-from-flag"
    );
}

#[test]
fn an_unknown_key_in_the_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custom.toml");
    std::fs::write(&path, "[stress]\nrequets = 5\n").unwrap();
    let output = pypool(dir.path())
        .arg("show-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("requets") && stderr.contains("custom.toml"),
        "{stderr}"
    );
}

#[test]
fn call_reports_bad_input_as_json_with_exit_2_before_starting_workers() {
    let dir = tempfile::tempdir().unwrap();
    // An interpreter that does not exist: the arguments are checked first.
    let output = pypool(dir.path())
        .args([
            "call",
            "demo.primes",
            "--python",
            "/nonexistent/python",
            "--args",
            "{nope",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let error = json(&output);
    assert_eq!(error["error"]["kind"], "invalid_json");

    // A bad settings file is bad input too, reported as JSON for `call`.
    std::fs::write(dir.path().join("pypool.toml"), "bogus = 1\n").unwrap();
    let output = pypool(dir.path()).args(["call", "ping"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let error = json(&output);
    assert_eq!(error["error"]["kind"], "invalid_config");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bogus")
    );
}

#[test]
fn call_with_a_missing_interpreter_is_a_typed_spawn_error_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let output = pypool(dir.path())
        .args(["call", "ping", "--python", "/nonexistent/python"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let error = json(&output);
    assert_eq!(error["error"]["kind"], "spawn", "{error}");
}

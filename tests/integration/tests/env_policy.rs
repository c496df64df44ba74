//! Workers inherit the host's environment by default; under the `clear`
//! policy a handler sees only the allow-list and the named extras (issue 10,
//! item 5). The host here is `env_probe`, run with the variables set.
#![cfg(feature = "real-python")]

use serde_json::{Value, json};

fn probe(policy: &str, extra: &[&str]) -> Value {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_env_probe"));
    command.arg(policy);
    for name in extra {
        command.args(["--extra", name]);
    }
    command
        .args([
            "--",
            "SECRET_TOKEN",
            "MY_EXTRA",
            "PATH",
            "LC_ALL",
            "PYTHONPATH",
        ])
        .env("SECRET_TOKEN", "hunter2")
        .env("MY_EXTRA", "passed")
        .env("LC_ALL", "C.UTF-8");
    let output = command.output().expect("env_probe runs");
    assert!(
        output.status.success(),
        "env_probe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("env_probe prints JSON")
}

#[test]
fn inherit_passes_the_hosts_secret() {
    let seen = probe("inherit", &[]);
    assert_eq!(seen["SECRET_TOKEN"], json!("hunter2"));
    assert_eq!(seen["MY_EXTRA"], json!("passed"));
}

#[test]
fn clear_keeps_the_allow_list_and_named_extras_only() {
    let seen = probe("clear", &["MY_EXTRA"]);
    assert_eq!(seen["SECRET_TOKEN"], Value::Null, "{seen}");
    assert_eq!(seen["MY_EXTRA"], json!("passed"));
    assert_eq!(seen["LC_ALL"], json!("C.UTF-8"));
    assert!(seen["PATH"].is_string(), "{seen}");
    // pypool's own variables still reach the worker: the runtime is importable.
    assert!(
        seen["PYTHONPATH"]
            .as_str()
            .is_some_and(|path| path.contains("runtime-")),
        "{seen}"
    );
}

#[test]
fn clear_without_extras_passes_neither() {
    let seen = probe("clear", &[]);
    assert_eq!(seen["SECRET_TOKEN"], Value::Null);
    assert_eq!(seen["MY_EXTRA"], Value::Null);
}

//! The Python side of the benchmark: the baseline scripts of `python/bench`
//! (each prints one JSON line) and the fake LM server.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// Runs `python script args…` to completion and parses the last line of
/// its standard output as JSON. A failure says what ran and what it wrote
/// on standard error.
pub fn run_script(python: &str, script: &Path, args: &[String]) -> Result<Value, String> {
    let output = Command::new(python)
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot start `{python} {}`: {error}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        return Err(format!(
            "`{} {}` failed with {}: {}",
            script.display(),
            args.join(" "),
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).map_err(|error| {
        format!(
            "`{}` printed {line:?}, not one JSON line: {error}",
            script.display()
        )
    })
}

/// A number field of a script's JSON result.
pub fn number(result: &Value, key: &str) -> Result<f64, String> {
    result[key]
        .as_f64()
        .ok_or_else(|| format!("the result {result} has no number `{key}`"))
}

/// The fake OpenAI-compatible LM (`python/bench/fake_lm.py`), stopped when
/// dropped (its standard input closes and it is killed).
pub struct FakeLm {
    child: Child,
    port: u16,
}

impl FakeLm {
    /// Starts the server answering after `latency_ms` and waits for its
    /// `READY <port>` line.
    pub fn start(python: &str, scripts: &Path, latency_ms: u64) -> Result<Self, String> {
        let script = scripts.join("fake_lm.py");
        let mut child = Command::new(python)
            .arg(&script)
            .args(["--port", "0", "--latency-ms", &latency_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot start `{python} {}`: {error}", script.display()))?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        }
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|port| port.parse().ok());
        match port {
            Some(port) => Ok(Self { child, port }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "the fake LM ({}) did not say READY <port> (it said {line:?})",
                    script.display()
                ))
            }
        }
    }

    /// Its OpenAI API base, `http://127.0.0.1:PORT/v1`.
    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for FakeLm {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

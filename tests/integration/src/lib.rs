//! Shared set-up for pypool's real-process tests.
//!
//! The tests in this crate start real Python workers, so they compile only
//! with the `real-python` feature (`cargo xtask test-integration` turns it on
//! and points `PYPOOL_TEST_PYTHON` at the project's `.venv`). Everything that
//! runs without Python lives in the other crates' tests, on mock workers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pypool_process::{PythonSpawner, PythonSpawnerConfig};
use pypool_seam::{SpawnError, SpawnRequest, WorkerConnection, WorkerSpawner};

/// The interpreter the tests run: `PYPOOL_TEST_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("PYPOOL_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// The workspace root.
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).map(PathBuf::from).unwrap_or(here)
}

/// A handler fixture file in `tests/fixtures/`.
pub fn fixture(name: &str) -> String {
    repo_root()
        .join("tests")
        .join("fixtures")
        .join(name)
        .display()
        .to_string()
}

/// A spawner configuration for the test interpreter, finding `pypool_worker`
/// in the repository's `python/` folder, with the given handler files.
pub fn config(handlers: &[&str]) -> PythonSpawnerConfig {
    let mut config = PythonSpawnerConfig::new()
        .with_interpreter(python())
        .with_python_path(repo_root().join("python"))
        .with_log_level("warning");
    for handler in handlers {
        config = config.with_handler(fixture(handler));
    }
    config
}

/// How long any single awaited event of a real-process test may take before
/// the test fails instead of hanging (generous: a loaded 2-core machine).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Awaits `future`, failing the test if it takes longer than [`PATIENCE`].
#[allow(clippy::panic, reason = "a test helper fails the test by panicking")]
pub async fn bounded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(output) => output,
        Err(_elapsed) => panic!("{what} did not happen within {PATIENCE:?}"),
    }
}

/// Re-checks `condition` until it holds, failing the test after
/// [`PATIENCE`]: first after each yield to the scheduler, then (for events
/// outside the runtime, such as the kernel reaping a process) every
/// millisecond. A bounded wait on a condition, not a sleep.
pub async fn poll_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut checks = 0_u64;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within {PATIENCE:?}"
        );
        checks += 1;
        if checks < 1_000 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await; // allowed: polling interval of a bounded wait
        }
    }
}

/// A generous handshake timeout for tests on a loaded machine.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Spawns worker `worker_id` with `config`.
pub async fn spawn(
    config: PythonSpawnerConfig,
    worker_id: u64,
) -> Result<Arc<dyn WorkerConnection>, SpawnError> {
    PythonSpawner::new(config)
        .spawn(SpawnRequest {
            worker_id,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        })
        .await
}

/// Spawns worker `worker_id` from `spawner` (so several workers share its
/// fork template), within [`PATIENCE`]; panics if it does not start.
#[allow(clippy::panic, reason = "a test helper fails the test by panicking")]
pub async fn spawn_from(spawner: &PythonSpawner, worker_id: u64) -> Arc<dyn WorkerConnection> {
    bounded(
        "a worker starts",
        spawner.spawn(SpawnRequest {
            worker_id,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }),
    )
    .await
    .unwrap_or_else(|error| panic!("worker {worker_id} did not start: {error}"))
}

/// Builds a request.
pub fn request(id: u64, command: &str, args: serde_json::Value) -> pypool_wire::Request {
    let args = match args {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    pypool_wire::Request {
        id,
        command: command.to_owned(),
        args,
    }
}

/// Whether a process with this pid still exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state is the field after the parenthesised command name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// Sends `tracing` output to the test's stderr when `RUST_LOG` is set
/// (`RUST_LOG=pypool=debug cargo xtask test-integration -- --nocapture`).
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A pool builder for the test interpreter, finding `pypool_worker` in the
/// repository's `python/` folder, with the given handler fixture files.
pub fn pool_builder(handlers: &[&str]) -> pypool::PoolBuilder {
    init_logging();
    pypool::Pool::builder().python(config(handlers))
}

/// The fake OpenAI-compatible server (`tests/fixtures/fake_openai.py`) on
/// 127.0.0.1, for DSPy tests: no network beyond loopback. Killed on drop.
pub struct FakeLm {
    child: std::process::Child,
    port: u16,
}

impl FakeLm {
    /// Starts the server and waits for its `READY <port>` line (its readiness event).
    pub fn start() -> Self {
        Self::start_script(&fixture("fake_openai.py"), &[])
    }

    /// `python/bench/fake_lm.py` instead: it answers `"stream": true`
    /// completions with server-sent events, the first token after
    /// `first_token_ms` (other completions at once), in DSPy's ChatAdapter
    /// format (`fake answer N`).
    pub fn start_sse(first_token_ms: u64) -> Self {
        let script = repo_root().join("python").join("bench").join("fake_lm.py");
        Self::start_script(
            &script.display().to_string(),
            &[
                "--latency-ms",
                "0",
                "--first-token-ms",
                &first_token_ms.to_string(),
            ],
        )
    }

    fn start_script(script: &str, extra: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(python())
            .arg(script)
            .args(["--port", "0"])
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the fake LM server starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the fake LM server says READY");
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| {
                #[allow(
                    clippy::panic,
                    reason = "test support: a broken fixture fails the test"
                )]
                {
                    panic!("unexpected first line from the fake LM server: {line:?}")
                }
            });
        Self { child, port }
    }

    /// The API base for a working LM.
    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The API base of an LM that answers every call with HTTP 500.
    pub fn failing_api_base(&self) -> String {
        format!("http://127.0.0.1:{}/fail/v1", self.port)
    }

    /// How many completion requests the server has received.
    pub fn requests(&self) -> u64 {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the fake LM");
        stream
            .write_all(b"GET /stats HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("ask for stats");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read stats");
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        let stats: serde_json::Value = serde_json::from_str(body).expect("stats are JSON");
        stats["requests"].as_u64().expect("a request count")
    }
}

impl Drop for FakeLm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pool builder whose workers can import `tests/fixtures` modules (for
/// python programs such as `programs_basic:greet`).
pub fn program_pool_builder() -> pypool::PoolBuilder {
    pool_builder(&["handlers_basic.py"]).python_path(repo_root().join("tests").join("fixtures"))
}

/// The environment variable that marks a test's worker processes (their
/// children inherit it), so [`marked_processes`] can find all of them.
pub const MARKER_ENV: &str = "PYPOOL_TEST_MARKER";

/// A marker no other test run uses.
pub fn unique_marker(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!("{label}-{}-{nanos}", std::process::id())
}

/// Every live (not zombie) process whose environment holds
/// `PYPOOL_TEST_MARKER=<marker>`, as `(pid, command name)`, from `/proc`.
pub fn marked_processes(marker: &str) -> Vec<(u32, String)> {
    let needle = format!("{MARKER_ENV}={marker}");
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let marked = environ
            .split(|&byte| byte == 0)
            .any(|entry| entry == needle.as_bytes());
        if marked && process_alive(pid) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            found.push((pid, comm.trim().to_owned()));
        }
    }
    found
}

/// Polls `condition` until it holds or `bound` has passed; whether it held.
/// A wait with a hard deadline (a regression fails, it does not hang).
pub fn wait_until(bound: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + bound;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20)); // allowed: poll interval of a bounded wait
    }
}

/// The non-`exec` interpreter wrapper fixture (`tests/fixtures/python_wrapper.sh`):
/// a shell that stays alive as Python's parent, as `conda run` does.
pub fn wrapper_interpreter() -> String {
    fixture("python_wrapper.sh")
}

/// What [`kill_busy_host`] saw.
#[derive(Debug)]
pub struct HostKill {
    /// Marked processes while the host was busy, before the signal.
    pub before: Vec<(u32, String)>,
    /// Marked processes still alive when the bound ran out (empty: all gone).
    pub survivors: Vec<(u32, String)>,
    /// How long after the signal the last marked process was gone.
    pub took: Duration,
}

impl HostKill {
    /// Prints what was seen (`what`: the case, e.g. `SIGKILL`) and fails if
    /// any marked process outlived the host by `bound`.
    pub fn assert_none_survived(&self, what: &str, bound: Duration) {
        eprintln!(
            "{what}: {} marked processes before, {} after {bound:?} (gone after {:?})",
            self.before.len(),
            self.survivors.len(),
            self.took
        );
        assert!(
            self.survivors.is_empty(),
            "{} processes outlived the host ({what}): {:?}",
            self.survivors.len(),
            self.survivors
        );
    }
}

/// Starts `host` (the `pypool-busy-host` binary) with `workers` workers
/// behind `interpreter`, waits until every worker's handler has started its
/// two grandchildren and is busy, sends `signal` to the host, and waits (at
/// most `bound`) until no marked process is left.
pub fn kill_busy_host(
    host: &str,
    interpreter: &str,
    workers: usize,
    signal: nix::sys::signal::Signal,
    bound: Duration,
) -> HostKill {
    kill_busy_host_started(
        host,
        interpreter,
        workers,
        signal,
        bound,
        pypool::StartMethod::default(),
    )
}

/// [`kill_busy_host`], with the host's workers started by `start_method`.
pub fn kill_busy_host_started(
    host: &str,
    interpreter: &str,
    workers: usize,
    signal: nix::sys::signal::Signal,
    bound: Duration,
    start_method: pypool::StartMethod,
) -> HostKill {
    use std::io::BufRead;
    let marker = unique_marker(&format!("host-{signal}-{start_method}"));
    let mut child = std::process::Command::new(host)
        .args([
            interpreter,
            &marker,
            &workers.to_string(),
            &start_method.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the busy host starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the busy host reports");
    assert_eq!(line.trim(), "BUSY", "the busy host's first line");
    let sleeps = |found: &[(u32, String)]| found.iter().filter(|(_, comm)| comm == "sleep").count();
    let mut before = Vec::new();
    let busy = wait_until(Duration::from_secs(60), || {
        before = marked_processes(&marker);
        sleeps(&before) == 2 * workers
    });
    assert!(
        busy,
        "every handler starts two grandchildren; saw {before:?}"
    );
    let host_pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
    let signalled = std::time::Instant::now();
    nix::sys::signal::kill(host_pid, signal).expect("signal the host");
    let mut survivors = Vec::new();
    wait_until(bound, || {
        survivors = marked_processes(&marker);
        survivors.is_empty()
    });
    let took = signalled.elapsed();
    let _ = child.wait();
    // Leave nothing behind for the next test, whatever this one saw.
    for (pid, _) in marked_processes(&marker) {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(raw),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    HostKill {
        before,
        survivors,
        took,
    }
}

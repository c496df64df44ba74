//! The Redis test harness: a private `redis-server` per test on a free
//! loopback port, in a temporary directory, with persistence off; stopped
//! (SIGKILL, then reaped) when the guard is dropped.
//!
//! A missing `redis-server` binary is a loud failure, never a skip:
//! `cargo xtask test-redis` installs Debian's `redis-server` package when it
//! is missing, and sets `PYPOOL_REDIS_SERVER` to the binary it found.

#![allow(dead_code, reason = "each test file uses part of the harness")]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use pypool_clock::SharedClock;
use pypool_redis::{RedisConfig, RedisStores};

/// How long a server may take to say it is ready (a loaded 2-core machine).
const READY_WITHIN: Duration = Duration::from_secs(30);

/// A running `redis-server` owned by the test.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    password: Option<String>,
    persistent: bool,
}

fn binary() -> String {
    std::env::var("PYPOOL_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

impl RedisServer {
    /// Starts a server on a free loopback port.
    pub fn start() -> Self {
        Self::start_with_password(None)
    }

    /// Starts a server that requires `password` (Redis AUTH).
    pub fn start_with_password(password: Option<&str>) -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("a temporary directory"),
            password: password.map(str::to_owned),
            persistent: false,
        };
        server.spawn();
        server
    }

    /// Starts a server that keeps its data across [`restart`](Self::restart)
    /// (an append-only file, synced on every write), for outage runs.
    pub fn start_persistent() -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("a temporary directory"),
            password: None,
            persistent: true,
        };
        server.spawn();
        server
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a [`pause`](Self::pause)d server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("a running server").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    fn spawn(&mut self) {
        let mut command = Command::new(binary());
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(if self.persistent {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                ["--appendonly", "no", "--appendfsync", "no"]
            })
            .args(["--logfile", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let mut child = command.spawn().unwrap_or_else(|error| {
            panic!(
                "cannot start `{}` ({error}): the Redis tests need redis-server; run `cargo xtask test-redis` \
                 (it installs Debian's redis-server when missing) or `apt-get install -y redis-server`",
                binary()
            )
        });
        // Readiness is the server's own log line, read on a thread and
        // waited for with a bound (no polling, no sleeping).
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready, is_ready) = mpsc::channel();
        std::thread::spawn(move || {
            let mut ready = Some(ready);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
            }
        });
        if is_ready.recv_timeout(READY_WITHIN).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "redis-server on port {} did not become ready within {READY_WITHIN:?}",
                self.port
            );
        }
        self.child = Some(child);
    }

    /// The server's URL (with the password, if any).
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (as a crash would) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused server must be able to die.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: persistence is off).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

static PREFIXES: AtomicU64 = AtomicU64::new(0);

/// A pool name no other store in this test process uses, so every store
/// starts empty on a shared server.
pub fn fresh_pool_name(label: &str) -> String {
    format!(
        "{label}-{}-{}",
        std::process::id(),
        PREFIXES.fetch_add(1, Ordering::Relaxed)
    )
}

/// A configuration for `server` under a fresh prefix, for host `host`.
pub fn config(server: &RedisServer, host: &str) -> RedisConfig {
    RedisConfig::new(
        server.url().parse().expect("a valid URL"),
        &fresh_pool_name("t"),
        host,
    )
    .expect("a valid configuration")
    // Generous on a loaded machine; the unavailability tests set their own.
    .with_timeout(Duration::from_secs(5))
    // Logical expiry only, in the model tests: Redis keeps the keys an hour.
    .with_expiry_slack(Duration::from_secs(3600))
    // Exact last use, as the model has it (`refresh.rs` tests the default).
    .with_refresh_resolution(Duration::ZERO)
}

/// Fresh stores (a new prefix) on `server`.
pub async fn stores(server: &RedisServer, clock: SharedClock) -> RedisStores {
    RedisStores::connect(&config(server, "host-a"), clock)
        .await
        .expect("connect to the test redis-server")
}

/// A fresh-prefix store set on the system clock.
pub async fn system_stores(server: &RedisServer) -> RedisStores {
    stores(server, Arc::new(pypool_clock::SystemClock)).await
}

/// A current-thread tokio runtime with time and I/O.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Stores for host `host` of pool `pool_name` on the Redis at `url`, with a
/// generous timeout and the given heartbeat TTL (the two-host tests).
pub async fn host_stores(
    url: &str,
    pool_name: &str,
    host: &str,
    heartbeat: Duration,
) -> RedisStores {
    let config = RedisConfig::new(url.parse().expect("a valid URL"), pool_name, host)
        .expect("a valid configuration")
        .with_timeout(Duration::from_secs(5))
        .with_heartbeat_ttl(heartbeat);
    RedisStores::connect(&config, Arc::new(pypool_clock::SystemClock))
        .await
        .expect("connect to the test redis-server")
}

/// A ready pool named `name` of 2 mock workers whose three stores are `stores`.
pub async fn mock_pool_on(stores: &RedisStores, name: &str) -> pypool::Pool {
    let pool = pypool::Pool::builder()
        .name(name)
        .size(2)
        .spawner(
            pypool_mock::MockSpawner::with_behaviour(pypool_mock::Behaviour::default())
                .expect("a valid behaviour"),
        )
        .affinity_store(stores.affinity.clone())
        .program_store(stores.programs.clone())
        .session_data_store(stores.session_data.clone())
        .build()
        .expect("the pool builds");
    pool.ready().await.expect("mock workers start");
    pool
}

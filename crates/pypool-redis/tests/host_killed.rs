//! Kill the host a session is bound to (a real process, SIGKILL): its
//! heartbeat key expires, every host then sees the binding as absent, and
//! the session's next call on the other host succeeds and rebinds there,
//! with the session's data and program intact.
//!
//! Host A is this test binary run again as a child process (its own `main`
//! picks the role from `PYPOOL_HOST_A`), host B is this process.
#![allow(clippy::unwrap_used, clippy::panic)] // a test: a panic is a failure report

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pypool::{Pool, ProgramSpec};
use pypool_affinity::SessionId;
use pypool_redis::{HostBinding, RedisStores};
use serde_json::json;
use support::RedisServer;

const HEARTBEAT: Duration = Duration::from_millis(600);
/// The bound on waiting for anything (a loaded 2-core machine).
const BOUND: Duration = Duration::from_secs(30);
const SESSION: &str = "chat-1";
/// Host A's role: `{url} {pool name}`.
const ROLE: &str = "PYPOOL_HOST_A";

async fn host(url: &str, pool_name: &str, host: &str) -> (Pool, RedisStores) {
    let stores = support::host_stores(url, pool_name, host, HEARTBEAT).await;
    (support::mock_pool_on(&stores, host).await, stores)
}

/// Host A: creates the session's program and data, serves one call (which
/// binds the session here), says which worker, then waits to be killed
/// (and exits on its own after [`BOUND`], should the test be gone).
fn host_a(role: &str) {
    let (url, pool_name) = role.split_once(' ').unwrap();
    support::runtime().block_on(async {
        let (pool, _stores) = host(url, pool_name, "host-a").await;
        let session = pool.session(SESSION).unwrap();
        session
            .create_program("p", ProgramSpec::python("m:f"))
            .await
            .unwrap();
        session.set("turns", json!(1)).await.unwrap();
        let served = session.execute_program("p", json!({})).await.unwrap();
        let mut stdout = std::io::stdout();
        writeln!(stdout, "bound {}", served["worker_id"]).unwrap();
        stdout.flush().unwrap();
        tokio::time::sleep(BOUND).await; // allowed: host A's lifetime; the test kills it long before
    });
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        host_a(&role);
        return;
    }
    let server = RedisServer::start();
    let pool_name = support::fresh_pool_name("killed");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(ROLE, format!("{} {pool_name}", server.url()))
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // Host A's line, read on a thread and waited for with a bound.
    let stdout = child.stdout.take().unwrap();
    let (line, got_line) = mpsc::channel();
    std::thread::spawn(move || {
        for read in BufReader::new(stdout).lines() {
            let Ok(read) = read else { break };
            let _ = line.send(read);
        }
    });
    let bound = got_line.recv_timeout(BOUND);
    let Ok(bound) = bound else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("host A did not bind the session within {BOUND:?}");
    };
    let worker: u64 = bound.strip_prefix("bound ").unwrap().parse().unwrap();

    support::runtime().block_on(async {
        let (pool_b, stores_b) = host(&server.url(), &pool_name, "host-b").await;
        let session = SessionId::new(SESSION).unwrap();
        assert_eq!(
            stores_b.affinity.locate(&session).await.unwrap(),
            Some(HostBinding {
                host: "host-a".to_owned(),
                worker
            })
        );

        child.kill().unwrap();
        child.wait().unwrap();
        let killed = Instant::now();
        while stores_b.affinity.locate(&session).await.unwrap().is_some() {
            assert!(
                killed.elapsed() < BOUND,
                "the dead host's binding still counts after {BOUND:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await; // allowed: poll interval of a bounded wait
        }
        let absent_after = killed.elapsed();

        let on_b = pool_b.session(SESSION).unwrap();
        let result = on_b
            .execute_program("p", json!({"after": "kill"}))
            .await
            .unwrap();
        assert_eq!(result["echo"]["inputs"], json!({"after": "kill"}));
        let rebound = stores_b.affinity.locate(&session).await.unwrap().unwrap();
        assert_eq!(rebound.host, "host-b");
        assert_eq!(on_b.get("turns").await.unwrap(), Some(json!(1)), "the data outlived its host");
        eprintln!(
            "host A killed: its binding read as absent after {absent_after:?} (heartbeat TTL {HEARTBEAT:?}); \
             the session's next call on host B succeeded and rebound it to host B's worker {}",
            rebound.worker
        );
        pool_b.shutdown(Duration::from_secs(5)).await;
    });
    eprintln!("host_killed: ok");
}

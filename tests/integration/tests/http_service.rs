//! The `http_service` example (crates/pypool/examples/http_service.rs),
//! included as a module and served on a free port (and once run as the
//! `pypool-http-service` process), driven by a plain HTTP/1.1 client against
//! real Python workers: programs and sessions run, typed errors come back as
//! their HTTP statuses, and shutdown is graceful.
#![cfg(feature = "real-python")]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use pypool::{Pool, PoolBuilder, ShutdownReport, Timeouts};
use pypool_integration::{bounded, poll_until, program_pool_builder};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[allow(dead_code, reason = "the example's `main` is not used here")]
#[path = "../../../crates/pypool/examples/http_service.rs"]
mod http_service;

/// One HTTP response: status, headers (lower-case names), JSON body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Value,
}

/// Sends one request (`Connection: close`) and reads the whole response.
async fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the service");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut raw = String::new();
    stream
        .read_to_string(&mut raw)
        .await
        .expect("read the response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    Reply {
        status,
        headers,
        body,
    }
}

/// The example serving a pool on 127.0.0.1:0 until `stop` is sent.
struct Server {
    addr: SocketAddr,
    pool: Pool,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<std::io::Result<ShutdownReport>>,
}

async fn start(builder: PoolBuilder) -> Server {
    let pool = builder.build().expect("pool builds");
    bounded("the workers start", pool.ready())
        .await
        .expect("workers start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let addr = listener.local_addr().expect("bound address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let done = tokio::spawn(http_service::serve(
        listener,
        pool.clone(),
        shutdown,
        Duration::from_secs(10),
    ));
    Server {
        addr,
        pool,
        stop,
        done,
    }
}

impl Server {
    async fn stop(self) -> ShutdownReport {
        let _ = self.stop.send(());
        bounded("the service stops", self.done)
            .await
            .expect("the server task ends")
            .expect("the server ends without an I/O error")
    }
}

const GREET: &str = r#"{"kind": "python", "spec": {"callable": "programs_basic:greet"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_sessions_and_commands_answer_with_their_statuses() {
    let server = start(program_pool_builder().size(1)).await;
    let addr = server.addr;

    let created = call(addr, "POST", "/programs/greet", GREET).await;
    assert_eq!(created.status, 201, "{created:?}");
    let again = call(addr, "POST", "/programs/greet", GREET).await;
    assert_eq!(again.status, 409, "{again:?}");
    let ran = call(addr, "POST", "/programs/greet/run", r#"{"name": "Ada"}"#).await;
    assert_eq!((ran.status, &ran.body), (200, &json!("Hello, Ada!")));

    let missing_input = call(addr, "POST", "/programs/greet/run", "{}").await;
    assert_eq!(missing_input.status, 422, "{missing_input:?}");
    assert_eq!(missing_input.body["kind"], "invalid_input");
    let message = missing_input.body["message"].as_str().unwrap_or_default();
    assert!(message.contains("name"), "{message}");
    let bad_args = call(addr, "POST", "/commands/add", r#"{"a": 1}"#).await;
    assert_eq!(bad_args.status, 422, "{bad_args:?}");
    assert_eq!(bad_args.body["kind"], "invalid_arguments");
    let not_json = call(addr, "POST", "/commands/add", "{not json").await;
    assert_eq!(not_json.status, 422, "{not_json:?}");
    assert_eq!(not_json.body["kind"], "invalid_json");
    let bad_spec = call(addr, "POST", "/programs/x", r#"{"kind": "cobol"}"#).await;
    assert_eq!(bad_spec.status, 422, "{bad_spec:?}");
    let added = call(addr, "POST", "/commands/add", r#"{"a": 1, "b": 2}"#).await;
    assert_eq!((added.status, &added.body), (200, &json!(3)));

    let no_program = call(addr, "POST", "/programs/nope/run", "{}").await;
    assert_eq!(no_program.status, 404, "{no_program:?}");
    assert_eq!(no_program.body["kind"], "program_not_found");
    let no_command = call(addr, "POST", "/commands/nope", "{}").await;
    assert_eq!(no_command.status, 404, "{no_command:?}");
    let reserved = call(addr, "POST", "/commands/pypool.ping", "{}").await;
    assert_eq!(reserved.status, 403, "{reserved:?}");
    assert_eq!(reserved.body["kind"], "reserved_command");

    let mine = call(addr, "POST", "/sessions/alice/programs/mine", GREET).await;
    assert_eq!(mine.status, 201, "{mine:?}");
    let ran = call(
        addr,
        "POST",
        "/sessions/alice/programs/mine/run",
        r#"{"name": "Bo", "punctuation": "?"}"#,
    )
    .await;
    assert_eq!((ran.status, &ran.body), (200, &json!("Hello, Bo?")));
    let other = call(addr, "POST", "/sessions/bob/programs/mine/run", "{}").await;
    assert_eq!(
        other.status, 404,
        "another session cannot see it: {other:?}"
    );
    let global = call(
        addr,
        "POST",
        "/sessions/bob/programs/greet/run",
        r#"{"name": "Cy"}"#,
    )
    .await;
    assert_eq!((global.status, &global.body), (200, &json!("Hello, Cy!")));
    let bad_session = call(addr, "POST", "/sessions/a%20b/programs/greet/run", "{}").await;
    assert_eq!(bad_session.status, 422, "{bad_session:?}");

    let status = call(addr, "GET", "/status", "").await;
    assert_eq!(status.status, 200, "{status:?}");
    assert_eq!(status.body["size"], 1);
    assert_eq!(status.body["workers"], 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_answers_503_with_retry_after() {
    let server = start(program_pool_builder().size(1).queue_bound(1)).await;
    let addr = server.addr;
    // One request holds the only worker for far longer than the test needs,
    // a second one fills the queue.
    let sleep = r#"{"seconds": 600}"#;
    let holder = tokio::spawn(call(addr, "POST", "/commands/sleep", sleep));
    let pool = server.pool.clone();
    poll_until("the only worker is busy", || pool.status().busy == 1).await;
    let queued = tokio::spawn(call(addr, "POST", "/commands/sleep", sleep));
    poll_until("the queue is full", || pool.status().queue_len == 1).await;
    let refused = call(addr, "POST", "/commands/add", r#"{"a": 1, "b": 2}"#).await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.body["kind"], "overloaded");
    assert_eq!(
        refused.headers.get("retry-after").map(String::as_str),
        Some("1")
    );
    holder.abort();
    queued.abort();
    // Stopping with the sleeper in flight: the pool kills it at its deadline.
    let _ = server.stop.send(());
    let _ = server.pool.shutdown(Duration::from_millis(100)).await;
    let _ = bounded("the service stops", server.done).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_answers_504() {
    let timeouts = Timeouts {
        request: Duration::from_secs(2),
        ..Timeouts::default()
    };
    let server = start(program_pool_builder().size(1).timeouts(timeouts)).await;
    let late = call(
        server.addr,
        "POST",
        "/commands/sleep",
        r#"{"seconds": 120}"#,
    )
    .await;
    assert_eq!(late.status, 504, "{late:?}");
    assert_eq!(late.body["kind"], "deadline_exceeded");
    // The worker was replaced; the service keeps serving.
    let added = call(server.addr, "POST", "/commands/add", r#"{"a": 2, "b": 2}"#).await;
    assert_eq!((added.status, &added.body), (200, &json!(4)));
    server.stop().await;
}

/// Reads one response from a keep-alive connection: the head, then
/// `Content-Length` bytes of body.
async fn read_reply(stream: &mut tokio::net::TcpStream) -> (u16, Value) {
    let mut raw = Vec::new();
    let mut byte = [0_u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let read = stream.read(&mut byte).await.expect("read the head");
        assert_eq!(read, 1, "the connection closed mid-response: {raw:?}");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("a Content-Length");
    let mut body = vec![0_u8; length];
    stream.read_exact(&mut body).await.expect("read the body");
    (status, serde_json::from_slice(&body).expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_request_in_flight_then_stops_the_pool() {
    let server = start(program_pool_builder().size(1)).await;
    let addr = server.addr;
    // A keep-alive connection (HTTP/1.1's default) with a request in flight.
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the service");
    let body = r#"{"seconds": 2}"#;
    let request = format!(
        "POST /commands/sleep HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let pool = server.pool.clone();
    poll_until("the request is running", || pool.status().busy == 1).await;
    let stopping = tokio::spawn(server.stop());
    let reply = bounded("the in-flight reply", read_reply(&mut stream)).await;
    assert_eq!(
        reply,
        (200, json!({"slept": 2})),
        "the request in flight completes"
    );
    let report = bounded("the service stops", stopping)
        .await
        .expect("the stop task ends");
    assert!(report.drained, "{report:?}");
    // Graceful: the server closed the connection after its last response
    // (a server that merely stopped accepting would leave it open).
    let mut rest = Vec::new();
    let read = bounded("the connection closes", stream.read_to_end(&mut rest)).await;
    assert_eq!(read.expect("read to the end"), 0, "{rest:?}");
    assert!(pool.status().shutting_down, "the pool was shut down");
    assert_eq!(pool.status().workers, 0, "{report:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the service takes no more connections"
    );
}

/// One request over a blocking connection (`Connection: close`): status and body.
fn blocking_call(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the service");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    (status, serde_json::from_str(body).expect("a JSON body"))
}

#[test]
fn the_example_process_prints_its_address_and_exits_0_on_sigterm_after_the_request_in_flight() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_pypool-http-service"))
        .args(["--bind", "127.0.0.1:0", "--size", "1", "--python"])
        .arg(pypool_integration::python())
        .arg("--handlers")
        .arg(pypool_integration::fixture("handlers_basic.py"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("the service starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the service reports its address");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    let in_flight = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            blocking_call(&addr, "POST", "/commands/sleep", r#"{"seconds": 2}"#)
        })
    };
    let busy = pypool_integration::wait_until(pypool_integration::PATIENCE, || {
        blocking_call(&addr, "GET", "/status", "").1["busy"] == 1
    });
    assert!(busy, "the request never ran");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal the service");
    let reply = in_flight.join().expect("the client thread ends");
    assert_eq!(
        reply,
        (200, json!({"slept": 2})),
        "the request in flight completes"
    );
    let mut status = None;
    let exited = pypool_integration::wait_until(pypool_integration::PATIENCE, || {
        status = child.try_wait().expect("poll the child");
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    assert!(exited, "the service did not exit after SIGTERM");
    assert_eq!(
        status.and_then(|status| status.code()),
        Some(0),
        "{status:?}"
    );
}

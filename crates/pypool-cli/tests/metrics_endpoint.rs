//! `--metrics-addr`: the Prometheus endpoint answers `GET /metrics` over
//! HTTP with the pool's metrics, here those of a pool of mock workers that
//! served one request.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use pypool::Pool;
use pypool_cli::metrics_endpoint::Metrics;
use pypool_mock::{Behaviour, MockSpawner};
use serde_json::json;

/// How long the endpoint may take to start answering on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` on `port`, retried (bounded) until the listener is up;
/// returns the whole HTTP response.
fn get_metrics(port: u16) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut stream) => {
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                stream
                    .write_all(
                        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                    )
                    .unwrap();
                let mut response = String::new();
                stream.read_to_string(&mut response).unwrap();
                return response;
            }
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "the metrics endpoint did not accept a connection within {PATIENCE:?}: {error}"
                );
                std::thread::sleep(Duration::from_millis(10)); // allowed: retry interval of a bounded wait
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_metrics_serves_the_pool_s_metrics_over_http() {
    let port = free_port();
    let metrics = Metrics::serve(&format!("127.0.0.1:{port}")).unwrap();
    assert_eq!(metrics.addr().port(), port);

    let pool = Pool::builder()
        .name("endpoint-test")
        .size(1)
        .health_check_interval(None)
        .spawner(MockSpawner::with_behaviour(Behaviour::default()).unwrap())
        .build()
        .unwrap();
    tokio::time::timeout(PATIENCE, pool.ready())
        .await
        .unwrap()
        .unwrap();
    pool.execute("echo", json!({ "n": 1 })).await.unwrap();

    let response = tokio::task::spawn_blocking(move || get_metrics(port))
        .await
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        body.contains(pypool::metrics::names::SPAWNS),
        "no spawn counter in:\n{body}"
    );
    assert!(
        body.lines().any(
            |line| line.starts_with(pypool::metrics::names::REQUEST_DURATION)
                && line.contains("endpoint-test")
        ),
        "no request duration for the pool in:\n{body}"
    );
    pool.shutdown(Duration::from_secs(5)).await;
}

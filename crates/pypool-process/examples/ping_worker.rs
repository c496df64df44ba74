//! Starts one real Python worker, pings it, and compares the median round trip
//! with a raw framed pipe to a minimal Python echo loop, measured in the same run.
//!
//! ```text
//! cargo run --release -p pypool-process --example ping_worker -- [PINGS]
//! ```
//! `PYPOOL_PYTHON` chooses the interpreter (default `python3`).

use std::process::Stdio;
use std::time::{Duration, Instant};

use pypool_process::{PythonSpawner, PythonSpawnerConfig};
use pypool_seam::{Outcome, SpawnRequest, WorkerSpawner};
use pypool_wire::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal Python loop echoing length-prefixed frames: the floor any
/// framed-pipe design can reach.
const RAW_ECHO: &str = "import sys,struct\n\
i=sys.stdin.buffer; o=sys.stdout.buffer\n\
while True:\n    h=i.read(4)\n    if len(h)<4: break\n    n=struct.unpack('>I',h)[0]\n    o.write(h+i.read(n)); o.flush()\n";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pings: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000);
    let python = std::env::var("PYPOOL_PYTHON").unwrap_or_else(|_| "python3".to_owned());

    let started = Instant::now();
    let spawner = PythonSpawner::new(
        PythonSpawnerConfig::new()
            .with_interpreter(&python)
            .with_log_level("warning"),
    );
    let worker = spawner
        .spawn(SpawnRequest {
            worker_id: 1,
            handshake_timeout: Duration::from_secs(30),
        })
        .await?;
    let handshake = worker.handshake();
    println!(
        "worker {} ready in {:.1?} (pid {}, Python {}, commands: {})",
        handshake.worker_id,
        started.elapsed(),
        handshake.pid,
        handshake.python_version,
        handshake
            .commands
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut pool_rtts = Vec::with_capacity(pings);
    for id in 0..pings as u64 {
        let mut args = serde_json::Map::new();
        args.insert("payload".into(), id.into());
        let sent = Instant::now();
        let outcome = worker
            .call(Request {
                id,
                command: "ping".into(),
                args,
            })
            .await?;
        pool_rtts.push(sent.elapsed());
        match outcome {
            Outcome::Ok { result } if result["payload"] == id => {}
            other => return Err(format!("ping {id} got a wrong reply: {other:?}").into()),
        }
    }

    let raw_rtts = raw_pipe_round_trips(&python, pings).await?;
    let pool_median = median(&mut pool_rtts);
    let raw_median = median(&mut raw_rtts.clone());
    println!("{pings} pings answered correctly");
    println!("median round trip through pypool-process: {pool_median:.1?}");
    println!("median round trip through a raw framed pipe: {raw_median:.1?}");
    println!(
        "ratio pypool / raw: {:.2}",
        pool_median.as_secs_f64() / raw_median.as_secs_f64().max(f64::EPSILON)
    );
    Ok(())
}

async fn raw_pipe_round_trips(
    python: &str,
    count: usize,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let mut child = tokio::process::Command::new(python)
        .args(["-c", RAW_ECHO])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut rtts = Vec::with_capacity(count);
    let mut reply = Vec::new();
    for id in 0..count {
        let body =
            format!(r#"{{"type":"request","id":{id},"command":"ping","args":{{"payload":{id}}}}}"#);
        let length = u32::try_from(body.len())?.to_be_bytes();
        let sent = Instant::now();
        stdin
            .write_all(&[&length[..], body.as_bytes()].concat())
            .await?;
        let mut prefix = [0u8; 4];
        stdout.read_exact(&mut prefix).await?;
        reply.resize(u32::from_be_bytes(prefix) as usize, 0);
        stdout.read_exact(&mut reply).await?;
        rtts.push(sent.elapsed());
        if reply != body.as_bytes() {
            return Err("raw echo returned other bytes".into());
        }
    }
    Ok(rtts)
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

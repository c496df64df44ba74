//! Load shapes shared by the workloads: a closed loop of concurrent callers
//! for a fixed window, one caller's sequential latencies, and the raw framed
//! pipe baseline.

use std::future::Future;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::Semaphore;

/// What a closed loop did.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    /// Calls answered successfully.
    pub ok: u64,
    /// Calls that failed.
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// From the first call to the last answer.
    pub elapsed: Duration,
}

impl Throughput {
    /// Adds `other` (a later slice of the same contestant) to this tally.
    pub fn absorb(&mut self, other: Throughput) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Successful calls per second.
    pub fn per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.ok as f64 / seconds
        } else {
            0.0
        }
    }

    /// An error unless every call succeeded (and some did).
    pub fn check(&self, what: &str) -> Result<f64, String> {
        if let Some(error) = &self.first_error {
            return Err(format!(
                "{what}: {} of {} calls failed, the first with: {error}",
                self.errors,
                self.ok + self.errors
            ));
        }
        if self.ok == 0 {
            return Err(format!("{what}: no call was answered"));
        }
        Ok(self.per_second())
    }
}

/// `concurrency` tasks, each calling `call(n)` again as soon as its
/// previous call returned, starting calls until `window` has passed; ends
/// when every call has returned.
pub async fn closed_loop<F, Fut>(concurrency: usize, window: Duration, call: F) -> Throughput
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let started = Instant::now();
    let deadline = started + window;
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..concurrency as u64 {
        let call = call.clone();
        tasks.spawn(async move {
            let mut tally = Throughput::default();
            let mut n = caller << 32;
            while Instant::now() < deadline {
                match call(n).await {
                    Ok(()) => tally.ok += 1,
                    Err(error) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert(error);
                    }
                }
                n += 1;
            }
            tally
        });
    }
    let mut total = Throughput::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(tally) => {
                total.ok += tally.ok;
                total.errors += tally.errors;
                if total.first_error.is_none() {
                    total.first_error = tally.first_error;
                }
            }
            Err(error) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert_with(|| format!("a caller task failed: {error}"));
            }
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// A latency histogram in nanoseconds (1 ns to 60 s, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    #[allow(clippy::unwrap_used, reason = "constant, valid bounds")]
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

/// Records one latency.
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    histogram.saturating_record(nanos.max(1));
}

/// The `quantile` of `histogram` in microseconds.
pub fn quantile_us(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1_000.0
}

/// The percentiles a latency chart shows.
pub const CHART_PERCENTILES: [f64; 14] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 80.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95,
];

/// `[percentile, µs]` points of `histogram` for a latency chart.
pub fn percentile_points(histogram: &Histogram<u64>) -> Vec<[f64; 2]> {
    if histogram.is_empty() {
        return Vec::new();
    }
    CHART_PERCENTILES
        .iter()
        .map(|&percentile| [percentile, quantile_us(histogram, percentile / 100.0)])
        .collect()
}

/// One caller awaiting `call(n)` `count` times in a row; the latencies.
pub async fn sequential<F, Fut>(count: u64, call: F) -> Result<Histogram<u64>, String>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut latencies = histogram();
    for n in 0..count {
        let sent = Instant::now();
        call(n).await?;
        record(&mut latencies, sent.elapsed());
    }
    Ok(latencies)
}

/// The body of raw frame `n`: what pypool sends for a ping, so the raw pipe
/// moves the same bytes.
fn raw_body(n: u64) -> Vec<u8> {
    format!(r#"{{"type":"request","id":{n},"command":"ping","args":{{"payload":{n}}}}}"#)
        .into_bytes()
}

fn frame(body: &[u8]) -> Result<Vec<u8>, String> {
    let length = u32::try_from(body.len()).map_err(|_| "frame too long".to_owned())?;
    Ok([&length.to_be_bytes()[..], body].concat())
}

fn start_echo(python: &str, scripts: &Path) -> Result<tokio::process::Child, String> {
    start_script(python, &scripts.join("raw_echo.py"))
}

fn start_script(python: &str, script: &Path) -> Result<tokio::process::Child, String> {
    tokio::process::Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot start `{python} {}`: {error}", script.display()))
}

async fn read_frame(
    reader: &mut (impl AsyncReadExt + Unpin),
    body: &mut Vec<u8>,
) -> std::io::Result<bool> {
    let mut prefix = [0u8; 4];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(error) => return Err(error),
    }
    body.resize(u32::from_be_bytes(prefix) as usize, 0);
    reader.read_exact(body).await?;
    Ok(true)
}

/// A framed pipe driven one frame at a time straight from this task: to a
/// minimal Python echo loop (the raw pipe), to a minimal JSON loop (the
/// floor of a JSON protocol), or to `python -m pypool_worker` itself (the
/// worker runtime without `pypool-process`).
pub struct RawEcho {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
    reply: Vec<u8>,
    /// Replies are pings' replies (the worker runtime, the JSON loop), not
    /// the request's bytes.
    worker: bool,
}

impl RawEcho {
    /// Starts the echo loop and makes one warm-up round trip (once the
    /// interpreter has started).
    pub async fn start(python: &str, scripts: &Path) -> Result<Self, String> {
        Self::wire(start_echo(python, scripts)?, false, false).await
    }

    /// Starts `json_echo.py` (decode each request, encode its reply, nothing
    /// else) and makes one warm-up round trip.
    pub async fn start_json_floor(python: &str, scripts: &Path) -> Result<Self, String> {
        let child = start_script(python, &scripts.join("json_echo.py"))?;
        Self::wire(child, true, false).await
    }

    /// Starts `python -m pypool_worker` (the package found in the venv, or
    /// next to `scripts`), reads its handshake and makes one warm-up ping.
    pub async fn start_worker(python: &str, scripts: &Path) -> Result<Self, String> {
        let package_dir = scripts.parent().unwrap_or(scripts);
        let child = tokio::process::Command::new(python)
            .args([
                "-m",
                "pypool_worker",
                "--worker-id",
                "1",
                "--log-level",
                "warning",
            ])
            .env("PYTHONPATH", package_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| format!("cannot start `{python} -m pypool_worker`: {error}"))?;
        Self::wire(child, true, true).await
    }

    async fn wire(
        mut child: tokio::process::Child,
        worker: bool,
        handshake: bool,
    ) -> Result<Self, String> {
        let stdin = child.stdin.take().ok_or("the pipe has no stdin")?;
        let stdout = child.stdout.take().ok_or("the pipe has no stdout")?;
        let mut pipe = Self {
            child,
            stdin,
            stdout,
            reply: Vec::new(),
            worker,
        };
        if handshake {
            let handshake = read_frame(&mut pipe.stdout, &mut pipe.reply)
                .await
                .map_err(|error| format!("the worker's handshake: {error}"))?;
            if !handshake || !pipe.reply.starts_with(br#"{"type":"handshake""#) {
                return Err(format!(
                    "the worker did not start: {}",
                    String::from_utf8_lossy(&pipe.reply)
                ));
            }
        }
        pipe.round_trip(0).await?;
        Ok(pipe)
    }

    /// Sends frame `n` (a ping request's bytes) and reads the answer: the
    /// same bytes from the echo loop, the ping's reply from the worker.
    pub async fn round_trip(&mut self, n: u64) -> Result<(), String> {
        let io = |error: std::io::Error| format!("raw pipe: {error}");
        let body = raw_body(n);
        self.stdin.write_all(&frame(&body)?).await.map_err(io)?;
        let answered = read_frame(&mut self.stdout, &mut self.reply)
            .await
            .map_err(io)?;
        let expected = if self.worker {
            let reply = String::from_utf8_lossy(&self.reply);
            reply.contains(r#""status":"ok""#) && reply.contains(&format!(r#""payload":{n}}}"#))
        } else {
            self.reply == body
        };
        if !answered || !expected {
            return Err(format!(
                "raw pipe: the {} answered other bytes or ended: {}",
                if self.worker { "worker" } else { "echo loop" },
                String::from_utf8_lossy(&self.reply)
            ));
        }
        Ok(())
    }

    /// Closes its input and waits for it to exit.
    pub async fn stop(self) {
        let Self {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        let _ = child.wait().await;
    }
}

/// Raw framed pipe with `in_flight` frames outstanding, sending for
/// `window`: frames per second.
pub async fn raw_pipe_throughput(
    python: &str,
    scripts: &Path,
    in_flight: usize,
    window: Duration,
) -> Result<Throughput, String> {
    let mut child = start_echo(python, scripts)?;
    let stdin = child.stdin.take().ok_or("the echo loop has no stdin")?;
    let stdout = child.stdout.take().ok_or("the echo loop has no stdout")?;
    let mut reader = BufReader::new(stdout);
    // Warm-up: one round trip before timing.
    let mut writer = BufWriter::new(stdin);
    let mut body = Vec::new();
    let io = |error: std::io::Error| format!("raw pipe: {error}");
    writer.write_all(&frame(&raw_body(0))?).await.map_err(io)?;
    writer.flush().await.map_err(io)?;
    read_frame(&mut reader, &mut body).await.map_err(io)?;

    let slots = Arc::new(Semaphore::new(in_flight));
    let started = Instant::now();
    let deadline = started + window;
    let sender = {
        let slots = Arc::clone(&slots);
        tokio::spawn(async move {
            let mut sent = 0_u64;
            while Instant::now() < deadline {
                let Ok(permit) = slots.acquire().await else {
                    break;
                };
                permit.forget();
                sent += 1;
                let request = frame(&raw_body(sent))?;
                writer.write_all(&request).await.map_err(io)?;
                // Write out whenever the sender would otherwise wait.
                if slots.available_permits() == 0 {
                    writer.flush().await.map_err(io)?;
                }
            }
            writer.flush().await.map_err(io)?;
            drop(writer); // end of input: the loop echoes what it has, then exits
            Ok::<u64, String>(sent)
        })
    };
    let mut received = 0_u64;
    let mut last = started;
    let mut first_error = None;
    loop {
        match read_frame(&mut reader, &mut body).await {
            Ok(true) => {
                received += 1;
                last = Instant::now();
                if body != raw_body(received) {
                    first_error.get_or_insert_with(|| {
                        format!("raw pipe: frame {received} came back different")
                    });
                }
                slots.add_permits(1);
            }
            Ok(false) => break,
            Err(error) => {
                first_error.get_or_insert_with(|| format!("raw pipe: {error}"));
                break;
            }
        }
    }
    // If the reader stopped early (an error), the sender must not wait for
    // permits that will never come back.
    slots.close();
    let sent = sender
        .await
        .map_err(|error| format!("raw pipe sender: {error}"))??;
    let _ = child.wait().await;
    if sent != received {
        first_error.get_or_insert_with(|| format!("raw pipe: sent {sent}, received {received}"));
    }
    Ok(Throughput {
        ok: received,
        errors: u64::from(first_error.is_some()),
        first_error,
        elapsed: last - started,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorbing_a_slice_adds_its_answers_errors_and_time_and_keeps_the_first_error() {
        let mut total = Throughput {
            ok: 10,
            errors: 0,
            first_error: None,
            elapsed: Duration::from_millis(100),
        };
        total.absorb(Throughput {
            ok: 5,
            errors: 2,
            first_error: Some("first".to_owned()),
            elapsed: Duration::from_millis(50),
        });
        total.absorb(Throughput {
            ok: 1,
            errors: 1,
            first_error: Some("second".to_owned()),
            elapsed: Duration::from_millis(50),
        });
        assert_eq!((total.ok, total.errors), (16, 3));
        assert_eq!(total.elapsed, Duration::from_millis(200));
        assert_eq!(total.first_error.as_deref(), Some("first"));
        assert!((total.per_second() - 80.0).abs() < 1e-9);
    }
}

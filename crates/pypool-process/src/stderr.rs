//! Forwarding a worker's stderr to `tracing`, keeping its last lines.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use pypool_seam::WorkerId;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::JoinHandle;

/// The last lines a worker wrote on stderr, shared with the forwarding task.
#[derive(Debug, Clone, Default)]
pub(crate) struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    capacity: usize,
}

impl StderrTail {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            lines: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))),
            capacity,
        }
    }

    fn push(&self, line: String) {
        if self.capacity == 0 {
            return;
        }
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The kept lines joined with newlines.
    pub(crate) fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let mut text = String::new();
        for line in lines.iter() {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

/// Spawns a task that reads `stderr` line by line until EOF, logs each line
/// tagged with the worker id, and keeps the last ones in `tail`.
pub(crate) fn forward(
    worker_id: WorkerId,
    stderr: impl AsyncRead + Unpin + Send + 'static,
    tail: StderrTail,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&raw).trim_end().to_owned();
                    log_line(worker_id, &line);
                    tail.push(line);
                }
            }
        }
    })
}

/// Logs one stderr line at the level its text suggests (the worker prefixes
/// its own log lines with the level name).
fn log_line(worker_id: WorkerId, line: &str) {
    if line.contains("ERROR") || line.contains("CRITICAL") || line.starts_with("Traceback") {
        tracing::error!(target: "pypool::worker", worker_id, "{line}");
    } else if line.contains("WARNING") {
        tracing::warn!(target: "pypool::worker", worker_id, "{line}");
    } else if line.contains("DEBUG") {
        tracing::debug!(target: "pypool::worker", worker_id, "{line}");
    } else {
        tracing::info!(target: "pypool::worker", worker_id, "{line}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_only_the_last_lines() {
        let tail = StderrTail::new(2);
        let input: &[u8] = b"one\ntwo\nthree\n";
        forward(1, input, tail.clone()).await.unwrap();
        assert_eq!(tail.text(), "two\nthree\n");
    }

    #[tokio::test]
    async fn invalid_utf8_and_missing_newline_are_kept() {
        let tail = StderrTail::new(5);
        let input: &[u8] = b"ok\n\xff\xfebad\nlast";
        forward(1, input, tail.clone()).await.unwrap();
        assert_eq!(tail.text(), "ok\n\u{fffd}\u{fffd}bad\nlast\n");
    }
}

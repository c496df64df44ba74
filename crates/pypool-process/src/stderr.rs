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

/// The longest stderr line kept, in bytes; the rest of a longer line is
/// dropped as it arrives and replaced by a marker saying how much was cut.
/// Neither the forwarding task nor the tail ever holds more than this per line,
/// however much a worker writes without a newline.
pub(crate) const MAX_LINE_BYTES: usize = 16 * 1024;

/// Spawns a task that reads `stderr` line by line until EOF, logs each line
/// tagged with the worker id, and keeps the last ones in `tail`. Lines longer
/// than [`MAX_LINE_BYTES`] are truncated (`… [truncated N bytes]`).
pub(crate) fn forward(
    worker_id: WorkerId,
    stderr: impl AsyncRead + Unpin + Send + 'static,
    tail: StderrTail,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr);
        let mut lines = LineAssembler::new(MAX_LINE_BYTES);
        loop {
            let chunk = match reader.fill_buf().await {
                Ok([]) | Err(_) => break,
                Ok(chunk) => chunk,
            };
            let used = chunk.len();
            lines.feed(chunk, |line| {
                log_line(worker_id, &line);
                tail.push(line);
            });
            reader.consume(used);
        }
        if let Some(line) = lines.finish() {
            log_line(worker_id, &line);
            tail.push(line);
        }
    })
}

/// Splits a byte stream into lines of at most `limit` bytes (plus a marker),
/// holding at most `limit` bytes between calls.
struct LineAssembler {
    limit: usize,
    current: Vec<u8>,
    /// Bytes of the current line dropped beyond `limit`.
    dropped: u64,
}

impl LineAssembler {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            current: Vec::new(),
            dropped: 0,
        }
    }

    /// Consumes `chunk`, calling `emit` for each line it completes.
    fn feed(&mut self, mut chunk: &[u8], mut emit: impl FnMut(String)) {
        while !chunk.is_empty() {
            let (piece, complete) = match chunk.iter().position(|&byte| byte == b'\n') {
                Some(end) => (&chunk[..end], true),
                None => (chunk, false),
            };
            let room = self.limit.saturating_sub(self.current.len());
            let kept = piece.len().min(room);
            self.current.extend_from_slice(&piece[..kept]);
            self.dropped = self
                .dropped
                .saturating_add(u64::try_from(piece.len() - kept).unwrap_or(u64::MAX));
            if complete {
                emit(self.take());
                chunk = &chunk[piece.len() + 1..];
            } else {
                chunk = &[];
            }
        }
    }

    /// The unfinished last line, if any (at EOF).
    fn finish(&mut self) -> Option<String> {
        (!self.current.is_empty() || self.dropped > 0).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let mut line = String::from_utf8_lossy(&self.current).trim_end().to_owned();
        if self.dropped > 0 {
            line.push_str(&format!(" … [truncated {} bytes]", self.dropped));
        }
        self.current.clear();
        // Never keep a large allocation around after a long line.
        if self.current.capacity() > self.limit {
            self.current.shrink_to(self.limit);
        }
        self.dropped = 0;
        line
    }
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

    #[tokio::test]
    async fn a_long_line_is_truncated_with_a_marker() {
        let tail = StderrTail::new(5);
        let mut input = vec![b'x'; MAX_LINE_BYTES + 1000];
        input.extend_from_slice(b"\nnext\n");
        forward(1, std::io::Cursor::new(input), tail.clone())
            .await
            .unwrap();
        let text = tail.text();
        let mut lines = text.lines();
        let first = lines.next().unwrap();
        assert!(first.starts_with(&"x".repeat(MAX_LINE_BYTES)));
        assert!(first.ends_with(" … [truncated 1000 bytes]"), "{first:?}");
        assert_eq!(lines.next(), Some("next"));
    }

    #[test]
    fn the_assembler_never_holds_more_than_its_limit() {
        let mut lines = LineAssembler::new(8);
        let mut seen = Vec::new();
        for _ in 0..1000 {
            lines.feed(&[b'y'; 4096], |line| seen.push(line));
            assert!(
                lines.current.capacity() <= 64,
                "{}",
                lines.current.capacity()
            );
        }
        lines.feed(b"\nshort\ntail", |line| seen.push(line));
        assert_eq!(seen, ["yyyyyyyy … [truncated 4095992 bytes]", "short"]);
        assert_eq!(lines.finish().as_deref(), Some("tail"));
        assert_eq!(lines.finish(), None);
    }
}

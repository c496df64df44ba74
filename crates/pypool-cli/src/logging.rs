//! Logs to stderr (stdout is kept for results and `--json` reports).
//!
//! Progress bars draw on stderr too. Every log line goes through
//! [`MultiProgress::suspend`] of the one [`bars`] set: the bars are wiped,
//! the line is printed, the bars are drawn again below it — so a WARN line
//! from a killed worker lands above a bar that stays whole, instead of
//! leaving a half-drawn bar behind per line.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use indicatif::MultiProgress;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The process's progress bars: every visible bar is added here, so log
/// lines can be printed above them.
pub fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(MultiProgress::new)
}

/// Makes a [`LineWriter`] per log event.
#[derive(Debug, Clone, Copy, Default)]
pub struct AboveBars;

impl<'a> MakeWriter<'a> for AboveBars {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter::default()
    }
}

/// Collects one log event's text and prints it to stderr, above the
/// progress bars, when dropped.
#[derive(Debug, Default)]
pub struct LineWriter {
    text: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.text);
        bars().suspend(|| {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(&text);
            let _ = stderr.flush();
        });
    }
}

/// The filter used when neither `--log-level` nor `RUST_LOG` says otherwise.
pub const DEFAULT_FILTER: &str = "warn";

/// Installs the stderr logger. `level` (from `--log-level`,
/// `PYPOOL_LOG_LEVEL` or `pypool.toml`) wins; otherwise `RUST_LOG`;
/// otherwise [`DEFAULT_FILTER`]. Either may be a level or a full EnvFilter
/// directive (`pypool=debug,info`). Returns the filter in use, or an error
/// naming an invalid one.
pub fn init(level: Option<&str>) -> Result<String, String> {
    let directive = match level {
        Some(level) => level.to_owned(),
        None => std::env::var(EnvFilter::DEFAULT_ENV)
            .ok()
            .filter(|value| !value.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_FILTER.to_owned()),
    };
    let filter = EnvFilter::try_new(&directive)
        .map_err(|error| format!("invalid log level or filter `{directive}`: {error}"))?;
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(AboveBars)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    Ok(directive)
}

//! Logs to stderr (stdout is kept for results and `--json` reports).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

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
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    Ok(directive)
}

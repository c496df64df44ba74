//! `pypool.toml`: optional settings below flags and environment variables.
//!
//! ```toml
//! log_level = "info"
//! metrics_addr = "127.0.0.1:9100"
//! python = "python3"
//! python_path = ["python"]          # relative to this file
//! env_policy = "clear"              # or "inherit" (the default)
//! pass_env = ["OPENAI_API_KEY"]     # passed on under "clear"
//! start_mode = "spawn"              # or "fork" (the default on Linux)
//! preload = ["dspy"]                # imported at worker start
//! handlers = ["handlers/mine.py"]   # `.py` paths relative to this file
//! workers = 4                       # both subcommands, unless a section says otherwise
//! request_timeout = 30              # seconds
//!
//! [stress]
//! workers = 8
//! requests = 2000
//! concurrency = 64
//! sessions = 16
//! kill_every = 500
//! seed = 7
//! command = "demo.primes"
//! args = { limit = 1000 }
//!
//! [call]
//! workers = 1
//! ```
//!
//! Unknown keys are an error naming the key, so a typo is never silently
//! ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_PATH: &str = "pypool.toml";

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Log level or EnvFilter directive.
    pub log_level: Option<String>,
    /// Where to serve Prometheus metrics.
    pub metrics_addr: Option<String>,
    /// The Python interpreter.
    pub python: Option<String>,
    /// Folders prepended to the workers' `PYTHONPATH`.
    pub python_path: Option<Vec<PathBuf>>,
    /// `inherit` or `clear`: which host environment variables workers get.
    pub env_policy: Option<EnvPolicyName>,
    /// Variables passed to workers under `env_policy = "clear"`.
    pub pass_env: Option<Vec<String>>,
    /// `fork` or `spawn`: how workers start.
    pub start_mode: Option<StartModeName>,
    /// Libraries every worker imports at start (e.g. `dspy`).
    pub preload: Option<Vec<String>>,
    /// Handler modules or `.py` files.
    pub handlers: Option<Vec<String>>,
    /// Pool size for every subcommand without its own.
    pub workers: Option<usize>,
    /// Request timeout, in seconds.
    pub request_timeout: Option<f64>,
    /// The shared store URL (`redis://…` or `rediss://…`).
    pub store: Option<String>,
    /// `[stress]`.
    pub stress: Option<StressFile>,
    /// `[call]`.
    pub call: Option<CallFile>,
}

/// `env_policy` in the file (anything else is an error naming the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvPolicyName {
    /// Workers get the host's whole environment.
    Inherit,
    /// Workers get the allow-list and `pass_env` only.
    Clear,
}

impl EnvPolicyName {
    /// The name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inherit => "inherit",
            Self::Clear => "clear",
        }
    }
}

/// `start_mode` in the file (anything else is an error naming the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartModeName {
    /// Workers are forked from a template.
    Fork,
    /// Each worker is its own interpreter.
    Spawn,
}

impl StartModeName {
    /// The name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fork => "fork",
            Self::Spawn => "spawn",
        }
    }
}

/// `[stress]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StressFile {
    /// Pool size.
    pub workers: Option<usize>,
    /// Requests to run.
    pub requests: Option<u64>,
    /// Requests at once.
    pub concurrency: Option<usize>,
    /// Sessions.
    pub sessions: Option<usize>,
    /// Kill a worker every N requests.
    pub kill_every: Option<u64>,
    /// Workload seed.
    pub seed: Option<u64>,
    /// Replaces the plain commands of the workload.
    pub command: Option<String>,
    /// That command's keyword arguments.
    pub args: Option<toml::Table>,
    /// Pool hosts sharing the store.
    pub hosts: Option<usize>,
}

/// `[call]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallFile {
    /// Pool size.
    pub workers: Option<usize>,
}

/// Why the settings file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// It could not be read.
    #[error("cannot read settings file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid TOML, or has an unknown key or a wrong type.
    #[error("invalid settings file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and its line).
        message: String,
    },
}

/// The settings file and where it was found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadedFile {
    /// The file read, if any.
    pub path: Option<PathBuf>,
    /// Its settings (all absent when no file was read).
    pub config: FileConfig,
}

/// Reads `explicit` (it must exist), or `./pypool.toml` if it exists, or nothing.
pub fn load(explicit: Option<&Path>) -> Result<LoadedFile, ConfigFileError> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let default = PathBuf::from(DEFAULT_PATH);
            if !default.is_file() {
                return Ok(LoadedFile::default());
            }
            default
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigFileError::Read {
        path: path.clone(),
        source,
    })?;
    let base = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let config = parse(&text, &base).map_err(|message| ConfigFileError::Parse {
        path: path.clone(),
        message,
    })?;
    Ok(LoadedFile {
        path: Some(path),
        config,
    })
}

/// Parses the file's text; relative paths are taken relative to `base` (the file's folder).
pub fn parse(text: &str, base: &Path) -> Result<FileConfig, String> {
    let mut config: FileConfig = toml::from_str(text).map_err(|error| error.to_string())?;
    if let Some(dirs) = &mut config.python_path {
        for dir in dirs.iter_mut() {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
    }
    if let Some(handlers) = &mut config.handlers {
        for handler in handlers.iter_mut() {
            let as_path = Path::new(handler.as_str());
            if handler.ends_with(".py") && as_path.is_relative() {
                *handler = base.join(as_path).to_string_lossy().into_owned();
            }
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_full_file_parses() {
        let text = r#"
            log_level = "info"
            python = "python3.12"
            python_path = ["py", "/abs"]
            handlers = ["mine.py", "pkg.module"]
            workers = 4
            request_timeout = 2.5

            [stress]
            requests = 100
            kill_every = 10
            command = "demo.primes"
            args = { limit = 1000 }

            [call]
            workers = 2
        "#;
        let config = parse(text, Path::new("/etc/pypool")).unwrap();
        assert_eq!(config.python.as_deref(), Some("python3.12"));
        assert_eq!(
            config.python_path.unwrap(),
            [PathBuf::from("/etc/pypool/py"), PathBuf::from("/abs")]
        );
        assert_eq!(
            config.handlers.unwrap(),
            ["/etc/pypool/mine.py", "pkg.module"]
        );
        assert_eq!(config.workers, Some(4));
        assert_eq!(config.request_timeout, Some(2.5));
        let stress = config.stress.unwrap();
        assert_eq!(stress.requests, Some(100));
        assert_eq!(stress.args.unwrap()["limit"].as_integer(), Some(1000));
        assert_eq!(config.call.unwrap().workers, Some(2));
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it() {
        let error = parse("wrokers = 3\n", Path::new(".")).unwrap_err();
        assert!(error.contains("wrokers"), "{error}");
        let error = parse("[stress]\nkill_evry = 3\n", Path::new(".")).unwrap_err();
        assert!(error.contains("kill_evry"), "{error}");
        let error = parse("[strss]\n", Path::new(".")).unwrap_err();
        assert!(error.contains("strss"), "{error}");
    }

    #[test]
    fn a_wrong_type_is_an_error_naming_the_key() {
        let error = parse("workers = \"eight\"\n", Path::new(".")).unwrap_err();
        assert!(error.contains("workers"), "{error}");
    }

    #[test]
    fn an_explicit_file_must_exist_and_errors_name_it() {
        let missing = Path::new("/nonexistent/pypool.toml");
        let error = load(Some(missing)).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/pypool.toml"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custom.toml");
        std::fs::write(&path, "bogus = 1\n").unwrap();
        let error = load(Some(&path)).unwrap_err().to_string();
        assert!(
            error.contains("custom.toml") && error.contains("bogus"),
            "{error}"
        );

        std::fs::write(&path, "workers = 3\n").unwrap();
        let loaded = load(Some(&path)).unwrap();
        assert_eq!(loaded.path.as_deref(), Some(path.as_path()));
        assert_eq!(loaded.config.workers, Some(3));
    }
}

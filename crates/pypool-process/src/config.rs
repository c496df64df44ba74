//! How to start a Python worker.

use std::path::PathBuf;

use pypool_wire::DEFAULT_MAX_FRAME_BYTES;

/// Which of the host's environment variables a worker gets.
///
/// Whatever the policy, the variables pypool sets itself (`PYTHONPATH` for the
/// runtime, `PYTHONDONTWRITEBYTECODE`, the allowed program modules) and those
/// given with [`PythonSpawnerConfig::with_env`] always reach the worker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EnvPolicy {
    /// The worker inherits the host's whole environment (the default, as for
    /// any child process: handlers find credentials such as an LM's API key
    /// where the operator put them).
    #[default]
    Inherit,
    /// The worker starts from an empty environment plus the host's values of
    /// [`EnvPolicy::BASE_ALLOW_LIST`] and of the named extra variables;
    /// nothing else (no tokens, no cloud credentials) is passed on.
    Clear {
        /// Further variable names to pass on (e.g. `OPENAI_API_KEY`); a name
        /// ending in `*` passes every variable with that prefix.
        extra: Vec<String>,
    },
}

impl EnvPolicy {
    /// What [`EnvPolicy::Clear`] always passes on: the search path, home,
    /// locale, Python's own settings, time zone and temporary folder (a
    /// trailing `*` is a prefix).
    pub const BASE_ALLOW_LIST: &'static [&'static str] = &[
        "PATH", "HOME", "LANG", "LANGUAGE", "LC_*", "PYTHON*", "TZ", "TMPDIR",
    ];

    /// [`EnvPolicy::Clear`] with these extra variable names.
    pub fn clear<I, S>(extra: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Clear {
            extra: extra.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether a host variable named `name` is passed on under this policy.
    pub fn passes(&self, name: &str) -> bool {
        match self {
            Self::Inherit => true,
            Self::Clear { extra } => Self::BASE_ALLOW_LIST
                .iter()
                .copied()
                .chain(extra.iter().map(String::as_str))
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => name == pattern,
                }),
        }
    }
}

/// How a [`PythonSpawner`](crate::PythonSpawner) starts each worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMethod {
    /// A *template* process (`python -m pypool_worker --template`, spawned
    /// once, restarted if it dies) imports the handler modules and preloads
    /// once; each worker, replacements included, is forked from it. Workers
    /// share the template's memory pages and start in milliseconds. Linux
    /// only; if the template has more than one thread after its imports
    /// (forking it would be unsafe), the spawner logs a warning and falls
    /// back to [`StartMethod::Spawn`] for good. A configuration whose
    /// [`worker_module`](PythonSpawnerConfig::worker_module) is not the
    /// default `pypool_worker` (which alone speaks the template protocol)
    /// always spawns.
    Fork,
    /// Each worker is its own `python -m pypool_worker` process, which
    /// imports everything itself.
    Spawn,
}

impl Default for StartMethod {
    /// [`StartMethod::Fork`] on Linux, [`StartMethod::Spawn`] elsewhere.
    fn default() -> Self {
        if cfg!(target_os = "linux") {
            Self::Fork
        } else {
            Self::Spawn
        }
    }
}

impl std::str::FromStr for StartMethod {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "fork" => Ok(Self::Fork),
            "spawn" => Ok(Self::Spawn),
            other => Err(format!(
                "unknown start mode `{other}`; use `fork` or `spawn`"
            )),
        }
    }
}

impl std::fmt::Display for StartMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Fork => "fork",
            Self::Spawn => "spawn",
        })
    }
}

/// Everything [`PythonSpawner`](crate::PythonSpawner) needs to start a worker.
///
/// Built with [`PythonSpawnerConfig::new`] and the `with_*` methods; every
/// field has a sensible default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonSpawnerConfig {
    /// The interpreter to run, a path or a name looked up on `PATH` (default `python3`).
    pub interpreter: String,
    /// The module run with `-m` (default `pypool_worker`).
    pub worker_module: String,
    /// Handler modules (`pkg.module`) or `.py` file paths the worker imports at start.
    pub handlers: Vec<String>,
    /// Folders prepended to the worker's `PYTHONPATH` (where `pypool_worker` lives, if not installed).
    pub python_path: Vec<PathBuf>,
    /// Extra environment variables for the worker.
    pub env: Vec<(String, String)>,
    /// Which of the host's environment variables the worker gets (default: all).
    pub env_policy: EnvPolicy,
    /// Module prefixes `python` programs may name; the worker refuses to
    /// build any other (`None`, the default: any module).
    pub allowed_program_modules: Option<Vec<String>>,
    /// The worker's working directory (default: the host's).
    pub working_dir: Option<PathBuf>,
    /// The worker's log level: `debug`, `info`, `warning` or `error` (default `info`).
    pub log_level: String,
    /// The largest frame either side may send (default 16 MiB).
    pub max_frame_bytes: usize,
    /// How many of the worker's last stderr lines an error message quotes (default 20).
    pub stderr_tail_lines: usize,
    /// Heavy modules the worker imports at start rather than on first use
    /// (`--preload`, e.g. `dspy`).
    pub preload: Vec<String>,
    /// How many requests each worker holds at once (`--capacity`; `None`,
    /// the default, lets the worker decide: 1 when every handler it loaded is
    /// `serial`, else 64). Its handshake announces the value in force.
    pub capacity: Option<u32>,
    /// Whether the runtime embedded in this crate is put on the worker's
    /// `PYTHONPATH`, after [`python_path`](Self::python_path) (default true:
    /// no clone and no pip step needed). Turn it off to use a
    /// `pypool_worker` installed in the interpreter's environment.
    pub embedded_runtime: bool,
    /// Whether the environment is checked once before the first worker
    /// starts (default true); see [`check_environment`](crate::check_environment).
    pub check_environment: bool,
    /// How workers are started (default [`StartMethod::Fork`] on Linux).
    pub start_method: StartMethod,
    /// With [`StartMethod::Fork`]: keep one worker forked and set up ahead of
    /// need (a *standby*, not counted as a worker), which the next spawn
    /// adopts instead of forking; a replacement then skips the fork and the
    /// guardian's set-up (default true). The standby is one more idle
    /// process of the template's tree, sharing the template's pages.
    pub standby: bool,
}

impl Default for PythonSpawnerConfig {
    fn default() -> Self {
        Self {
            interpreter: "python3".to_owned(),
            worker_module: "pypool_worker".to_owned(),
            handlers: Vec::new(),
            python_path: Vec::new(),
            env: Vec::new(),
            env_policy: EnvPolicy::Inherit,
            allowed_program_modules: None,
            working_dir: None,
            log_level: "info".to_owned(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            stderr_tail_lines: 20,
            preload: Vec::new(),
            capacity: None,
            embedded_runtime: true,
            check_environment: true,
            start_method: StartMethod::default(),
            standby: true,
        }
    }
}

impl PythonSpawnerConfig {
    /// The default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `interpreter` instead of `python3`.
    pub fn with_interpreter(mut self, interpreter: impl Into<String>) -> Self {
        self.interpreter = interpreter.into();
        self
    }

    /// Adds a handler module name or `.py` path.
    pub fn with_handler(mut self, handler: impl Into<String>) -> Self {
        self.handlers.push(handler.into());
        self
    }

    /// Prepends `dir` to the worker's `PYTHONPATH`.
    pub fn with_python_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.python_path.push(dir.into());
        self
    }

    /// Sets an environment variable for the worker.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Chooses which host environment variables the worker gets.
    pub fn with_env_policy(mut self, policy: EnvPolicy) -> Self {
        self.env_policy = policy;
        self
    }

    /// Restricts the modules `python` programs may name (see
    /// [`allowed_program_modules`](Self::allowed_program_modules)).
    pub fn with_allowed_program_modules<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_program_modules = Some(prefixes.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the worker's log level.
    pub fn with_log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = level.into();
        self
    }

    /// Sets the largest frame either side may send.
    pub fn with_max_frame_bytes(mut self, max: usize) -> Self {
        self.max_frame_bytes = max;
        self
    }

    /// Imports `module` (e.g. `dspy`) at worker start instead of on first use.
    pub fn with_preload(mut self, module: impl Into<String>) -> Self {
        self.preload.push(module.into());
        self
    }

    /// Makes each worker hold up to `capacity` requests at once (at least 1;
    /// `serial` commands still run one at a time, in order).
    pub fn with_capacity(mut self, capacity: u32) -> Self {
        self.capacity = Some(capacity.max(1));
        self
    }

    /// Whether to use the runtime embedded in this crate (default true).
    pub fn with_embedded_runtime(mut self, embedded: bool) -> Self {
        self.embedded_runtime = embedded;
        self
    }

    /// Whether to check the environment before the first worker (default true).
    pub fn with_environment_check(mut self, check: bool) -> Self {
        self.check_environment = check;
        self
    }

    /// Chooses how workers are started (fork from a template, or spawn each).
    pub fn with_start_method(mut self, method: StartMethod) -> Self {
        self.start_method = method;
        self
    }

    /// Keeps (or not) one standby forked ahead of need (see [`Self::standby`]).
    pub fn with_standby(mut self, standby: bool) -> Self {
        self.standby = standby;
        self
    }

    /// Sets the worker's working directory.
    pub fn with_working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inherit_passes_everything() {
        assert!(EnvPolicy::Inherit.passes("SECRET_TOKEN"));
    }

    #[test]
    fn clear_passes_the_base_list_and_named_extras_only() {
        let policy = EnvPolicy::clear(["OPENAI_API_KEY", "MY_APP_*"]);
        for name in [
            "PATH",
            "HOME",
            "LANG",
            "LC_ALL",
            "LC_CTYPE",
            "PYTHONPATH",
            "PYTHONHASHSEED",
            "TZ",
            "TMPDIR",
            "OPENAI_API_KEY",
            "MY_APP_MODE",
        ] {
            assert!(policy.passes(name), "{name} should pass");
        }
        for name in [
            "SECRET_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "PATHX",
            "OPENAI_API_KEY_2",
            "LD_PRELOAD",
        ] {
            assert!(!policy.passes(name), "{name} should not pass");
        }
    }
}

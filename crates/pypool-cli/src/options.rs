//! Resolving every option: flag > environment variable > `pypool.toml` >
//! default.
//!
//! clap has already merged the first two (an environment value fills a flag
//! that was not given), so each function here takes the parsed arguments and
//! the file and is pure: the precedence is unit-tested without touching the
//! process environment.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use pypool_redis::RedisUrl;

use crate::args::{CallArgs, GlobalArgs, PoolArgs, PythonArgs, ShowConfigArgs, StressArgs};
use crate::config_file::{FileConfig, LoadedFile};

/// The interpreter used when none is configured.
pub const DEFAULT_INTERPRETER: &str = "python3";
/// The handler module `stress` always loads.
pub const DEMO_HANDLERS: &str = "pypool_worker.demo";

/// Defaults of `pypool stress`.
pub mod stress_defaults {
    use std::time::Duration;

    /// Pool size.
    pub const WORKERS: usize = 8;
    /// Requests.
    pub const REQUESTS: u64 = 2000;
    /// Requests at once.
    pub const CONCURRENCY: usize = 64;
    /// Sessions.
    pub const SESSIONS: usize = 16;
    /// Request timeout (the demo commands take milliseconds).
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
}

/// Defaults of `pypool call`.
pub mod call_defaults {
    use std::time::Duration;

    /// Pool size.
    pub const WORKERS: usize = 1;
    /// Request timeout.
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
}

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// A value is out of range (zero where at least one is needed, …).
    #[error("invalid setting `{setting}`: {reason}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Settings every subcommand shares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GlobalSettings {
    /// The settings file read, if any.
    pub config_file: Option<PathBuf>,
    /// Log level or filter; `None`: `RUST_LOG`, else `warn`.
    pub log_level: Option<String>,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_addr: Option<String>,
}

/// Where Python comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PythonSettings {
    /// The interpreter.
    pub interpreter: String,
    /// Folders prepended to the workers' `PYTHONPATH`.
    pub python_path: Vec<PathBuf>,
    /// `inherit` (the default) or `clear`: which host environment variables workers get.
    pub env_policy: String,
    /// Variables passed to workers under `clear`.
    pub pass_env: Vec<String>,
    /// `fork` or `spawn`: how workers start.
    pub start_mode: String,
    /// Libraries every worker imports at start.
    pub preload: Vec<String>,
}

/// How a pool is built.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolSettings {
    /// Where Python comes from.
    pub python: PythonSettings,
    /// Pool size.
    pub workers: usize,
    /// Handler modules or files every worker imports.
    pub handlers: Vec<String>,
    /// Per-request time limit.
    #[serde(serialize_with = "as_seconds")]
    pub request_timeout: Duration,
    /// The shared store, if any (shown with its password redacted).
    #[serde(serialize_with = "as_redacted")]
    pub store: Option<RedisUrl>,
}

/// `--command` / `[stress] command`: replaces the plain commands of the workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomCommand {
    /// The command.
    pub name: String,
    /// Its keyword arguments.
    pub args: Map<String, Value>,
}

/// Everything `pypool stress` uses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StressSettings {
    /// The pool (its handlers start with [`DEMO_HANDLERS`]).
    pub pool: PoolSettings,
    /// Requests to run.
    pub requests: u64,
    /// Requests at once.
    pub concurrency: usize,
    /// Sessions.
    pub sessions: usize,
    /// Kill a worker after every N completed requests.
    pub kill_every: Option<u64>,
    /// The workload seed; `None`: drawn at start and reported.
    pub seed: Option<u64>,
    /// The plain-command replacement, if any.
    pub command: Option<CustomCommand>,
    /// JSON report.
    pub json: bool,
    /// Pool hosts sharing `pool.store` (1: this process only).
    pub hosts: usize,
    /// Internal: this process is an executing host of that `--hosts` run.
    #[serde(skip)]
    pub executor_for: Option<String>,
}

/// Everything `pypool call` uses (its arguments are parsed when it runs, so
/// invalid JSON is reported as JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallSettings {
    /// The pool.
    pub pool: PoolSettings,
    /// The command.
    pub command: String,
    /// Its arguments, as given.
    pub args: String,
    /// Pretty JSON.
    pub pretty: bool,
}

/// What `pypool show-config` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectiveSettings {
    /// Shared settings.
    pub global: GlobalSettings,
    /// As `stress` would use them.
    pub stress: StressSettings,
    /// As `call` would build its pool.
    pub call_pool: PoolSettings,
}

/// The shared settings.
pub fn resolve_global(args: &GlobalArgs, file: &LoadedFile) -> GlobalSettings {
    GlobalSettings {
        config_file: file.path.clone(),
        log_level: args
            .log_level
            .clone()
            .or_else(|| file.config.log_level.clone()),
        metrics_addr: args
            .metrics_addr
            .clone()
            .or_else(|| file.config.metrics_addr.clone()),
    }
}

/// Where Python comes from.
pub fn resolve_python(args: &PythonArgs, file: &FileConfig) -> PythonSettings {
    PythonSettings {
        interpreter: args
            .interpreter
            .clone()
            .or_else(|| file.python.clone())
            .unwrap_or_else(|| DEFAULT_INTERPRETER.to_owned()),
        python_path: non_empty(args.python_path.clone())
            .or_else(|| file.python_path.clone())
            .unwrap_or_default(),
        env_policy: args
            .env_policy
            .clone()
            .or_else(|| file.env_policy.map(|name| name.as_str().to_owned()))
            .unwrap_or_else(|| "inherit".to_owned()),
        pass_env: non_empty(args.pass_env.clone())
            .or_else(|| file.pass_env.clone())
            .unwrap_or_default(),
        start_mode: args
            .start_mode
            .clone()
            .or_else(|| file.start_mode.map(|name| name.as_str().to_owned()))
            .unwrap_or_else(|| pypool::StartMethod::default().to_string()),
        preload: non_empty(args.preload.clone())
            .or_else(|| file.preload.clone())
            .unwrap_or_default(),
    }
}

/// Defaults that differ between subcommands.
#[derive(Debug, Clone, Copy)]
struct PoolDefaults {
    workers: usize,
    request_timeout: Duration,
}

fn resolve_pool(
    args: &PoolArgs,
    file: &FileConfig,
    section_workers: Option<usize>,
    defaults: PoolDefaults,
) -> Result<PoolSettings, OptionsError> {
    let workers = args
        .workers
        .or(section_workers)
        .or(file.workers)
        .unwrap_or(defaults.workers);
    at_least_one("workers", workers as u64)?;
    let request_timeout = match args.request_timeout.or(file.request_timeout) {
        Some(seconds) => crate::args::seconds(&seconds.to_string())
            .map(Duration::from_secs_f64)
            .map_err(|reason| OptionsError::Invalid {
                setting: "request_timeout",
                reason,
            })?,
        None => defaults.request_timeout,
    };
    let store = args
        .store
        .clone()
        .or_else(|| file.store.clone())
        .map(|text| {
            RedisUrl::new(text).map_err(|error| OptionsError::Invalid {
                setting: "store",
                reason: error.to_string(),
            })
        })
        .transpose()?;
    Ok(PoolSettings {
        python: resolve_python(&args.python, file),
        workers,
        handlers: non_empty(args.handlers.clone())
            .or_else(|| file.handlers.clone())
            .unwrap_or_default(),
        request_timeout,
        store,
    })
}

/// Everything `stress` uses.
pub fn resolve_stress(
    args: &StressArgs,
    file: &FileConfig,
) -> Result<StressSettings, OptionsError> {
    let section = file.stress.clone().unwrap_or_default();
    let mut pool = resolve_pool(
        &args.pool,
        file,
        section.workers,
        PoolDefaults {
            workers: stress_defaults::WORKERS,
            request_timeout: stress_defaults::REQUEST_TIMEOUT,
        },
    )?;
    pool.handlers.retain(|handler| handler != DEMO_HANDLERS);
    pool.handlers.insert(0, DEMO_HANDLERS.to_owned());

    let requests = args
        .requests
        .or(section.requests)
        .unwrap_or(stress_defaults::REQUESTS);
    at_least_one("requests", requests)?;
    let concurrency = args
        .concurrency
        .or(section.concurrency)
        .unwrap_or(stress_defaults::CONCURRENCY);
    at_least_one("concurrency", concurrency as u64)?;
    let kill_every = args.kill_every.or(section.kill_every);
    if let Some(every) = kill_every {
        at_least_one("kill_every", every)?;
    }
    let hosts = args.hosts.or(section.hosts).unwrap_or(1);
    at_least_one("hosts", hosts as u64)?;
    if hosts > 1 && pool.store.is_none() {
        return Err(OptionsError::Invalid {
            setting: "hosts",
            reason: format!(
                "{hosts} hosts need a shared store: add --store redis://HOST:PORT (or PYPOOL_STORE)"
            ),
        });
    }
    let command = match args.command.clone().or(section.command) {
        None => None,
        Some(name) => {
            let args = match (&args.args, section.args) {
                (Some(text), _) => parse_object("args", text)?,
                (None, Some(table)) => table_to_object(table)?,
                (None, None) => Map::new(),
            };
            Some(CustomCommand { name, args })
        }
    };
    Ok(StressSettings {
        pool,
        requests,
        concurrency,
        sessions: args
            .sessions
            .or(section.sessions)
            .unwrap_or(stress_defaults::SESSIONS),
        kill_every,
        seed: args.seed.or(section.seed),
        command,
        json: args.json,
        hosts,
        executor_for: args.executor_for.clone(),
    })
}

/// Everything `call` uses.
pub fn resolve_call(args: &CallArgs, file: &FileConfig) -> Result<CallSettings, OptionsError> {
    let section = file.call.clone().unwrap_or_default();
    Ok(CallSettings {
        pool: resolve_pool(
            &args.pool,
            file,
            section.workers,
            PoolDefaults {
                workers: call_defaults::WORKERS,
                request_timeout: call_defaults::REQUEST_TIMEOUT,
            },
        )?,
        command: args.command.clone(),
        args: args.args.clone(),
        pretty: args.pretty,
    })
}

/// What `show-config` prints.
pub fn resolve_effective(
    global: &GlobalArgs,
    args: &ShowConfigArgs,
    file: &LoadedFile,
) -> Result<EffectiveSettings, OptionsError> {
    let stress = StressArgs {
        pool: args.pool.clone(),
        ..StressArgs::default()
    };
    let call = CallArgs {
        pool: args.pool.clone(),
        ..CallArgs::default()
    };
    Ok(EffectiveSettings {
        global: resolve_global(global, file),
        stress: resolve_stress(&stress, &file.config)?,
        call_pool: resolve_call(&call, &file.config)?.pool,
    })
}

/// A JSON object from `--args`.
pub fn parse_object(setting: &'static str, text: &str) -> Result<Map<String, Value>, OptionsError> {
    let invalid = |reason: String| OptionsError::Invalid { setting, reason };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(invalid(format!(
            "must be a JSON object (keyword arguments), got `{other}`"
        ))),
        Err(error) => Err(invalid(format!("not valid JSON: {error}"))),
    }
}

fn table_to_object(table: toml::Table) -> Result<Map<String, Value>, OptionsError> {
    match serde_json::to_value(table) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Ok(Map::new()),
        Err(error) => Err(OptionsError::Invalid {
            setting: "stress.args",
            reason: error.to_string(),
        }),
    }
}

fn at_least_one(setting: &'static str, value: u64) -> Result<(), OptionsError> {
    if value == 0 {
        return Err(OptionsError::Invalid {
            setting,
            reason: "must be at least 1".to_owned(),
        });
    }
    Ok(())
}

fn non_empty<T>(list: Vec<T>) -> Option<Vec<T>> {
    (!list.is_empty()).then_some(list)
}

fn as_redacted<S: serde::Serializer>(
    url: &Option<RedisUrl>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => serializer.serialize_some(&url.redacted()),
        None => serializer.serialize_none(),
    }
}

fn as_seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::path::Path;

    use super::*;
    use crate::config_file::parse;

    fn file(text: &str) -> FileConfig {
        parse(text, Path::new("/cfg")).unwrap()
    }

    #[test]
    fn the_store_comes_from_the_flag_or_the_file_and_shows_redacted() {
        let config = file(
            r#"
            store = "redis://:from-file@10.0.0.1:6379"
            [stress]
            hosts = 2
            "#,
        );
        let stress = resolve_stress(&StressArgs::default(), &config).unwrap();
        assert_eq!(stress.hosts, 2);
        let url = stress.pool.store.clone().unwrap();
        assert_eq!(url.expose_secret(), "redis://:from-file@10.0.0.1:6379");
        let shown = serde_json::to_string(&stress).unwrap();
        assert!(
            shown.contains(r#""store":"redis://:***@10.0.0.1:6379""#),
            "{shown}"
        );
        assert!(!shown.contains("from-file"), "{shown}");

        let mut args = StressArgs::default();
        args.pool.store = Some("rediss://cache:6380".to_owned());
        args.hosts = Some(3);
        let stress = resolve_stress(&args, &config).unwrap();
        assert_eq!(
            stress.pool.store.unwrap().expose_secret(),
            "rediss://cache:6380"
        );
        assert_eq!(stress.hosts, 3);

        let call = CallArgs {
            command: "ping".to_owned(),
            ..CallArgs::default()
        };
        assert!(resolve_call(&call, &config).unwrap().pool.store.is_some());
        assert!(
            resolve_call(&call, &FileConfig::default())
                .unwrap()
                .pool
                .store
                .is_none()
        );
    }

    #[test]
    fn several_hosts_need_a_store_and_store_urls_are_checked() {
        let args = StressArgs {
            hosts: Some(2),
            ..StressArgs::default()
        };
        let error = resolve_stress(&args, &FileConfig::default()).unwrap_err();
        assert!(error.to_string().contains("--store redis://"), "{error}");
        let mut args = StressArgs::default();
        args.pool.store = Some("http://:secret@h".to_owned());
        let error = resolve_stress(&args, &FileConfig::default()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("invalid setting `store`"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let stress = resolve_stress(&StressArgs::default(), &FileConfig::default()).unwrap();
        assert_eq!(stress.pool.workers, 8);
        assert_eq!(stress.requests, 2000);
        assert_eq!(stress.concurrency, 64);
        assert_eq!(stress.sessions, 16);
        assert_eq!(stress.kill_every, None);
        assert_eq!(stress.pool.handlers, [DEMO_HANDLERS]);
        assert_eq!(stress.pool.python.interpreter, "python3");
        assert_eq!(stress.pool.request_timeout, Duration::from_secs(10));
        let call = resolve_call(&CallArgs::default(), &FileConfig::default()).unwrap();
        assert_eq!(call.pool.workers, 1);
        assert!(call.pool.handlers.is_empty());
        assert_eq!(call.pool.request_timeout, Duration::from_secs(60));
    }

    #[test]
    fn the_file_beats_defaults_and_sections_beat_the_top_level() {
        let config = file(
            r#"
            workers = 3
            python = "python3.11"
            python_path = ["py"]
            handlers = ["h.py"]
            request_timeout = 4
            [stress]
            workers = 5
            requests = 10
            kill_every = 7
            command = "demo.primes"
            args = { limit = 100 }
            "#,
        );
        let stress = resolve_stress(&StressArgs::default(), &config).unwrap();
        assert_eq!(stress.pool.workers, 5);
        assert_eq!(stress.requests, 10);
        assert_eq!(stress.kill_every, Some(7));
        assert_eq!(stress.pool.handlers, [DEMO_HANDLERS, "/cfg/h.py"]);
        assert_eq!(stress.pool.python.interpreter, "python3.11");
        assert_eq!(stress.pool.python.python_path, [PathBuf::from("/cfg/py")]);
        assert_eq!(stress.pool.request_timeout, Duration::from_secs(4));
        let command = stress.command.unwrap();
        assert_eq!(command.name, "demo.primes");
        assert_eq!(command.args["limit"], 100);
        // `call` has no section: the top level applies.
        let call = resolve_call(&CallArgs::default(), &config).unwrap();
        assert_eq!(call.pool.workers, 3);
    }

    #[test]
    fn flags_and_environment_beat_the_file() {
        let config = file(
            r#"
            python = "python3.11"
            handlers = ["h.py"]
            [stress]
            workers = 5
            requests = 10
            args = { limit = 100 }
            command = "demo.primes"
            "#,
        );
        let args = StressArgs {
            pool: PoolArgs {
                python: PythonArgs {
                    interpreter: Some("/opt/python".into()),
                    python_path: vec!["/x".into()],
                    ..PythonArgs::default()
                },
                workers: Some(2),
                handlers: vec!["other".into(), DEMO_HANDLERS.into()],
                request_timeout: Some(0.5),
                store: None,
            },
            requests: Some(99),
            args: Some(r#"{"limit": 7}"#.into()),
            ..StressArgs::default()
        };
        let stress = resolve_stress(&args, &config).unwrap();
        assert_eq!(stress.pool.workers, 2);
        assert_eq!(stress.requests, 99);
        assert_eq!(stress.pool.python.interpreter, "/opt/python");
        assert_eq!(stress.pool.python.python_path, [PathBuf::from("/x")]);
        // The demo module comes first, once.
        assert_eq!(stress.pool.handlers, [DEMO_HANDLERS, "other"]);
        assert_eq!(stress.pool.request_timeout, Duration::from_millis(500));
        // The command from the file, its arguments from the flag.
        let command = stress.command.unwrap();
        assert_eq!(command.name, "demo.primes");
        assert_eq!(command.args["limit"], 7);
    }

    #[test]
    fn the_start_mode_and_preloads_come_from_flags_over_the_file_and_reach_the_spawner() {
        let defaults = resolve_stress(&StressArgs::default(), &FileConfig::default()).unwrap();
        assert_eq!(
            defaults.pool.python.start_mode,
            pypool::StartMethod::default().to_string()
        );
        assert!(defaults.pool.python.preload.is_empty());
        let config = file(
            r#"
            start_mode = "spawn"
            preload = ["dspy"]
            "#,
        );
        let from_file = resolve_stress(&StressArgs::default(), &config).unwrap();
        let spawner = crate::pool_setup::spawner_config(&from_file.pool.python);
        assert_eq!(spawner.start_method, pypool::StartMethod::Spawn);
        assert_eq!(spawner.preload, ["dspy"]);
        let args = StressArgs {
            pool: PoolArgs {
                python: PythonArgs {
                    start_mode: Some("fork".into()),
                    ..PythonArgs::default()
                },
                ..PoolArgs::default()
            },
            ..StressArgs::default()
        };
        let from_flags = resolve_stress(&args, &config).unwrap();
        let spawner = crate::pool_setup::spawner_config(&from_flags.pool.python);
        assert_eq!(spawner.start_method, pypool::StartMethod::Fork);
        assert!(
            parse("start_mode = \"vfork\"", Path::new("/cfg")).is_err(),
            "an unknown start mode in the file is an error"
        );
    }

    #[test]
    fn the_environment_policy_defaults_to_inherit_and_comes_from_flags_or_the_file() {
        let stress = resolve_stress(&StressArgs::default(), &FileConfig::default()).unwrap();
        assert_eq!(stress.pool.python.env_policy, "inherit");
        assert_eq!(
            crate::pool_setup::env_policy(&stress.pool.python),
            pypool::EnvPolicy::Inherit
        );
        let config = file(
            r#"
            env_policy = "clear"
            pass_env = ["OPENAI_API_KEY"]
            "#,
        );
        let stress = resolve_stress(&StressArgs::default(), &config).unwrap();
        assert_eq!(
            crate::pool_setup::env_policy(&stress.pool.python),
            pypool::EnvPolicy::clear(["OPENAI_API_KEY"])
        );
        let mut args = StressArgs::default();
        args.pool.python.env_policy = Some("inherit".into());
        args.pool.python.pass_env = vec!["OTHER".into()];
        let stress = resolve_stress(&args, &config).unwrap();
        assert_eq!(stress.pool.python.env_policy, "inherit");
        assert_eq!(stress.pool.python.pass_env, ["OTHER"]);
        assert!(
            crate::config_file::parse(r#"env_policy = "clera""#, Path::new("/cfg")).is_err(),
            "a misspelt policy is an error"
        );
    }

    #[test]
    fn global_settings_prefer_flags() {
        let loaded = LoadedFile {
            path: Some("/cfg/pypool.toml".into()),
            config: file("log_level = \"info\"\nmetrics_addr = \"0.0.0.0:1\"\n"),
        };
        let none = resolve_global(&GlobalArgs::default(), &loaded);
        assert_eq!(none.log_level.as_deref(), Some("info"));
        assert_eq!(none.metrics_addr.as_deref(), Some("0.0.0.0:1"));
        let flags = GlobalArgs {
            log_level: Some("debug".into()),
            metrics_addr: Some("127.0.0.1:2".into()),
            config: None,
        };
        let given = resolve_global(&flags, &loaded);
        assert_eq!(given.log_level.as_deref(), Some("debug"));
        assert_eq!(given.metrics_addr.as_deref(), Some("127.0.0.1:2"));
        assert_eq!(given.config_file, Some(PathBuf::from("/cfg/pypool.toml")));
    }

    #[test]
    fn out_of_range_file_values_are_errors_naming_the_setting() {
        let error =
            resolve_stress(&StressArgs::default(), &file("[stress]\nworkers = 0\n")).unwrap_err();
        assert!(error.to_string().contains("`workers`"), "{error}");
        let error =
            resolve_stress(&StressArgs::default(), &file("request_timeout = -1\n")).unwrap_err();
        assert!(error.to_string().contains("`request_timeout`"), "{error}");
        let error = resolve_stress(&StressArgs::default(), &file("[stress]\nconcurrency = 0\n"))
            .unwrap_err();
        assert!(error.to_string().contains("`concurrency`"), "{error}");
    }

    #[test]
    fn command_args_must_be_a_json_object() {
        let args = StressArgs {
            command: Some("x".into()),
            args: Some("[1]".into()),
            ..StressArgs::default()
        };
        let error = resolve_stress(&args, &FileConfig::default()).unwrap_err();
        assert!(error.to_string().contains("JSON object"), "{error}");
        let args = StressArgs {
            command: Some("x".into()),
            args: Some("{nope".into()),
            ..StressArgs::default()
        };
        assert!(resolve_stress(&args, &FileConfig::default()).is_err());
    }
}

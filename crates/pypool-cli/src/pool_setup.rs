//! From resolved settings to a [`PoolBuilder`] for real Python workers.

use pypool::{EnvPolicy, Pool, PoolBuilder, PythonSpawnerConfig, Timeouts};

use crate::options::{PoolSettings, PythonSettings};

/// A builder for a pool of real Python workers named `name`, eager, with
/// the settings' interpreter, `PYTHONPATH`, handlers, size and request timeout.
pub fn builder(name: &str, settings: &PoolSettings, worker_log_level: &str) -> PoolBuilder {
    let mut builder = Pool::builder()
        .name(name)
        .size(settings.workers)
        .python(spawner_config(&settings.python))
        .log_level(worker_log_level)
        .timeouts(Timeouts {
            request: settings.request_timeout,
            ..Timeouts::default()
        });
    for handler in &settings.handlers {
        builder = builder.handler(handler.clone());
    }
    builder
}

/// The Python side of the configuration (also what `doctor` checks).
pub fn spawner_config(python: &PythonSettings) -> PythonSpawnerConfig {
    let mut config = PythonSpawnerConfig::default().with_interpreter(python.interpreter.clone());
    for dir in &python.python_path {
        config = config.with_python_path(dir.clone());
    }
    config.with_env_policy(env_policy(python))
}

/// The environment policy the settings name (`clear`, else inherit).
pub fn env_policy(python: &PythonSettings) -> EnvPolicy {
    if python.env_policy == "clear" {
        EnvPolicy::clear(python.pass_env.iter().cloned())
    } else {
        EnvPolicy::Inherit
    }
}

/// The Python worker's log level for a host log level or filter: the
/// workers log what the host would show.
pub fn worker_log_level(host: Option<&str>) -> &'static str {
    let host = host.unwrap_or("warn").to_ascii_lowercase();
    // A filter such as `pypool=debug,info`: take its most verbose level.
    let mentions = |level: &str| host.split([',', '=']).any(|part| part.trim() == level);
    if mentions("trace") || mentions("debug") {
        "debug"
    } else if mentions("info") {
        "info"
    } else if mentions("error") && !mentions("warn") {
        "error"
    } else {
        "warning"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_log_levels_follow_the_host() {
        assert_eq!(worker_log_level(None), "warning");
        assert_eq!(worker_log_level(Some("debug")), "debug");
        assert_eq!(worker_log_level(Some("pypool=trace,warn")), "debug");
        assert_eq!(worker_log_level(Some("INFO")), "info");
        assert_eq!(worker_log_level(Some("error")), "error");
        assert_eq!(worker_log_level(Some("off")), "warning");
    }
}

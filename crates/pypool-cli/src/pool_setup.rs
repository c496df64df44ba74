//! From resolved settings to a [`PoolBuilder`] for real Python workers.

use std::sync::Arc;

use anyhow::Context;
use pypool::{EnvPolicy, Pool, PoolBuilder, PythonSpawnerConfig, StartMethod, Timeouts};
use pypool_redis::{RedisConfig, RedisStores, RedisUrl};

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

/// This host's id in a shared store: the machine's host name and this
/// process's id (unique among hosts sharing a Redis, and new after a
/// restart, so a restarted host never inherits its old workers' bindings).
pub fn host_id() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let name = if name.is_empty() {
        "host".to_owned()
    } else {
        name
    };
    format!("{name}-{}", std::process::id())
}

/// With a store URL: connects to Redis (pool name `pool`, host `host`) and
/// gives `builder` the shared affinity, program and session-data stores.
/// Without one: `builder` unchanged (in-memory stores).
pub async fn with_store(
    builder: PoolBuilder,
    store: Option<&RedisUrl>,
    pool: &str,
    host: &str,
) -> anyhow::Result<(PoolBuilder, Option<RedisStores>)> {
    let Some(url) = store else {
        return Ok((builder, None));
    };
    let config = RedisConfig::new(url.clone(), pool, host)?;
    let stores = RedisStores::connect(&config, Arc::new(pypool_redis::SystemClock))
        .await
        .with_context(|| format!("cannot use the store {url}"))?;
    let builder = builder
        .affinity_store(stores.affinity.clone())
        .program_store(stores.programs.clone())
        .session_data_store(stores.session_data.clone());
    Ok((builder, Some(stores)))
}

/// The Python side of the configuration (also what `doctor` checks).
pub fn spawner_config(python: &PythonSettings) -> PythonSpawnerConfig {
    let mut config = PythonSpawnerConfig::default().with_interpreter(python.interpreter.clone());
    for dir in &python.python_path {
        config = config.with_python_path(dir.clone());
    }
    for module in &python.preload {
        config = config.with_preload(module.clone());
    }
    if let Ok(method) = python.start_mode.parse::<StartMethod>() {
        config = config.with_start_method(method);
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

//! How to reach Redis and how the stores use it.

use std::time::Duration;

use pypool_affinity::validate_id;

use crate::{RedisStoreError, RedisUrl};

/// The settings of the Redis stores.
///
/// ```
/// use std::time::Duration;
/// use pypool_redis::RedisConfig;
///
/// let config = RedisConfig::new("redis://127.0.0.1:6379".parse()?, "checkout-pool", "host-a")?
///     .with_timeout(Duration::from_millis(500));
/// assert_eq!(config.prefix(), "pypool:checkout-pool");
/// # Ok::<(), pypool_redis::RedisStoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub(crate) url: RedisUrl,
    pub(crate) prefix: String,
    pub(crate) host: String,
    pub(crate) timeout: Duration,
    pub(crate) binding_ttl: Duration,
    pub(crate) heartbeat_ttl: Duration,
    pub(crate) expiry_slack: Duration,
    pub(crate) refresh_resolution: Duration,
}

impl RedisConfig {
    /// The default [`timeout`](Self::with_timeout): 1 second.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
    /// The default affinity binding idle time-to-live: 5 minutes (as in memory).
    pub const DEFAULT_BINDING_TTL: Duration = Duration::from_secs(5 * 60);
    /// The default host heartbeat time-to-live: 3 seconds (refreshed every third of it).
    pub const DEFAULT_HEARTBEAT_TTL: Duration = Duration::from_secs(3);
    /// The default expiry slack: 10 seconds.
    pub const DEFAULT_EXPIRY_SLACK: Duration = Duration::from_secs(10);
    /// The default refresh resolution: 1 second.
    pub const DEFAULT_REFRESH_RESOLUTION: Duration = Duration::from_secs(1);

    /// Stores at `url` under the key prefix `pypool:{pool}`, for the host
    /// `host` (unique among the hosts sharing the Redis; the CLI uses
    /// hostname and pid). `pool` and `host` follow the id rules.
    pub fn new(url: RedisUrl, pool: &str, host: &str) -> Result<Self, RedisStoreError> {
        validate_id("pool name", pool).map_err(|_| RedisStoreError::InvalidPrefix {
            prefix: pool.to_owned(),
        })?;
        validate_id("host id", host).map_err(|_| RedisStoreError::InvalidHost {
            host: host.to_owned(),
        })?;
        Ok(Self {
            url,
            prefix: format!("pypool:{pool}"),
            host: host.to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
            binding_ttl: Self::DEFAULT_BINDING_TTL,
            heartbeat_ttl: Self::DEFAULT_HEARTBEAT_TTL,
            expiry_slack: Self::DEFAULT_EXPIRY_SLACK,
            refresh_resolution: Self::DEFAULT_REFRESH_RESOLUTION,
        })
    }

    /// The bound on connecting and on each store operation: past it the
    /// operation fails with `StoreUnavailable` (never a hang).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The idle time-to-live of affinity bindings.
    pub fn with_binding_ttl(mut self, ttl: Duration) -> Self {
        self.binding_ttl = ttl;
        self
    }

    /// How long a host's heartbeat key lives without a refresh; bindings to
    /// a host whose heartbeat is gone read as absent.
    pub fn with_heartbeat_ttl(mut self, ttl: Duration) -> Self {
        self.heartbeat_ttl = ttl;
        self
    }

    /// How long past a binding's logical expiry Redis keeps its keys (the
    /// logical expiry uses the store's clock; the Redis `PEXPIRE` of
    /// time-to-live + slack is the garbage collector, tolerant of clock skew
    /// between hosts).
    pub fn with_expiry_slack(mut self, slack: Duration) -> Self {
        self.expiry_slack = slack;
        self
    }

    /// How stale a binding's last use in Redis may be. With a non-zero
    /// resolution the host keeps a local copy of each binding Redis
    /// confirmed (coherent with the other hosts through Redis's
    /// invalidation pushes): a lookup that finds it costs no round trip, a
    /// `bind` to its worker neither (the pool binds after every call), and
    /// once its last use in Redis is older than the resolution a refresh is
    /// sent without waiting for it. Zero: every lookup and bind goes to
    /// Redis, and last use is exact (the model tests).
    pub fn with_refresh_resolution(mut self, resolution: Duration) -> Self {
        self.refresh_resolution = resolution;
        self
    }

    /// The key prefix, `pypool:{pool}`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// This host's id.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The URL (its `Display` and `Debug` redact the password).
    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// The operation timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

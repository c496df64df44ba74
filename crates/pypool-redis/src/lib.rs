//! Redis-backed stores for pypool: several pool hosts, one Redis.
//!
//! A service that outgrows one machine runs several pypool hosts behind a
//! load balancer. This crate implements the three store traits on Redis so
//! the hosts share their state:
//!
//! - [`RedisProgramStore`] ([`pypool_store::ProgramStore`]): a program
//!   created through host A runs on host B;
//! - [`RedisSessionDataStore`] ([`pypool_store::SessionDataStore`]): a
//!   session's data outlives the host that served it;
//! - [`RedisAffinityStore`] ([`pypool_affinity::AffinityStore`]): bindings
//!   record host and worker, expire in Redis, and a binding to a host whose
//!   heartbeat key is gone reads as absent
//!   ([`RedisAffinityStore::locate`]).
//!
//! [`RedisStores::connect`] opens one self-healing connection (the `redis`
//! crate's `ConnectionManager`: multiplexed, pipelined, reconnecting) and
//! builds all three on it. Every operation is bounded by the configured
//! timeout: when Redis is away, operations fail with
//! [`pypool_store::StoreError::StoreUnavailable`] naming the operation
//! (never a hang), and work again as soon as Redis is back, without a
//! restart. Program definitions and affinity bindings this host has read
//! are kept as local copies, coherent through Redis's client-side caching
//! (RESP3 invalidation pushes; Redis 6 or later): a session call on its
//! bound worker costs no round trip. URLs are `redis://` or `rediss://` (TLS, rustls), with AUTH in
//! the user info; the password never reaches a log ([`RedisUrl`]).
//!
//! This is the only pypool crate that knows Redis. It must not know
//! workers, processes, the wire protocol or the pool: it implements the
//! store traits and nothing else. The key layout is documented in
//! ARCHITECTURE.md.
//!
//! ```no_run
//! use std::sync::Arc;
//! use pypool_clock::SystemClock;
//! use pypool_redis::{RedisConfig, RedisStores};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RedisConfig::new("redis://127.0.0.1:6379".parse()?, "default", "host-a")?;
//! let stores = RedisStores::connect(&config, Arc::new(SystemClock)).await?;
//! let pool = pypool::Pool::builder()
//!     .affinity_store(stores.affinity.clone())
//!     .program_store(stores.programs.clone())
//!     .session_data_store(stores.session_data.clone());
//! # drop(pool); Ok(()) }
//! ```

mod affinity;
mod coherence;
mod config;
mod connection;
mod error;
mod heartbeat;
mod keys;
mod programs;
mod session_data;
mod url;

use std::sync::Arc;

use pypool_store::SessionDataLimits;

pub use affinity::{HostBinding, RedisAffinityStore};
pub use config::RedisConfig;
pub use error::RedisStoreError;
pub use programs::RedisProgramStore;
pub use session_data::RedisSessionDataStore;
pub use url::RedisUrl;

/// The clock types [`RedisStores::connect`] takes, for callers that do not
/// depend on `pypool-clock` themselves.
pub use pypool_clock::{SharedClock as StoreClock, SystemClock};

/// The three Redis stores of one host, sharing one connection.
#[derive(Debug, Clone)]
pub struct RedisStores {
    /// Session → (host, worker) bindings.
    pub affinity: RedisAffinityStore,
    /// Program definitions.
    pub programs: RedisProgramStore,
    /// Per-session data.
    pub session_data: RedisSessionDataStore,
}

impl RedisStores {
    /// Connects (a `PING` must answer within the timeout), starts this
    /// host's heartbeat and builds the stores with the default
    /// [`SessionDataLimits`]. Must run inside a tokio runtime.
    pub async fn connect(config: &RedisConfig, clock: StoreClock) -> Result<Self, RedisStoreError> {
        Self::connect_with_limits(config, clock, SessionDataLimits::default()).await
    }

    /// [`connect`](Self::connect) with the given session-data limits.
    pub async fn connect_with_limits(
        config: &RedisConfig,
        clock: StoreClock,
        limits: SessionDataLimits,
    ) -> Result<Self, RedisStoreError> {
        let redis = connection::Redis::connect(config).await?;
        let heartbeat = heartbeat::Heartbeat::start(
            redis.clone(),
            keys::heartbeat(&config.prefix, &config.host),
            config.heartbeat_ttl,
        )
        .await;
        let tracking = Arc::new(redis.start_tracking());
        Ok(Self {
            affinity: RedisAffinityStore::new(
                redis.clone(),
                config.prefix.clone(),
                config.host.clone(),
                config.binding_ttl,
                config.expiry_slack,
                config.refresh_resolution,
                clock,
                Arc::new(heartbeat),
                Arc::clone(&tracking),
            ),
            programs: RedisProgramStore::new(redis.clone(), config.prefix.clone(), tracking),
            session_data: RedisSessionDataStore::new(redis, config.prefix.clone(), limits),
        })
    }
}

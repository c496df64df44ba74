//! The affinity store on Redis, with host liveness.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use pypool_affinity::{AffinityStats, AffinityStore, SessionId, WorkerId};
use pypool_clock::SharedClock;
use pypool_store::StoreError;
use redis::Script;

use crate::connection::{Redis, Tracking};
use crate::heartbeat::Heartbeat;

/// The arguments every script takes first: ARGV[1] prefix, ARGV[2] host,
/// ARGV[3] now (ms), ARGV[4] time-to-live (ms), ARGV[5] Redis expiry (ms).
///
/// A binding's last use is its score in its host's sorted set (`t` in the
/// binding's hash is when it was bound, the fallback once the set is
/// gone): a lookup leaves the binding's hash — the key other hosts'
/// copies track — untouched, except to renew its Redis expiry when less
/// than half of it is left.
const PREAMBLE: &str = r"
local p, host, now, ttl, keep = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local function binding_key(s) return p .. ':aff:s:' .. s end
local function host_key(h) return p .. ':aff:h:' .. h end
local function expired(t) return now - tonumber(t) >= ttl end
local function last_use(b, s)
    local score = redis.call('ZSCORE', host_key(b[1]), b[2] .. '|' .. s)
    if score then return score end
    return b[3]
end
";

fn script(body: &str) -> Script {
    Script::new(&format!("{PREAMBLE}{body}"))
}

/// ARGV[6] session. Returns {0} miss, {1, worker} hit (refreshed), {2} expired (dropped).
static LOOKUP: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
        local s = ARGV[6]
        local key = binding_key(s)
        local b = redis.call('HMGET', key, 'h', 'w', 't')
        if not b[1] or b[1] ~= host then return {0} end
        local member = b[2] .. '|' .. s
        if expired(last_use(b, s)) then
            redis.call('DEL', key)
            redis.call('ZREM', host_key(host), member)
            return {2}
        end
        if redis.call('PTTL', key) < tonumber(keep) / 2 then
            redis.call('PEXPIRE', key, keep)
        end
        redis.call('ZADD', host_key(host), now, member)
        redis.call('PEXPIRE', host_key(host), keep)
        return {1, b[2]}
        ",
    )
});

/// ARGV[6] session, ARGV[7] worker. Returns 1 when it replaced an expired
/// binding of this host, else 0.
static BIND: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
        local s, w = ARGV[6], ARGV[7]
        local key = binding_key(s)
        local b = redis.call('HMGET', key, 'h', 'w', 't')
        local replaced_expired = 0
        if b[1] then
            if b[1] == host and expired(last_use(b, s)) then replaced_expired = 1 end
            redis.call('ZREM', host_key(b[1]), b[2] .. '|' .. s)
        end
        redis.call('HSET', key, 'h', host, 'w', w, 't', now)
        redis.call('PEXPIRE', key, keep)
        redis.call('ZADD', host_key(host), now, w .. '|' .. s)
        redis.call('PEXPIRE', host_key(host), keep)
        return replaced_expired
        ",
    )
});

/// ARGV[6] worker. Returns {live, expired} bindings of this host's worker removed.
static UNBIND_WORKER: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
        local w = ARGV[6]
        local prefix = w .. '|'
        local live, dead = 0, 0
        local members = redis.call('ZRANGE', host_key(host), 0, -1)
        for _, m in ipairs(members) do
            if string.sub(m, 1, #prefix) == prefix then
                local key = binding_key(string.sub(m, #prefix + 1))
                local b = redis.call('HMGET', key, 'h', 'w', 't')
                local dead_binding = b[1] == host and b[2] == w and expired(last_use(b, string.sub(m, #prefix + 1)))
                redis.call('ZREM', host_key(host), m)
                if b[1] == host and b[2] == w then
                    redis.call('DEL', key)
                    if dead_binding then dead = dead + 1 else live = live + 1 end
                elseif not b[1] then
                    dead = dead + 1
                end
            end
        end
        return {live, dead}
        ",
    )
});

/// ARGV[6] session. Returns 0 none, 1 live binding removed, 2 expired binding removed.
static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
        local s = ARGV[6]
        local key = binding_key(s)
        local b = redis.call('HMGET', key, 'h', 'w', 't')
        if not b[1] then return 0 end
        local dead = expired(last_use(b, s))
        redis.call('DEL', key)
        redis.call('ZREM', host_key(b[1]), b[2] .. '|' .. s)
        if dead then return 2 end
        return 1
        ",
    )
});

/// Drops this host's expired bindings; returns how many.
static SWEEP: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
        local old = redis.call('ZRANGEBYSCORE', host_key(host), '-inf', now - ttl)
        for _, m in ipairs(old) do
            local bar = string.find(m, '|', 1, true)
            local w, s = string.sub(m, 1, bar - 1), string.sub(m, bar + 1)
            local key = binding_key(s)
            local b = redis.call('HMGET', key, 'h', 'w', 't')
            -- The score said expired; a bind since moved or renewed the binding.
            if b[1] == host and b[2] == w and expired(last_use(b, s)) then redis.call('DEL', key) end
            redis.call('ZREM', host_key(host), m)
        end
        return #old
        ",
    )
});

/// ARGV[6] session. Returns false, or {host, worker} when the binding is
/// live and its host's heartbeat exists.
static LOCATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
        local b = redis.call('HMGET', binding_key(ARGV[6]), 'h', 'w', 't')
        if not b[1] or expired(last_use(b, ARGV[6])) then return nil end
        if redis.call('EXISTS', p .. ':host:' .. b[1]) == 0 then return nil end
        return {b[1], b[2]}
        ",
    )
});

/// Where a session is bound, across hosts: see [`RedisAffinityStore::locate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBinding {
    /// The host whose pool holds the worker.
    pub host: String,
    /// The worker, in that host's pool numbering.
    pub worker: WorkerId,
}

/// An [`AffinityStore`] in Redis, shared by every host using the same
/// prefix, each host seeing its own bindings.
///
/// A binding records the host *and* the worker (worker ids are only unique
/// within one pool). For the pool on this host, a binding made by another
/// host reads as absent (its worker is not in this pool), so the session
/// rebinds here on its next call. A router in front of several hosts asks
/// [`locate`](Self::locate), which treats a binding to a host whose
/// heartbeat key has expired as absent too.
///
/// Idle expiry uses the injected clock (as wall-clock milliseconds, so
/// hosts agree); Redis's own `PEXPIRE` of time-to-live + slack drops the
/// keys of sessions that never come back. Every operation is one Lua script
/// (atomic).
///
/// With a non-zero refresh resolution, the host keeps a local copy of each
/// binding Redis confirmed, coherent through Redis's client-side caching
/// (a change by another host drops it as soon as Redis's invalidation
/// arrives; see the module `coherence`): a lookup that finds the copy costs
/// no round trip. Its last use reaches Redis at most the resolution late,
/// from a refresh sent without waiting for it; a copy older than the
/// time-to-live is never served. While Redis is away, lookups miss and writes are skipped (the
/// trait is infallible by design: a binding is only a preference), with a
/// warning in the log; [`try_lookup`](Self::try_lookup) reports the error.
#[derive(Debug, Clone)]
pub struct RedisAffinityStore {
    redis: Redis,
    prefix: String,
    host: String,
    ttl: Duration,
    keep: Duration,
    clock: SharedClock,
    epoch: (Instant, u64),
    stats: Arc<Counters>,
    heartbeat: Arc<Heartbeat>,
    refresh_resolution: Duration,
    _tracking: Arc<Tracking>,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    expired: AtomicU64,
    unbound: AtomicU64,
}

impl RedisAffinityStore {
    #[allow(clippy::too_many_arguments, reason = "crate-internal constructor")]
    pub(crate) fn new(
        redis: Redis,
        prefix: String,
        host: String,
        ttl: Duration,
        slack: Duration,
        refresh_resolution: Duration,
        clock: SharedClock,
        heartbeat: Arc<Heartbeat>,
        tracking: Arc<Tracking>,
    ) -> Self {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        Self {
            redis,
            prefix,
            host,
            ttl,
            keep: ttl.saturating_add(slack),
            epoch: (clock.now(), unix_ms),
            clock,
            stats: Arc::default(),
            heartbeat,
            refresh_resolution,
            _tracking: tracking,
        }
    }

    /// This host's id.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The idle time-to-live of a binding.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The hit, miss, expiry and unbind counters of this host's store
    /// since it was created (the same counters as the in-memory store).
    pub fn stats(&self) -> AffinityStats {
        AffinityStats {
            hits: self.stats.hits.load(Ordering::Relaxed),
            misses: self.stats.misses.load(Ordering::Relaxed),
            expired: self.stats.expired.load(Ordering::Relaxed),
            unbound: self.stats.unbound.load(Ordering::Relaxed),
        }
    }

    /// Stops this host's heartbeat (as if the host had died): after the
    /// heartbeat time-to-live, [`locate`](Self::locate) on any host treats
    /// its bindings as absent.
    pub fn stop_heartbeat(&self) {
        self.heartbeat.stop();
    }

    /// Stops the heartbeat and deletes its key, so other hosts see this
    /// host's bindings as absent at once (a graceful shutdown).
    pub async fn leave(&self) -> Result<(), StoreError> {
        self.heartbeat.stop();
        let key = crate::keys::heartbeat(&self.prefix, &self.host);
        self.redis
            .run("heartbeat delete", |mut connection| async move {
                redis::cmd("DEL")
                    .arg(&key)
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await
    }

    /// Whether local copies of bindings are kept (a zero resolution: every
    /// operation goes to Redis, and last use is exact).
    fn copies(&self) -> bool {
        !self.refresh_resolution.is_zero()
    }

    /// The copy of `session`'s binding when it may be served: the worker,
    /// and whether its last use in Redis is older than the resolution.
    fn copy(&self, session: &SessionId) -> Option<(WorkerId, bool)> {
        if !self.copies() {
            return None;
        }
        let (worker, at) = self.redis.coherence().binding(session)?;
        let age = self.clock.now().saturating_duration_since(at);
        (age < self.ttl).then_some((worker, age >= self.refresh_resolution))
    }

    /// Sends the lookup script (which refreshes a live binding) without
    /// waiting for it; a binding Redis no longer has drops the copy.
    fn refresh_in_background(&self, session: &SessionId, worker: WorkerId) {
        self.redis
            .coherence()
            .touch_binding(session, worker, self.clock.now());
        let store = self.clone();
        let session = session.clone();
        tokio::spawn(async move {
            let reply = store.lookup_in_redis(&session).await;
            if !matches!(reply, Ok(Reply::Hit(hit)) if hit == worker) {
                store.redis.coherence().forget_binding(&session);
            }
        });
    }

    /// The lookup script's answer, without touching the counters.
    async fn lookup_in_redis(&self, session: &SessionId) -> Result<Reply, StoreError> {
        let mut invocation = self.invocation(&LOOKUP);
        invocation.arg(session.as_str());
        let reply: Vec<String> = self.call("affinity lookup", invocation).await?;
        Ok(match reply.as_slice() {
            [hit, worker] if hit == "1" => {
                Reply::Hit(worker.parse().map_err(|_| corrupt("affinity lookup"))?)
            }
            [expired] if expired == "2" => Reply::Expired,
            _ => Reply::Miss,
        })
    }

    /// The clock as wall-clock milliseconds.
    fn now_ms(&self) -> u64 {
        let elapsed = self.clock.now().saturating_duration_since(self.epoch.0);
        self.epoch
            .1
            .saturating_add(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
    }

    fn invocation<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(&self.host)
            .arg(self.now_ms())
            .arg(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX))
            .arg(
                u64::try_from(self.keep.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            );
        invocation
    }

    async fn call<T: redis::FromRedisValue + Send + 'static>(
        &self,
        operation: &'static str,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.redis
            .run(operation, |mut connection| async move {
                invocation.invoke_async(&mut connection).await
            })
            .await
    }

    /// [`lookup`](AffinityStore::lookup), reporting why Redis could not answer.
    pub async fn try_lookup(&self, session: &SessionId) -> Result<Option<WorkerId>, StoreError> {
        let counters = &self.stats;
        if let Some((worker, stale)) = self.copy(session) {
            if stale {
                self.refresh_in_background(session, worker);
            }
            counters.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(worker));
        }
        let generation = self.redis.coherence().generation();
        let at = self.clock.now();
        match self.lookup_in_redis(session).await? {
            Reply::Hit(worker) => {
                counters.hits.fetch_add(1, Ordering::Relaxed);
                if self.copies() {
                    self.redis
                        .coherence()
                        .keep_binding(generation, session, worker, at);
                }
                Ok(Some(worker))
            }
            Reply::Expired => {
                counters.expired.fetch_add(1, Ordering::Relaxed);
                counters.misses.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
            Reply::Miss => {
                counters.misses.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    /// Where `session` is bound, across all hosts: `None` when it is
    /// unbound, its binding expired, or its host's heartbeat is gone (the
    /// host died: the session should go to any host, which rebinds it).
    pub async fn locate(&self, session: &SessionId) -> Result<Option<HostBinding>, StoreError> {
        let mut invocation = self.invocation(&LOCATE);
        invocation.arg(session.as_str());
        let reply: Option<(String, String)> = self.call("affinity locate", invocation).await?;
        reply
            .map(|(host, worker)| {
                Ok(HostBinding {
                    host,
                    worker: worker.parse().map_err(|_| corrupt("affinity locate"))?,
                })
            })
            .transpose()
    }
}

/// What the lookup script found.
enum Reply {
    Hit(WorkerId),
    Expired,
    Miss,
}

fn corrupt(operation: &'static str) -> StoreError {
    StoreError::StoreUnavailable {
        operation,
        reason: "a stored binding is not in pypool's layout".to_owned(),
    }
}

fn warn<T>(result: Result<T, StoreError>, fallback: T) -> T {
    result.unwrap_or_else(|error| {
        tracing::warn!(%error, "affinity store unavailable; treating as a miss");
        fallback
    })
}

#[async_trait]
impl AffinityStore for RedisAffinityStore {
    async fn lookup(&self, session: &SessionId) -> Option<WorkerId> {
        warn(self.try_lookup(session).await, None)
    }

    async fn bind(&self, session: &SessionId, worker: WorkerId) {
        // The pool binds after every call; to the worker of the copy whose
        // last use reached Redis less than the resolution ago, that costs
        // no round trip. Last use is then off by less than the resolution.
        if let Some((copy, stale)) = self.copy(session) {
            if copy == worker && !stale {
                return;
            }
        }
        let coherence = self.redis.coherence();
        coherence.forget_binding(session);
        let generation = coherence.generation();
        let at = self.clock.now();
        let mut invocation = self.invocation(&BIND);
        invocation.arg(session.as_str()).arg(worker.to_string());
        match self.call::<i64>("affinity bind", invocation).await {
            Ok(replaced_expired) => {
                if replaced_expired == 1 {
                    self.stats.expired.fetch_add(1, Ordering::Relaxed);
                }
                if self.copies() {
                    coherence.keep_binding(generation, session, worker, at);
                }
            }
            Err(error) => warn::<()>(Err(error), ()),
        }
    }

    async fn unbind_worker(&self, worker: WorkerId) -> usize {
        self.redis.coherence().forget_worker(worker);
        let mut invocation = self.invocation(&UNBIND_WORKER);
        invocation.arg(worker.to_string());
        let (live, expired): (u64, u64) = warn(
            self.call("affinity unbind_worker", invocation).await,
            (0, 0),
        );
        // A lookup that ran meanwhile may have copied a binding now gone.
        self.redis.coherence().forget_worker(worker);
        self.stats.unbound.fetch_add(live, Ordering::Relaxed);
        self.stats.expired.fetch_add(expired, Ordering::Relaxed);
        usize::try_from(live).unwrap_or(usize::MAX)
    }

    async fn remove_session(&self, session: &SessionId) -> bool {
        self.redis.coherence().forget_binding(session);
        let mut invocation = self.invocation(&REMOVE);
        invocation.arg(session.as_str());
        let removed: i64 = warn(self.call("affinity remove_session", invocation).await, 0);
        self.redis.coherence().forget_binding(session);
        if removed == 2 {
            self.stats.expired.fetch_add(1, Ordering::Relaxed);
        }
        removed == 1
    }

    async fn sweep(&self) -> usize {
        let invocation = self.invocation(&SWEEP);
        let dropped: u64 = warn(self.call("affinity sweep", invocation).await, 0);
        self.stats.expired.fetch_add(dropped, Ordering::Relaxed);
        usize::try_from(dropped).unwrap_or(usize::MAX)
    }

    async fn len(&self) -> usize {
        let key = format!("{}:aff:h:{}", self.prefix, self.host);
        warn(
            self.redis
                .run("affinity len", |mut connection| async move {
                    redis::cmd("ZCARD")
                        .arg(&key)
                        .query_async(&mut connection)
                        .await
                })
                .await,
            0,
        )
    }
}

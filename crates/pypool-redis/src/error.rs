//! Errors of setting up the Redis stores.

/// Why the Redis stores could not be set up.
///
/// Errors of store *operations* are [`pypool_store::StoreError`]s
/// (`StoreUnavailable` when Redis does not answer in time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The store URL is not a usable Redis URL.
    #[error("invalid Redis URL `{url}`: {problem}")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The key prefix is empty or contains characters outside the id rules.
    #[error("invalid Redis key prefix `{prefix}`: use 1 to 128 letters, digits or _ - . :")]
    InvalidPrefix {
        /// The rejected prefix.
        prefix: String,
    },
    /// The host id is empty or contains characters outside the id rules.
    #[error("invalid host id `{host}`: use 1 to 128 letters, digits or _ - . :")]
    InvalidHost {
        /// The rejected host id.
        host: String,
    },
    /// Redis did not answer the first `PING` within the timeout.
    #[error(
        "cannot reach Redis at {url} within {timeout_ms} ms: {reason}; start redis-server or fix --store"
    )]
    Unreachable {
        /// The URL, password redacted.
        url: String,
        /// The connect timeout.
        timeout_ms: u128,
        /// What the client reported (password redacted).
        reason: String,
    },
}

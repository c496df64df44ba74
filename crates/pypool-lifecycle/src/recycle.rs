//! When a worker has done enough and should be replaced.

use std::fmt;
use std::time::Duration;

/// Why a worker is due for recycling. Each variant carries the measured value
/// and the limit it reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecycleReason {
    /// The worker served `served` requests; the limit is `limit`.
    MaxRequests {
        /// Requests served so far.
        served: u64,
        /// The configured maximum.
        limit: u64,
    },
    /// The worker is `age` old; the limit is `limit`.
    MaxAge {
        /// Time since the worker was created.
        age: Duration,
        /// The configured maximum.
        limit: Duration,
    },
    /// The worker's resident memory is `rss_bytes`; the limit is `limit`.
    MaxMemory {
        /// Resident memory in bytes.
        rss_bytes: u64,
        /// The configured maximum in bytes.
        limit: u64,
    },
}

impl fmt::Display for RecycleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecycleReason::MaxRequests { served, limit } => {
                write!(f, "served {served} requests (limit {limit})")
            }
            RecycleReason::MaxAge { age, limit } => {
                write!(f, "age {age:?} reached the limit of {limit:?}")
            }
            RecycleReason::MaxMemory { rss_bytes, limit } => write!(
                f,
                "resident memory {rss_bytes} bytes reached the limit of {limit} bytes"
            ),
        }
    }
}

/// The limits after which a worker is recycled; `None` means no limit.
///
/// A limit is reached when the measured value is greater than or equal to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RecycleLimits {
    /// Recycle after this many served requests.
    pub max_requests: Option<u64>,
    /// Recycle once the worker is this old.
    pub max_age: Option<Duration>,
    /// Recycle once the worker's resident memory reaches this many bytes.
    pub max_memory_bytes: Option<u64>,
}

impl RecycleLimits {
    /// The first limit reached, checked in the order requests, age, memory;
    /// `None` if none is. `rss_bytes` is `None` when the memory is unknown,
    /// in which case the memory limit is not checked.
    pub fn first_reached(
        &self,
        served: u64,
        age: Duration,
        rss_bytes: Option<u64>,
    ) -> Option<RecycleReason> {
        if let Some(limit) = self.max_requests
            && served >= limit
        {
            return Some(RecycleReason::MaxRequests { served, limit });
        }
        if let Some(limit) = self.max_age
            && age >= limit
        {
            return Some(RecycleReason::MaxAge { age, limit });
        }
        match (self.max_memory_bytes, rss_bytes) {
            (Some(limit), Some(rss_bytes)) if rss_bytes >= limit => {
                Some(RecycleReason::MaxMemory { rss_bytes, limit })
            }
            _ => None,
        }
    }
}

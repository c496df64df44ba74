//! The clock seam of pypool.
//!
//! Policy crates (`pypool-lifecycle`, `pypool-recovery`, `pypool-breaker`, the
//! affinity logic) never read the system time themselves: they are handed a
//! [`Clock`]. Production code uses [`SystemClock`] (or, in the pool facade, a
//! clock that follows tokio's pausable time); tests use [`ManualClock`] and move
//! time forward by hand, so no test ever sleeps.
//!
//! This crate must not know about tokio, I/O, or anything else: it is one trait
//! and two implementations.
//!
//! ```
//! use std::time::Duration;
//! use pypool_clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! let start = clock.now();
//! clock.advance(Duration::from_secs(5));
//! assert_eq!(clock.now() - start, Duration::from_secs(5));
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A source of monotonic time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant according to this clock.
    fn now(&self) -> Instant;
}

/// A shared, dynamically typed clock, the form in which policy objects keep one.
pub type SharedClock = Arc<dyn Clock>;

/// The real monotonic clock ([`Instant::now`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Instant>>,
}

impl ManualClock {
    /// A manual clock starting at the current real instant.
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    /// A manual clock starting at `start`.
    pub fn starting_at(start: Instant) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_time() {
        let a = ManualClock::new();
        let b = a.clone();
        let t0 = a.now();
        b.advance(Duration::from_millis(250));
        assert_eq!(a.now() - t0, Duration::from_millis(250));
    }

    #[test]
    fn system_clock_is_monotonic() {
        let c = SystemClock;
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
    }
}

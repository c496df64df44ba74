//! The clock the facade gives its policy objects.

use std::time::Instant;

use pypool_clock::Clock;

/// Reads tokio's clock, so `tokio::time::pause`/`advance` in tests move the
/// policies' time too (breaker reset timeouts, worker ages, history stamps).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

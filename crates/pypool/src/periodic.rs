//! The pool's periodic background tasks (health checks, the session sweep).

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::inner::Inner;

/// Runs `task` every `interval` (the first time one interval after the
/// start) until the pool is gone or shutting down. Holds the pool only
/// weakly between runs, so it never keeps a dropped pool alive.
pub(crate) fn every<F, Fut>(inner: Weak<Inner>, interval: Duration, mut task: F)
where
    F: FnMut(Arc<Inner>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            if inner.lock().core.is_shutting_down() {
                return;
            }
            task(inner).await;
        }
    });
}

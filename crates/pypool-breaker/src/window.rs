//! A fixed-size rolling window of call outcomes, in time buckets.

use std::time::Duration;

use crate::RateTrip;
use crate::config::BUCKETS_PER_WINDOW;

const BUCKETS: usize = BUCKETS_PER_WINDOW as usize;

/// Calls and failures per bucket of `window / BUCKETS` nanoseconds, in a ring.
/// A bucket is identified by its absolute index (time since the breaker's
/// origin divided by the bucket width); a slot holding an older index is stale.
#[derive(Debug, Clone)]
pub(crate) struct RollingWindow {
    rate: RateTrip,
    bucket_nanos: u128,
    buckets: [Bucket; BUCKETS],
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    index: u64,
    calls: u32,
    failures: u32,
}

impl RollingWindow {
    pub(crate) fn new(rate: RateTrip) -> Self {
        Self {
            rate,
            bucket_nanos: (rate.window.as_nanos() / BUCKETS as u128).max(1),
            buckets: [Bucket::default(); BUCKETS],
        }
    }

    /// Records one call that ended `at` (time since the origin).
    pub(crate) fn record(&mut self, at: Duration, failed: bool) {
        let index = self.bucket_index(at);
        let slot = &mut self.buckets[ring_slot(index)];
        if slot.index != index {
            *slot = Bucket {
                index,
                ..Bucket::default()
            };
        }
        slot.calls = slot.calls.saturating_add(1);
        if failed {
            slot.failures = slot.failures.saturating_add(1);
        }
    }

    /// Whether the calls still in the window `at` reach the trip condition.
    pub(crate) fn trips(&self, at: Duration) -> bool {
        let (calls, failures) = self.totals(at);
        calls >= self.rate.min_calls
            && failures > 0
            && f64::from(failures) >= self.rate.threshold * f64::from(calls)
    }

    /// Forgets every call.
    pub(crate) fn clear(&mut self) {
        self.buckets = [Bucket::default(); BUCKETS];
    }

    /// (calls, failures) still in the window `at`.
    pub(crate) fn totals(&self, at: Duration) -> (u32, u32) {
        let now = self.bucket_index(at);
        self.buckets
            .iter()
            .filter(|bucket| bucket.index <= now && now - bucket.index < BUCKETS as u64)
            .fold((0u32, 0u32), |(calls, failures), bucket| {
                (
                    calls.saturating_add(bucket.calls),
                    failures.saturating_add(bucket.failures),
                )
            })
    }

    fn bucket_index(&self, at: Duration) -> u64 {
        u64::try_from(at.as_nanos() / self.bucket_nanos).unwrap_or(u64::MAX)
    }
}

fn ring_slot(index: u64) -> usize {
    // The remainder is below BUCKETS, so it fits.
    usize::try_from(index % BUCKETS as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(min_calls: u32, threshold: f64) -> RollingWindow {
        RollingWindow::new(RateTrip {
            window: Duration::from_secs(10),
            min_calls,
            threshold,
        })
    }

    #[test]
    fn counts_calls_across_buckets_until_they_age_out() {
        let mut w = window(1, 0.5);
        w.record(Duration::from_millis(500), true);
        w.record(Duration::from_millis(1_500), false);
        w.record(Duration::from_millis(1_700), false);
        assert_eq!(w.totals(Duration::from_secs(2)), (3, 1));
        // The first bucket [0 s, 1 s) leaves the window at 10 s.
        assert_eq!(w.totals(Duration::from_millis(9_999)), (3, 1));
        assert_eq!(w.totals(Duration::from_secs(10)), (2, 0));
        assert_eq!(w.totals(Duration::from_secs(11)), (0, 0));
    }

    #[test]
    fn a_reused_slot_starts_from_zero() {
        let mut w = window(1, 0.5);
        w.record(Duration::from_millis(100), true);
        // Same ring slot, ten buckets later.
        w.record(Duration::from_millis(10_100), false);
        assert_eq!(w.totals(Duration::from_millis(10_100)), (1, 0));
    }

    #[test]
    fn trips_only_with_enough_calls_and_a_high_enough_rate() {
        let mut w = window(4, 0.5);
        let at = Duration::from_secs(1);
        w.record(at, true);
        w.record(at, true);
        w.record(at, false);
        assert!(!w.trips(at), "3 calls are below min_calls 4");
        w.record(at, false);
        assert!(w.trips(at), "2 of 4 is the 0.5 threshold");
        w.record(at, false);
        assert!(!w.trips(at), "2 of 5 is below 0.5");
        w.clear();
        assert_eq!(w.totals(at), (0, 0));
    }

    #[test]
    fn never_trips_without_a_failure() {
        let mut w = window(0, 0.0);
        assert!(!w.trips(Duration::ZERO));
        w.record(Duration::ZERO, false);
        assert!(!w.trips(Duration::ZERO));
        w.record(Duration::ZERO, true);
        assert!(w.trips(Duration::ZERO));
    }

    #[test]
    fn a_zero_window_is_ten_nanoseconds() {
        let mut w = RollingWindow::new(RateTrip {
            window: Duration::ZERO,
            min_calls: 1,
            threshold: 1.0,
        });
        w.record(Duration::from_nanos(5), true);
        assert_eq!(w.totals(Duration::from_nanos(14)), (1, 1));
        assert_eq!(w.totals(Duration::from_nanos(15)), (0, 0));
    }
}

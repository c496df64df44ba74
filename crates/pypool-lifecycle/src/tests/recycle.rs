//! Recycle limits and [`WorkerLifecycle::recycle_due`].

use std::time::Duration;

use proptest::prelude::*;

use super::{tick, worker};
use crate::{Event, LifecycleConfig, RecycleLimits, RecycleReason, State};

/// Cases of the recycle-limit property.
const RECYCLE_CASES: u32 = 1024;

fn reached<T: PartialOrd>(limit: Option<T>, value: Option<T>) -> bool {
    matches!((limit, value), (Some(limit), Some(value)) if value >= limit)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(RECYCLE_CASES))]

    /// A reason is returned iff some limit is reached; it reports the measured
    /// value and its limit, and no earlier limit (requests, then age, then
    /// memory) was reached.
    #[test]
    fn the_first_reached_limit_is_reported(
        max_requests in proptest::option::of(0u64..20),
        max_age_ms in proptest::option::of(0u64..20),
        max_memory_bytes in proptest::option::of(0u64..20),
        served in 0u64..20,
        age_ms in 0u64..20,
        rss_bytes in proptest::option::of(0u64..20),
    ) {
        let limits = RecycleLimits {
            max_requests,
            max_age: max_age_ms.map(Duration::from_millis),
            max_memory_bytes,
        };
        let age = Duration::from_millis(age_ms);
        let requests_reached = reached(max_requests, Some(served));
        let age_reached = reached(max_age_ms, Some(age_ms));
        let memory_reached = reached(max_memory_bytes, rss_bytes);
        let found = limits.first_reached(served, age, rss_bytes);
        prop_assert_eq!(found.is_some(), requests_reached || age_reached || memory_reached);
        match found {
            None => {}
            Some(RecycleReason::MaxRequests { served: s, limit }) => {
                prop_assert_eq!(s, served);
                prop_assert_eq!(Some(limit), max_requests);
                prop_assert!(s >= limit);
            }
            Some(RecycleReason::MaxAge { age: a, limit }) => {
                prop_assert!(!requests_reached);
                prop_assert_eq!(a, age);
                prop_assert_eq!(Some(limit), limits.max_age);
                prop_assert!(a >= limit);
            }
            Some(RecycleReason::MaxMemory { rss_bytes: r, limit }) => {
                prop_assert!(!requests_reached && !age_reached);
                prop_assert_eq!(Some(r), rss_bytes);
                prop_assert_eq!(Some(limit), max_memory_bytes);
                prop_assert!(r >= limit);
            }
        }
    }
}

#[test]
fn no_limits_never_recycle() {
    let limits = RecycleLimits::default();
    assert_eq!(
        limits.first_reached(u64::MAX, Duration::MAX, Some(u64::MAX)),
        None
    );
}

#[test]
fn recycle_due_follows_the_served_count_and_the_clock() {
    let (mut w, clock) = worker(LifecycleConfig::default());
    w.apply(Event::HandshakeOk).unwrap();
    let limits = RecycleLimits {
        max_requests: Some(2),
        max_age: Some(Duration::from_secs(60)),
        max_memory_bytes: Some(1000),
    };
    assert_eq!(w.recycle_due(&limits, Some(999)), None);
    assert_eq!(
        w.recycle_due(&limits, Some(1000)),
        Some(RecycleReason::MaxMemory {
            rss_bytes: 1000,
            limit: 1000
        })
    );
    tick(&clock, 60_000);
    assert_eq!(
        w.recycle_due(&limits, None),
        Some(RecycleReason::MaxAge {
            age: Duration::from_secs(60),
            limit: Duration::from_secs(60)
        })
    );
    for _ in 0..2 {
        w.apply(Event::Checkout).unwrap();
        w.apply(Event::CheckinOk).unwrap();
    }
    let reason = w.recycle_due(&limits, None).unwrap();
    assert_eq!(
        reason,
        RecycleReason::MaxRequests {
            served: 2,
            limit: 2
        }
    );
    assert_eq!(
        w.apply(Event::RecycleDue(reason)).unwrap().to,
        State::Terminating
    );
}

#[test]
fn recycle_due_is_none_where_the_event_would_be_rejected() {
    let limits = RecycleLimits {
        max_requests: Some(0),
        ..RecycleLimits::default()
    };
    let (mut w, _clock) = worker(LifecycleConfig::default());
    assert_eq!(w.state(), State::Starting);
    assert_eq!(w.recycle_due(&limits, None), None);
    w.apply(Event::HandshakeOk).unwrap();
    w.apply(Event::Checkout).unwrap();
    let reason = w.recycle_due(&limits, None).unwrap();
    w.apply(Event::RecycleDue(reason)).unwrap();
    assert_eq!(w.state(), State::Draining);
    assert_eq!(w.recycle_due(&limits, None), None);
    w.apply(Event::CheckinOk).unwrap();
    assert_eq!(w.state(), State::Terminating);
    assert_eq!(w.recycle_due(&limits, None), None);
}

#[test]
fn recycle_reasons_read_well() {
    let age = RecycleReason::MaxAge {
        age: Duration::from_secs(90),
        limit: Duration::from_secs(60),
    };
    assert_eq!(age.to_string(), "age 90s reached the limit of 60s");
    let served = RecycleReason::MaxRequests {
        served: 5,
        limit: 5,
    };
    assert_eq!(served.to_string(), "served 5 requests (limit 5)");
}

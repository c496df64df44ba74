//! Telemetry: the request path records its counters, histograms and gauges
//! through the `metrics` facade, labelled with the pool's name.

mod support;

use std::time::Duration;

use metrics_util::debugging::DebugValue;
use pypool::Pool;
use pypool::metrics::names;
use pypool_mock::{Behaviour, MockSpawner};
use serde_json::json;

#[test]
fn the_request_path_records_metrics() {
    let snapshot = support::record_metrics(|| async {
        let behaviour = Behaviour::default()
            .fixed_latency(Duration::from_millis(3))
            .crash_every(5);
        let spawner = MockSpawner::with_behaviour(behaviour).unwrap();
        let pool = Pool::builder()
            .name("metered")
            .size(2)
            .health_check_interval(None)
            .spawner(spawner)
            .build()
            .unwrap();
        pool.ready().await.unwrap();
        let mut failures = 0;
        for n in 0..10 {
            if pool.execute("echo", json!({ "n": n })).await.is_err() {
                failures += 1;
            }
        }
        assert_eq!(failures, 2, "crash_every(5) over 10 requests");
        pool.shutdown(Duration::from_secs(5)).await;
    })
    .into_vec();
    let find = |name: &str, label: Option<(&str, &str)>| {
        snapshot.iter().find(|(key, _, _, _)| {
            let key = key.key();
            key.name() == name
                && key
                    .labels()
                    .any(|l| l.key() == "pool" && l.value() == "metered")
                && label.is_none_or(|(k, v)| key.labels().any(|l| l.key() == k && l.value() == v))
        })
    };
    let counter = |name, label| match find(name, label) {
        Some((_, _, _, DebugValue::Counter(value))) => *value,
        other => panic!("counter {name} {label:?} missing: {other:?}"),
    };
    let histogram_len = |name, label| match find(name, label) {
        Some((_, _, _, DebugValue::Histogram(values))) => values.len(),
        other => panic!("histogram {name} {label:?} missing: {other:?}"),
    };

    assert_eq!(
        counter(names::REQUEST_ERRORS, Some(("kind", "worker_exited"))),
        2
    );
    assert_eq!(counter(names::REPLACEMENTS, None), 2);
    assert_eq!(
        counter(names::SPAWNS, Some(("result", "ok"))),
        4,
        "2 workers + 2 replacements"
    );
    assert_eq!(
        histogram_len(names::REQUEST_DURATION, Some(("outcome", "ok"))),
        8
    );
    assert_eq!(
        histogram_len(names::REQUEST_DURATION, Some(("outcome", "error"))),
        2
    );
    assert_eq!(histogram_len(names::CHECKOUT_WAIT, None), 10);
    assert!(find(names::WORKERS, Some(("state", "ready"))).is_some());
    assert!(find(names::BREAKER_STATE, Some(("breaker", "spawn"))).is_some());
}

//! The Prometheus export: request durations are histograms with buckets
//! from 100 µs to 60 s (several hosts can be aggregated), not summaries.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use pypool::Pool;
use pypool::metrics::names;
use pypool_cli::metrics_endpoint::{DURATION_BUCKETS, prometheus_builder};
use pypool_mock::{Behaviour, MockSpawner};
use serde_json::json;

/// The value of the series whose line starts with `prefix` and contains
/// every one of `labels`.
fn sample(text: &str, prefix: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[test]
fn request_durations_are_exported_as_histograms_with_buckets_from_100us_to_60s() {
    let recorder = prometheus_builder().unwrap().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let behaviour = Behaviour::default()
                .fixed_latency(Duration::from_millis(3))
                .command("echo", true);
            let pool = Pool::builder()
                .name("exported")
                .size(1)
                .health_check_interval(None)
                .spawner(MockSpawner::with_behaviour(behaviour).unwrap())
                .build()
                .unwrap();
            pool.ready().await.unwrap();
            for n in 0..5 {
                pool.execute("echo", json!({ "n": n })).await.unwrap();
            }
            pool.shutdown(Duration::from_secs(5)).await;
        });
    });
    let text = handle.render();

    let duration = names::REQUEST_DURATION;
    assert!(
        text.contains(&format!("# TYPE {duration} histogram")),
        "{text}"
    );
    assert!(!text.contains("quantile="), "no summaries: {text}");
    assert_eq!(DURATION_BUCKETS.first(), Some(&0.000_1));
    assert_eq!(DURATION_BUCKETS.last(), Some(&60.0));
    let bucket = format!("{duration}_bucket{{");
    let ok = r#"outcome="ok""#;
    let echo = r#"command="echo""#;
    for bound in DURATION_BUCKETS {
        let le = format!(r#"le="{bound}""#);
        assert!(
            sample(&text, &bucket, &[ok, echo, &le]).is_some(),
            "bucket {le} missing: {text}"
        );
    }
    // Each request took 3 ms (paused time): none at or under 2.5 ms, all
    // five under 5 ms, and the cumulative count carries on to +Inf.
    assert_eq!(
        sample(&text, &bucket, &[ok, echo, r#"le="0.0025""#]),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, &bucket, &[ok, echo, r#"le="0.005""#]),
        Some(5.0)
    );
    assert_eq!(sample(&text, &bucket, &[ok, echo, r#"le="60""#]), Some(5.0));
    assert_eq!(
        sample(&text, &bucket, &[ok, echo, r#"le="+Inf""#]),
        Some(5.0)
    );
    assert_eq!(
        sample(&text, &format!("{duration}_count{{"), &[ok, echo]),
        Some(5.0)
    );
}

//! `--metrics-addr`: a Prometheus recorder for what the facade records
//! through the `metrics` crate (see `pypool::metrics::names`), served over
//! HTTP while the command runs.
//!
//! Durations are exported as Prometheus histograms (cumulative `_bucket`
//! series with [`DURATION_BUCKETS`]), not summaries: bucket counts from
//! several hosts add up, quantiles computed on one host do not.

use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Bucket bounds (seconds) of every duration histogram: 100 µs to 60 s,
/// roughly three per decade.
pub const DURATION_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// A Prometheus builder exporting every histogram with [`DURATION_BUCKETS`].
pub fn prometheus_builder() -> anyhow::Result<PrometheusBuilder> {
    PrometheusBuilder::new()
        .set_buckets(DURATION_BUCKETS)
        .context("invalid histogram buckets")
}

/// The installed recorder (one per process) and where it is served.
#[derive(Debug, Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    addr: SocketAddr,
}

impl Metrics {
    /// Installs the process-wide recorder and serves it at `addr`
    /// (`HOST:PORT`). Must run inside a tokio runtime.
    pub fn serve(addr: &str) -> anyhow::Result<Self> {
        let addr = resolve(addr)?;
        let (recorder, exporter) = prometheus_builder()?
            .with_http_listener(addr)
            .build()
            .with_context(|| format!("cannot serve metrics at {addr}"))?;
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder)
            .context("a metrics recorder is already installed")?;
        tokio::spawn(async move {
            if let Err(error) = exporter.await {
                tracing::error!(?error, "the metrics endpoint stopped");
            }
        });
        tracing::info!(%addr, "serving Prometheus metrics");
        Ok(Self { handle, addr })
    }

    /// Where metrics are served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current metrics in Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("invalid metrics address `{addr}` (expected HOST:PORT)"))?
        .next()
        .with_context(|| format!("metrics address `{addr}` resolves to nothing"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_bad_address_is_an_error_naming_it() {
        let error = resolve("not an address").unwrap_err().to_string();
        assert!(error.contains("not an address"), "{error}");
        assert_eq!(resolve("127.0.0.1:9100").unwrap().port(), 9100);
    }
}

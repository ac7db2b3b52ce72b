//! `GET /metrics`: the limiter's metrics in the Prometheus text format, rendered by
//! `metrics-exporter-prometheus` without its HTTP listener (the tour serves the page itself,
//! on its own port, behind its own middleware).

use core::time::Duration;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use ratekeeper::metrics::{STORAGE_SECONDS, STORAGE_SECONDS_BUCKETS, describe};

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often histograms are folded in between scrapes, so that memory stays bounded when
/// nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's Prometheus recorder, installed as the global `metrics` recorder on the first
/// call. `None` when another recorder was installed first (the application's own): then the
/// metrics go there and the tour has nothing to render.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(install).as_ref()
}

fn install() -> Option<PrometheusHandle> {
    let recorder = match PrometheusBuilder::new().set_buckets_for_metric(
        Matcher::Full(STORAGE_SECONDS.into()),
        STORAGE_SECONDS_BUCKETS,
    ) {
        Ok(builder) => builder.build_recorder(),
        Err(e) => {
            tracing::error!("metrics disabled: {e}");
            return None;
        }
    };
    let handle = recorder.handle();
    if let Err(e) = metrics::set_global_recorder(recorder) {
        tracing::warn!("GET /metrics disabled: {e}");
        return None;
    }
    describe();
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(
            "no metrics upkeep thread ({e}): histograms are folded in at each scrape only"
        );
    }
    Some(handle)
}

/// The metrics in the Prometheus text format, or `None` when the tour's recorder is not the
/// one installed.
pub fn metrics_text() -> Option<String> {
    prometheus().map(|handle| {
        handle.run_upkeep();
        handle.render()
    })
}

/// The page for `GET /metrics`: 200 with the metrics, or 404 when the tour's recorder is not
/// the one installed.
pub fn metrics_page() -> tide::Response {
    match metrics_text() {
        Some(text) => {
            let mut res = tide::Response::new(200);
            res.set_body(text);
            res.set_content_type(CONTENT_TYPE);
            res
        }
        None => {
            let mut res = tide::Response::new(404);
            res.set_body("{\"error\": \"metrics go to the application's own recorder\"}");
            res.set_content_type(tide::http::mime::JSON);
            res
        }
    }
}

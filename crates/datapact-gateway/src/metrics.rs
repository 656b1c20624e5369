//! Prometheus metrics: requests, latency and records served, rendered on the admin listener.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, OnceLock, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use datapact_core::Endpoint;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const REQUESTS: &str = "datapact_http_requests_total";
const LATENCY: &str = "datapact_http_request_duration_seconds";
const RECORDS: &str = "datapact_records_served_total";
const LATENCY_BUCKETS: &[f64] =
    &[0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The ledger's group commits (recorded by datapact-store): rows per batch and commit time.
const LEDGER_BATCH_ROWS: &str = "datapact_ledger_batch_rows";
const LEDGER_COMMIT: &str = "datapact_ledger_commit_seconds";
const LEDGER_BATCH_BUCKETS: &[f64] =
    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0];

/// Licensee API requests answered and records delivered by this process, for the dashboard's
/// live numbers (it reads them twice and divides; the Prometheus recorder is write-only).
pub static LICENSEE_REQUESTS: AtomicU64 = AtomicU64::new(0);
pub static RECORDS_DELIVERED: AtomicU64 = AtomicU64::new(0);

/// The process-wide recorder; installed once, whoever asks first.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(LATENCY.into()), LATENCY_BUCKETS)
                .expect("buckets are not empty")
                .set_buckets_for_metric(Matcher::Full(LEDGER_BATCH_ROWS.into()), LEDGER_BATCH_BUCKETS)
                .expect("buckets are not empty")
                .set_buckets_for_metric(Matcher::Full(LEDGER_COMMIT.into()), LATENCY_BUCKETS)
                .expect("buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (embedding, tests): keep serving ours.
            let _ = metrics::set_global_recorder(recorder);
            metrics::describe_counter!(REQUESTS, "HTTP requests by listener, route and status");
            metrics::describe_histogram!(LATENCY, metrics::Unit::Seconds, "HTTP request latency by listener and route");
            metrics::describe_counter!(RECORDS, "Posts delivered to licensees, by licensee and endpoint");
            handle
        })
        .clone()
}

/// Middleware factory: counts and times every request under its route template (never the raw
/// path, which would make one series per id).
pub async fn track(listener: &'static str, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method: &'static str = match *request.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::HEAD => "HEAD",
        _ => "OTHER",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    if listener == "licensee" {
        LICENSEE_REQUESTS.fetch_add(1, Ordering::Relaxed);
    }
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (requests, latency) = series(listener, method, route, response.status().as_u16());
    requests.increment(1);
    latency.record(started.elapsed().as_secs_f64());
    response
}

/// A request series: listener, method, status.
type SeriesKey = (&'static str, &'static str, u16);

/// The request counter and latency histogram of a series, registered once: registering hashes
/// and allocates every label, which every request would otherwise pay.
fn series(listener: &'static str, method: &'static str, route: &str, status: u16) -> (Counter, Histogram) {
    type Series = HashMap<String, Vec<(SeriesKey, Counter, Histogram)>>;
    static SERIES: LazyLock<RwLock<Series>> = LazyLock::new(Default::default);
    let key = (listener, method, status);
    let found = |series: &Series| {
        let entries = series.get(route)?;
        entries.iter().find(|(k, ..)| *k == key).map(|(_, counter, histogram)| (counter.clone(), histogram.clone()))
    };
    if let Some(found) = SERIES.read().ok().as_deref().and_then(found) {
        return found;
    }
    // Handles bind to the recorder installed when they are made: make sure it is ours.
    handle();
    let counter = metrics::counter!(REQUESTS, "listener" => listener, "method" => method, "route" => route.to_owned(), "status" => status.to_string());
    let histogram = metrics::histogram!(LATENCY, "listener" => listener, "route" => route.to_owned());
    if let Ok(mut series) = SERIES.write()
        && found(&series).is_none()
    {
        series.entry(route.to_owned()).or_default().push((key, counter.clone(), histogram.clone()));
    }
    (counter, histogram)
}

/// Records posts delivered to a licensee.
pub fn records_served(licensee: &str, endpoint: Endpoint, count: usize) {
    if count > 0 {
        RECORDS_DELIVERED.fetch_add(count as u64, Ordering::Relaxed);
        metrics::counter!(RECORDS, "licensee" => licensee.to_owned(), "endpoint" => endpoint.as_str())
            .increment(count as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Handles kept for a series count into that series, and only it.
    #[test]
    fn a_kept_series_counts_every_request_under_its_own_labels() {
        for _ in 0..3 {
            series("licensee", "GET", "/test/series", 200).0.increment(1);
        }
        series("licensee", "GET", "/test/series", 404).0.increment(1);
        series("admin", "GET", "/test/series", 200).0.increment(1);
        let text = handle().render();
        let line = |listener: &str, status: u16| {
            format!(r#"{REQUESTS}{{listener="{listener}",method="GET",route="/test/series",status="{status}"}}"#)
        };
        assert!(text.contains(&format!("{} 3", line("licensee", 200))), "{text}");
        assert!(text.contains(&format!("{} 1", line("licensee", 404))), "{text}");
        assert!(text.contains(&format!("{} 1", line("admin", 200))), "{text}");
    }
}

//! datapact's HTTP side: the licensee API (X API v2 compatible) and the admin API, as axum
//! routers, plus the server that runs both listeners.
//!
//! Behaviour is composed as tower layers: client attribution, request ids, tracing, timeouts,
//! body limits and panic containment wrap every route; authentication wraps each API.

pub mod admin;
pub mod admin_billing;
pub mod api;
pub mod auth;
pub mod billing;
pub mod canary;
pub mod checkpoints;
pub mod client_addr;
pub mod compliance;
pub mod dashboard;
pub mod extract;
pub mod feed;
pub mod fingerprint;
pub mod freshness;
pub mod metering;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod post_cache;
pub mod problem;
pub mod render;
pub mod search;
mod server;
pub mod statements;
pub mod stream;
pub mod terms;
pub mod usage;
pub mod webhooks;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use datapact_core::{Clock, ManualClock};
use datapact_store::Store;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use auth::KeyCache;
pub use client_addr::TrustedProxies;
pub use server::{GatewayConfig, RunningGateway, TlsFiles, serve};

use crate::problem::Problem;

/// The largest request body the licensee API accepts (compliance uploads have their own limit).
const PUBLIC_BODY_LIMIT: usize = 64 * 1024;
/// The largest JSON body the admin API accepts, ingest excepted (it streams).
const ADMIN_BODY_LIMIT: usize = 1024 * 1024;

/// Everything a request handler may use. One reference count to clone: axum clones the state for
/// every layer and handler of every request, and cloning a dozen `Arc`s and a cancellation token
/// (whose clone takes a lock) each time cost a fifth of the server's CPU under load.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

impl From<Services> for AppState {
    fn from(services: Services) -> Self {
        AppState(Arc::new(services))
    }
}

/// What [`AppState`] shares.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub keys: Arc<KeyCache>,
    pub terms: Arc<terms::TermsCache>,
    /// Off only for benchmarks (`serve --unenforced`): no 403s and no rate limits (opt-outs still apply).
    pub enforce_terms: bool,
    pub admin_token: Arc<str>,
    pub data_dir: Arc<Path>,
    /// Set only when the gateway runs with a test clock: the admin API can then move time.
    pub test_clock: Option<ManualClock>,
    /// What this gateway has seen of the store's ingest feed.
    pub feed: Arc<feed::PostFeed>,
    pub index: search::SharedIndex,
    /// The metering ledger; `None` only for benchmarks (`serve --unmetered`): nothing is counted
    /// or capped.
    pub ledger: Option<datapact_store::ledger::Ledger>,
    /// Cancelled when the gateway shuts down, so long-lived responses (streams) can end cleanly.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Signs the compliance jobs' upload and download URLs (a key derived from the fingerprint secret).
    pub url_signer: compliance::UrlSigner,
    /// The newest signed ledger checkpoint (for the response header) and the schedule's interval.
    pub checkpoints: checkpoints::Published,
    /// The dashboard's trace jobs, and the runner the binary supplies (none: tracing unavailable).
    pub trace_jobs: dashboard::TraceJobs,
}

/// The licensee API, on `--listen`.
pub fn licensee_router(state: AppState) -> Router {
    let api = Router::new()
        .route("/2/tweets", get(api::posts_by_ids))
        .route("/2/tweets/{id}", get(api::post_by_id))
        .route("/2/tweets/sample/stream", get(stream::sample_stream))
        .route("/2/tweets/search/recent", get(api::search_recent))
        .route("/2/users", get(api::users_by_ids))
        .route("/2/users/{id}", get(api::user_by_id))
        .route("/2/users/by", get(api::users_by_usernames))
        .route("/2/users/{id}/tweets", get(api::user_timeline))
        .route("/2/users/by/username/{username}", get(api::user_by_username))
        .route("/2/usage/tweets", get(usage::usage_tweets))
        .route("/2/usage/checkpoints", get(checkpoints::list))
        .route("/2/compliance/jobs", get(compliance::list_jobs).post(compliance::create_job))
        .route("/2/compliance/jobs/{id}", get(compliance::get_job))
        .route("/2/compliance/events", get(compliance::events))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metering::idempotency))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), terms::enforce))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), checkpoints::header))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_licensee))
        .route_layer(axum::middleware::from_fn(metering::await_commit))
        .route_layer(axum::middleware::from_fn(|request, next| metrics::track("licensee", request, next)));
    // The compliance jobs' signed URLs: the only licensee routes without a bearer key (the
    // signature names the licensee and the job, and expires).
    let signed = Router::new()
        .route(
            "/2/compliance/upload/{id}",
            put(compliance::upload).layer(DefaultBodyLimit::max(compliance::UPLOAD_BODY_LIMIT)),
        )
        .route("/2/compliance/download/{id}", get(compliance::download))
        .route_layer(axum::middleware::from_fn(|request, next| metrics::track("licensee", request, next)));
    Router::new()
        .merge(api)
        .merge(signed)
        .route("/healthz", get(healthz))
        .route(checkpoints::KEYS_PATH, get(checkpoints::keys))
        .route("/openapi.json", get(|| async { axum::Json(<openapi::LicenseeApi as utoipa::OpenApi>::openapi()) }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(PUBLIC_BODY_LIMIT))
        .with_state(state)
}

/// The admin API, on `--admin-listen`.
pub fn admin_router(state: AppState) -> Router {
    let admin = Router::new()
        .route("/admin/posts", post(admin::ingest).layer(DefaultBodyLimit::disable()))
        .route("/admin/posts/delete", post(admin::delete_posts))
        .route("/admin/posts/{id}", delete(admin::delete_post))
        .route("/admin/licensees", get(admin::list_licensees).post(admin::create_licensee))
        .route("/admin/licensees/{name}", get(admin::show_licensee))
        .route("/admin/licensees/{name}/keys", post(admin::issue_licensee_key))
        .route("/admin/licensees/{name}/block", post(admin::block_licensee))
        .route("/admin/licensees/{name}/unblock", post(admin::unblock_licensee))
        .route("/admin/authors/{username}/opt-outs", post(admin::add_opt_out))
        .route("/admin/authors/{username}/opt-outs/{purpose}", delete(admin::remove_opt_out))
        .route("/admin/violations", get(admin::list_violations))
        .route("/admin/compliance/violations", get(admin::compliance_violations))
        .route("/admin/compliance/notices", get(admin::compliance_notices))
        .route("/admin/terms", get(admin::show_terms).post(admin::apply_terms))
        .route("/admin/audit", get(admin::audit_log))
        .route("/admin/keys", get(admin::list_keys))
        .route("/admin/keys/{prefix}/revoke", post(admin::revoke_key))
        .route("/admin/backup", post(admin::backup))
        .route("/admin/stats", get(admin::stats))
        .route("/admin/usage", get(usage::admin_usage))
        .route("/admin/licensees/{name}/deliveries", get(usage::admin_deliveries))
        .route("/admin/ledger/verify", post(usage::admin_verify))
        .route("/admin/ledger/checkpoints", get(checkpoints::admin_list))
        .route("/admin/invoices", get(admin_billing::list_invoices))
        .route("/admin/invoices/run", post(admin_billing::run_invoices))
        .route("/admin/invoices/{number}", get(admin_billing::show_invoice))
        .route("/admin/invoices/{number}/credit-notes", post(admin_billing::issue_credit_note))
        .route("/admin/invoices/{number}/void", post(admin_billing::void_invoice))
        .route("/admin/billing/summary", get(admin_billing::billing_summary))
        .route("/admin/credits", get(admin_billing::list_credits).post(admin_billing::add_credit))
        .route("/admin/webhooks", get(admin_billing::list_webhooks).post(admin_billing::add_webhook))
        .route("/admin/webhooks/deliveries", get(admin_billing::webhook_deliveries))
        .route("/admin/webhooks/{id}", delete(admin_billing::remove_webhook))
        .route("/admin/test/clock", post(admin::move_test_clock))
        .route("/metrics", get(render_metrics))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_admin))
        .route_layer(axum::middleware::from_fn(|request, next| metrics::track("admin", request, next)));
    Router::new()
        .merge(admin)
        .merge(dashboard::router())
        .route("/healthz", get(healthz))
        .route(checkpoints::KEYS_PATH, get(checkpoints::keys))
        .route("/openapi.json", get(|| async { axum::Json(<openapi::AdminApi as utoipa::OpenApi>::openapi()) }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(ADMIN_BODY_LIMIT))
        .with_state(state)
}

/// The layers every listener shares, outermost first.
pub fn common_layers(router: Router, proxies: Arc<TrustedProxies>, request_timeout: Duration) -> Router {
    router.layer(
        ServiceBuilder::new()
            // The gateway names every request itself: a request id keys the ledger's usage event
            // and the shared limiter's reservation, so a client's `X-Request-Id` is not taken.
            .layer(tower::util::MapRequestLayer::new(|mut request: axum::http::Request<axum::body::Body>| {
                request.headers_mut().remove("x-request-id");
                request
            }))
            .layer(SetRequestIdLayer::x_request_id(SequentialRequestId::new()))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(axum::middleware::from_fn_with_state(proxies, client_addr::attribute_client))
            .layer(TraceLayer::new_for_http().make_span_with(server::request_span))
            .layer(CatchPanicLayer::custom(server::panic_response))
            .layer(HandleErrorLayer::new(timeout_response))
            .timeout(request_timeout),
    )
}

/// Request ids `<process prefix>-<sequence>`: unique across restarts (random prefix) without a
/// random-number syscall per request, and sortable within a process.
#[derive(Clone)]
struct SequentialRequestId {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl SequentialRequestId {
    fn new() -> Self {
        let mut bytes = [0u8; 6];
        // Without the OS random source, the process id and start time still separate processes.
        if getrandom::fill(&mut bytes).is_err() {
            let seed = ((std::process::id() as u64) << 16)
                ^ datapact_core::Clock::now(&datapact_core::SystemClock).millis() as u64;
            bytes.copy_from_slice(&seed.to_le_bytes()[..6]);
        }
        let prefix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        SequentialRequestId { prefix: prefix.into(), next: Arc::new(std::sync::atomic::AtomicU64::new(1)) }
    }
}

impl MakeRequestId for SequentialRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&format!("{}-{n}", self.prefix)).ok().map(RequestId::new)
    }
}

async fn timeout_response(_: tower::BoxError) -> Response {
    Problem::plain(
        StatusCode::SERVICE_UNAVAILABLE,
        problem::ABOUT_BLANK,
        "Service Unavailable",
        "the request took too long and was abandoned; retry later",
    )
    .into_response()
}

/// Prometheus text format, behind the admin token like the rest of the admin listener.
#[utoipa::path(get, path = "/metrics", tag = "admin", responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
async fn render_metrics() -> Response {
    let body = metrics::handle().render();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn not_found() -> Problem {
    Problem::plain(StatusCode::NOT_FOUND, problem::ABOUT_BLANK, "Not Found", "Sorry, that page does not exist")
}

async fn method_not_allowed() -> Problem {
    Problem::plain(
        StatusCode::METHOD_NOT_ALLOWED,
        problem::ABOUT_BLANK,
        "Method Not Allowed",
        "this endpoint does not take that HTTP method",
    )
}

/// The state in-process tests serve from: terms not enforced, nothing metered, the system clock.
#[cfg(test)]
pub(crate) async fn test_state(store: Arc<dyn Store>, data_dir: &Path) -> AppState {
    AppState::from(Services {
        keys: Arc::new(KeyCache::load(store.as_ref()).await.unwrap()),
        terms: Arc::new(terms::TermsCache::load(store.as_ref()).await.unwrap()),
        clock: Arc::new(datapact_core::SystemClock),
        enforce_terms: false,
        admin_token: "unused".into(),
        data_dir: data_dir.into(),
        test_clock: None,
        feed: Arc::new(feed::PostFeed::new()),
        index: Default::default(),
        ledger: None,
        shutdown: Default::default(),
        url_signer: compliance::UrlSigner::derived_from(b"test"),
        checkpoints: Default::default(),
        trace_jobs: Default::default(),
        store,
    })
}

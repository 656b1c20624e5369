//! Running both listeners: plain or TLS, with graceful drain and the gateway's background loops.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use tokio::task::JoinHandle;

use crate::client_addr::ClientAddr;
use crate::problem::{ABOUT_BLANK, Problem};
use crate::{AppState, TrustedProxies, admin_router, common_layers, licensee_router};

/// Largest request head (request line and headers) a connection may send.
const MAX_HEADER_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub trusted_proxies: TrustedProxies,
    pub tls: Option<TlsFiles>,
    pub request_timeout: Duration,
    /// How long in-flight requests may run after a shutdown signal.
    pub drain_timeout: Duration,
    /// How often the store's change counter is polled (keys, licensees).
    pub poll_interval: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: ([127, 0, 0, 1], 8080).into(),
            admin_listen: ([127, 0, 0, 1], 8081).into(),
            trusted_proxies: TrustedProxies::default(),
            tls: None,
            request_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(20),
            poll_interval: Duration::from_millis(200),
        }
    }
}

/// A gateway that is accepting connections.
pub struct RunningGateway {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub scheme: &'static str,
    handles: [Handle; 2],
    servers: Vec<JoinHandle<std::io::Result<()>>>,
    background: Vec<JoinHandle<()>>,
    state: AppState,
}

/// Binds both listeners and starts serving. Returns once they accept connections.
pub async fn serve(config: GatewayConfig, state: AppState) -> anyhow::Result<RunningGateway> {
    // Install the metrics recorder before the first request can record anything.
    crate::metrics::handle();
    // Search is complete from the first request: catch up with the store before listening.
    let started = std::time::Instant::now();
    let revisions =
        state.feed.poll(state.store.as_ref(), &state.index).await.context("cannot read the store's posts")?;
    tracing::info!(revisions, elapsed_ms = started.elapsed().as_millis() as u64, "search index built");
    let proxies = Arc::new(config.trusted_proxies.clone());
    let tls = match &config.tls {
        Some(files) => {
            // One process-wide crypto provider; a second install attempt is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(RustlsConfig::from_pem_file(&files.cert, &files.key).await.with_context(|| {
                format!("cannot load TLS certificate {} and key {}", files.cert.display(), files.key.display())
            })?)
        }
        None => None,
    };
    let scheme = crate::compliance::PublicScheme(if tls.is_some() { "https" } else { "http" });
    let public = common_layers(
        licensee_router(state.clone()).layer(axum::Extension(scheme)),
        proxies.clone(),
        config.request_timeout,
    );
    let admin = common_layers(
        admin_router(state.clone()).layer(axum::Extension(crate::dashboard::AdminTls(tls.is_some()))),
        proxies,
        config.request_timeout,
    );
    let (public_addr, public_handle, public_server) = start(config.listen, public, tls.clone(), "licensee API")?;
    let (admin_addr, admin_handle, admin_server) = start(config.admin_listen, admin, tls.clone(), "admin API")?;

    let background = vec![
        tokio::spawn(refresh_keys(state.clone(), config.poll_interval)),
        tokio::spawn(flush_key_uses(state.clone())),
        tokio::spawn(crate::feed::follow(
            state.feed.clone(),
            state.store.clone(),
            state.index.clone(),
            config.poll_interval,
        )),
    ];
    Ok(RunningGateway {
        public_addr,
        admin_addr,
        scheme: if tls.is_some() { "https" } else { "http" },
        handles: [public_handle, admin_handle],
        servers: vec![public_server, admin_server],
        background,
        state,
    })
}

fn start(
    address: SocketAddr,
    router: Router,
    tls: Option<RustlsConfig>,
    what: &'static str,
) -> anyhow::Result<(SocketAddr, Handle, JoinHandle<std::io::Result<()>>)> {
    let listener =
        std::net::TcpListener::bind(address).with_context(|| format!("cannot listen on {address} for the {what}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let handle = Handle::new();
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let server = match tls {
        Some(tls) => {
            let mut server = axum_server::from_tcp_rustls(listener, tls).handle(handle.clone());
            limit_headers(server.http_builder());
            tokio::spawn(async move { server.serve(service).await })
        }
        None => {
            let mut server = axum_server::from_tcp(listener).handle(handle.clone());
            limit_headers(server.http_builder());
            tokio::spawn(async move { server.serve(service).await })
        }
    };
    tracing::info!(%bound, "{what} listening");
    Ok((bound, handle, server))
}

fn limit_headers(builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_buf_size(MAX_HEADER_BYTES)
        .header_read_timeout(Duration::from_secs(10));
    builder.http2().max_header_list_size(MAX_HEADER_BYTES as u32);
}

impl RunningGateway {
    /// Stops accepting connections and lets in-flight requests finish within `drain`.
    pub fn shutdown(&self, drain: Duration) {
        self.state.shutdown.cancel();
        for handle in &self.handles {
            handle.graceful_shutdown(Some(drain));
        }
    }

    /// Waits until both listeners have stopped, then saves what is still in memory.
    pub async fn wait(self) -> anyhow::Result<()> {
        for server in self.servers {
            server.await.context("server task failed")?.context("server failed")?;
        }
        for task in &self.background {
            task.abort();
        }
        let uses = self.state.keys.take_uses();
        self.state.store.record_key_use(uses).await.context("could not save key use times")?;
        flush_violations(&self.state).await;
        Ok(())
    }
}

/// Polls the store's change counter so keys issued or revoked anywhere take effect here.
async fn refresh_keys(state: AppState, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match state.keys.refresh(state.store.as_ref()).await {
            Ok(true) => match state.terms.reload(state.store.as_ref()).await {
                Ok(()) => tracing::info!("reloaded keys and terms after a change in the store"),
                Err(error) => tracing::warn!(%error, "could not reload terms"),
            },
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "could not poll the store for changes"),
        }
    }
}

/// Writes key `last_used_at` times and violations in batches rather than once per request.
async fn flush_key_uses(state: AppState) {
    let mut interval = tokio::time::interval(Duration::from_millis(500));
    let mut ticks = 0u64;
    loop {
        interval.tick().await;
        ticks += 1;
        flush_violations(&state).await;
        if ticks.is_multiple_of(10) {
            let uses = state.keys.take_uses();
            if let Err(error) = state.store.record_key_use(uses).await {
                tracing::warn!(%error, "could not record key use times");
            }
        }
    }
}

async fn flush_violations(state: &AppState) {
    let violations = state.terms.take_violations();
    if let Err(error) = state.store.record_violations(violations).await {
        tracing::warn!(%error, "could not record violations");
    }
}

pub(crate) fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let client = request.extensions().get::<ClientAddr>().map(|client| client.0);
    let request_id = request.headers().get("x-request-id").and_then(|value| value.to_str().ok()).unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        client = tracing::field::debug(client),
        request_id,
    )
}

pub(crate) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    Problem::plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        ABOUT_BLANK,
        "Internal Error",
        "an internal error occurred; it has been logged",
    )
    .into_response()
}

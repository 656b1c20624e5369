//! The admin dashboard (issue 12): server-rendered HTML on the admin listener, for the people
//! who act on the data (partnerships, finance, legal) rather than read CLI output.
//!
//! - **Who.** Named users with a role (`viewer` reads; `operator` also blocks, unblocks, revokes
//!   keys and runs traces; `admin` also sees the dashboard users), made with `datapact
//!   admin-user add`, log in with their password (argon2id); anyone holding the admin token can
//!   log in with it as the built-in user `admin-token` (role admin).
//! - **Sessions.** A random 256-bit token in a cookie (`HttpOnly; SameSite=Strict; Path=/`, and
//!   `Secure` when the admin listener serves TLS); the store keeps only its SHA-256, with the
//!   user, a CSRF token and the expiry (12 hours).
//! - **Changes.** Every POST checks, in order: a live session, its CSRF token (form field
//!   `csrf` or header `x-csrf-token`, compared in constant time), the role. Any refusal is a 403
//!   HTML page. The change itself is the admin API's own store call, audited under the user's
//!   name (`Change::new(user, now)`), so a block here is exactly `datapact licensee block`.
//! - **Pages** ([`pages`]): overview, licensee, price books, trace ([`trace`]), audit log. Live
//!   numbers: `dashboard.js` polls `/dashboard/live` every 2 s. Charts: inline SVG drawn by
//!   `plotters` on the server ([`chart`]). Assets are compiled in ([`assets`]).

mod assets;
mod chart;
mod layout;
mod pages;
pub mod trace;

use std::collections::HashMap;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use datapact_core::{KeyPrefix, LicenseeStatus, Timestamp};
use datapact_store::admin_users::{ADMIN_TOKEN_USER, AdminRole, AdminSession, NewAdminSession};
use datapact_store::{Change, StoreError};
use maud::{Markup, html};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use trace::{TraceJobs, TraceRunner};

use crate::AppState;
use crate::problem::Problem;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "datapact_session";
/// How long a session lasts after login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The largest leak file the trace page takes.
pub const MAX_LEAK_BYTES: usize = 64 * 1024 * 1024;

/// Failed logins per name (or per admin-token attempt) allowed within [`LOGIN_WINDOW_MS`]; past
/// them the name is refused (429) until the window ends, whatever the password.
pub const MAX_FAILED_LOGINS: u32 = 10;
pub const LOGIN_WINDOW_MS: i64 = 15 * 60 * 1000;

/// Recent failed logins by name: (failures, first failure's time). In this process's memory.
static FAILED_LOGINS: std::sync::LazyLock<std::sync::Mutex<HashMap<String, (u32, Timestamp)>>> =
    std::sync::LazyLock::new(Default::default);

/// Names tracked one by one; past this many within a window, the others share one count.
const MAX_TRACKED_NAMES: usize = 10_000;
const OVERFLOW_NAME: &str = "\u{0}overflow";

/// Counts a login attempt for `name` before its password is checked (so parallel guesses count
/// too) and says whether it may go on; a success clears the count ([`login_succeeded`]).
fn login_attempt(name: &str, now: Timestamp) -> bool {
    let Ok(mut failed) = FAILED_LOGINS.lock() else { return false };
    failed.retain(|_, (_, first)| now.0 - first.0 < LOGIN_WINDOW_MS);
    // Spraying many names cannot push a name out of the count: past the bound, untracked names
    // share one count, and are refused together once it is spent.
    let key = if failed.len() < MAX_TRACKED_NAMES || failed.contains_key(name) { name } else { OVERFLOW_NAME };
    let entry = failed.entry(key.to_owned()).or_insert((0, now));
    if entry.0 >= MAX_FAILED_LOGINS {
        return false;
    }
    entry.0 += 1;
    true
}

fn login_succeeded(name: &str) {
    if let Ok(mut failed) = FAILED_LOGINS.lock() {
        failed.remove(name);
    }
}

/// Password checks running at once: each argon2 check holds 19 MiB and a core, so a flood of
/// logins waits here instead of exhausting memory.
static PASSWORD_CHECKS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()).max(2))
});
/// How long a login waits for a password check before it is told to try again.
const PASSWORD_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Checks `password` against `hash` on the blocking pool, within [`PASSWORD_CHECKS`]; `None`
/// when too many checks are waiting.
async fn check_password(password: String, hash: String) -> Option<bool> {
    let permit = tokio::time::timeout(PASSWORD_CHECK_WAIT, PASSWORD_CHECKS.acquire()).await.ok()?.ok()?;
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await.unwrap_or(false);
    drop(permit);
    Some(matches)
}

/// Whether the admin listener serves TLS: the session cookie is then `Secure`.
#[derive(Clone, Copy, Debug)]
pub struct AdminTls(pub bool);

/// The dashboard's routes, merged into the admin router (outside the admin token's layer: the
/// dashboard has its own sessions).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/dashboard", get(pages::overview))
        .route("/dashboard/login", get(login_page).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/live", get(pages::live))
        .route("/dashboard/licensees/{name}", get(pages::licensee))
        .route("/dashboard/licensees/{name}/block", post(block))
        .route("/dashboard/licensees/{name}/unblock", post(unblock))
        .route("/dashboard/keys/{prefix}/revoke", post(revoke_key))
        .route("/dashboard/price-books", get(pages::price_books))
        .route("/dashboard/audit", get(pages::audit))
        .route("/dashboard/users", get(pages::users))
        .route(
            "/dashboard/trace",
            get(trace::index).post(trace::upload).layer(DefaultBodyLimit::max(MAX_LEAK_BYTES + 64 * 1024)),
        )
        .route("/dashboard/trace/{id}", get(trace::job_page))
        .route("/dashboard/trace/{id}/status", get(trace::job_status))
        .route("/dashboard/assets/{version}/{file}", get(assets::serve))
        // Browsers ask for it on every page; nothing to show, and no 404 in their consoles.
        .route(
            "/favicon.ico",
            get(|| async { (StatusCode::NO_CONTENT, [(header::CACHE_CONTROL, "public, max-age=86400")]) }),
        )
}

/// Hashes a password for storing (argon2id, a random salt; the PHC string).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Checked against for names with no user, so they take as long as a wrong password.
static UNKNOWN_USER_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("no user has this password").unwrap_or_default());

/// Whether `password` matches a stored PHC string.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    cookie_named(headers, SESSION_COOKIE)
}

/// A cookie's value when it is 64 hex digits (every token this module sets).
fn cookie_named(headers: &HeaderMap, cookie: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == cookie)
        .map(|(_, value)| value.to_owned())
        .filter(|value| value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The request's live session, if any.
pub(crate) async fn session(state: &AppState, headers: &HeaderMap) -> Result<Option<AdminSession>, Problem> {
    let Some(token) = cookie_token(headers) else { return Ok(None) };
    Ok(state.store.admin_session(&token_hash(&token), state.clock.now()).await?)
}

/// A page for a logged-in user, or the way to the login page.
pub(crate) async fn viewer(state: &AppState, headers: &HeaderMap) -> Result<AdminSession, Response> {
    match session(state, headers).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(Redirect::to("/dashboard/login").into_response()),
        Err(problem) => Err(error_page(None, &problem)),
    }
}

/// A change: a live session, its CSRF token, and at least `role`; else a 403 page saying which.
pub(crate) async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    role: AdminRole,
) -> Result<AdminSession, Response> {
    let session = match session(state, headers).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            return Err(forbidden(None, "You are not logged in, or your session has ended. Log in again."));
        }
        Err(problem) => return Err(error_page(None, &problem)),
    };
    let presented = form
        .get("csrf")
        .map(String::as_str)
        .or_else(|| headers.get("x-csrf-token").and_then(|value| value.to_str().ok()))
        .unwrap_or("");
    let expected = session.csrf_token.as_bytes();
    if !(presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected))) {
        return Err(forbidden(
            Some(&session),
            "This form did not carry this session's security token (CSRF). Reload the page and try again.",
        ));
    }
    if session.role < role {
        let message =
            format!("Your role ({}) cannot do this: it needs the {} role. Ask an administrator.", session.role, role);
        return Err(forbidden(Some(&session), &message));
    }
    Ok(session)
}

/// The fields of a URL-encoded form body (the last of a repeated name wins).
pub(crate) fn form(body: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default().into_iter().collect()
}

/// Who made a change, for the audit log: the dashboard user's own name.
pub(crate) fn change(state: &AppState, session: &AdminSession) -> Change {
    Change::new(session.user.clone(), state.clock.now())
}

pub(crate) fn forbidden(session: Option<&AdminSession>, message: &str) -> Response {
    let body = html! {
        p role="alert" { (message) }
        p { a href="/dashboard" { "Back to the dashboard" } " · " a href="/dashboard/login" { "Log in" } }
    };
    page_response(StatusCode::FORBIDDEN, layout::page("Not allowed", session, "", body))
}

pub(crate) fn error_page(session: Option<&AdminSession>, problem: &Problem) -> Response {
    let body = html! {
        p role="alert" { (problem.detail) }
        p { a href="/dashboard" { "Back to the dashboard" } }
    };
    page_response(problem.status, layout::page(problem.title, session, "", body))
}

/// An HTML page with the dashboard's security headers.
pub(crate) fn page_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    security_headers(headers);
    response
}

pub(crate) fn security_headers(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
}

fn login_form(error: Option<&str>, nonce: &str) -> Markup {
    let body = html! {
        @if let Some(error) = error { p.error role="alert" { (error) } }
        div.cards {
            section.card aria-labelledby="with-password" {
                h2 #with-password { "With your name and password" }
                form method="post" action="/dashboard/login" {
                    input type="hidden" name="login_csrf" value=(nonce);
                    label for="user" { "Name" }
                    input #user type="text" name="user" autocomplete="username" required;
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                    button type="submit" { "Log in" }
                }
            }
            section.card aria-labelledby="with-token" {
                h2 #with-token { "With the admin token" }
                form method="post" action="/dashboard/login" {
                    input type="hidden" name="login_csrf" value=(nonce);
                    label for="token" { "Admin token" }
                    input #token type="password" name="token" autocomplete="off" required;
                    button type="submit" { "Log in as admin-token" }
                }
            }
        }
    };
    layout::page("Log in", None, "", body)
}

/// The login page sets this cookie and puts its value in its forms; a login must carry both
/// (double submit), so no other site can log a browser in under an account of its choosing.
pub const LOGIN_COOKIE: &str = "datapact_login";

async fn login_page(
    State(state): State<AppState>,
    tls: Option<axum::Extension<AdminTls>>,
    headers: HeaderMap,
) -> Response {
    if let Ok(Some(_)) = session(&state, &headers).await {
        return Redirect::to("/dashboard").into_response();
    }
    let nonce = cookie_named(&headers, LOGIN_COOKIE).unwrap_or_else(random_hex);
    let mut response = page_response(StatusCode::OK, login_form(None, &nonce));
    let secure = if tls.is_some_and(|tls| tls.0.0) { "; Secure" } else { "" };
    let cookie =
        format!("{LOGIN_COOKIE}={nonce}; Path=/dashboard/login; HttpOnly; SameSite=Strict; Max-Age=3600{secure}");
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ASCII cookie"));
    response
}

async fn login(
    State(state): State<AppState>,
    tls: Option<axum::Extension<AdminTls>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    let now = state.clock.now();
    let Some(nonce) = cookie_named(&headers, LOGIN_COOKIE)
        .filter(|nonce| bool::from(nonce.as_bytes().ct_eq(field("login_csrf").as_bytes())))
    else {
        return forbidden(
            None,
            "This login form has expired or did not come from this dashboard: reload the login page.",
        );
    };
    let by_token = !field("token").is_empty();
    let throttle_key = if by_token { format!("token:{ADMIN_TOKEN_USER}") } else { format!("user:{}", field("user")) };
    if !login_attempt(&throttle_key, now) {
        tracing::warn!(user = field("user"), "dashboard login refused: too many failures");
        let message = format!("Too many failed logins: wait {} minutes and try again.", LOGIN_WINDOW_MS / 60_000);
        return page_response(StatusCode::TOO_MANY_REQUESTS, login_form(Some(&message), &nonce));
    }
    let who = if by_token {
        let (presented, expected) = (field("token").as_bytes(), state.admin_token.as_bytes());
        (presented.len() == expected.len() && bool::from(presented.ct_eq(expected)))
            .then(|| (ADMIN_TOKEN_USER.to_owned(), AdminRole::Admin))
    } else {
        let (name, password) = (field("user").to_owned(), field("password").to_owned());
        let (user, hash) = match state.store.admin_user(&name).await {
            Ok(Some(user)) if user.disabled_at.is_none() => {
                let hash = user.password_hash.clone();
                (Some(user), hash)
            }
            // As long as a wrong password, so timing does not tell which names exist.
            Ok(_) => (None, UNKNOWN_USER_HASH.clone()),
            Err(error) => return error_page(None, &Problem::from(error)),
        };
        let Some(matches) = check_password(password, hash).await else {
            let message = "Too many logins at once: try again in a moment.";
            return page_response(StatusCode::SERVICE_UNAVAILABLE, login_form(Some(message), &nonce));
        };
        user.filter(|_| matches).map(|user| (user.name, user.role))
    };
    let Some((user, role)) = who else {
        tracing::warn!(user = field("user"), "dashboard login refused");
        return page_response(StatusCode::UNAUTHORIZED, login_form(Some("Wrong name, password or token."), &nonce));
    };
    let token = random_hex();
    let session = NewAdminSession {
        token_hash: token_hash(&token),
        user: user.clone(),
        role,
        csrf_token: random_hex(),
        created_at: now,
        expires_at: Timestamp(now.0 + SESSION_LIFETIME.as_millis() as i64),
    };
    if let Err(error) = state.store.create_admin_session(session, &Change::new(user.clone(), now)).await {
        return error_page(None, &Problem::from(error));
    }
    login_succeeded(&throttle_key);
    tracing::info!(user, %role, "dashboard login");
    let secure = tls.is_some_and(|tls| tls.0.0);
    let cookie = session_cookie(&token, SESSION_LIFETIME.as_secs(), secure);
    let mut response = Redirect::to("/dashboard").into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ASCII cookie"));
    response
}

/// The session cookie: never readable by scripts, never sent from another site.
pub fn session_cookie(token: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}")
}

async fn logout(
    State(state): State<AppState>,
    tls: Option<axum::Extension<AdminTls>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let session = match authorize(&state, &headers, &form(&body), AdminRole::Viewer).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    if let Some(token) = cookie_token(&headers)
        && let Err(error) = state.store.end_admin_session(&token_hash(&token)).await
    {
        return error_page(Some(&session), &Problem::from(error));
    }
    if let Err(error) =
        state.store.record_audit(&change(&state, &session), "dashboard.logout", &session.user, None).await
    {
        tracing::warn!(%error, "could not audit a logout");
    }
    let secure = tls.is_some_and(|tls| tls.0.0);
    let mut response = Redirect::to("/dashboard/login").into_response();
    let cookie = session_cookie("", 0, secure);
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ASCII cookie"));
    response
}

/// Where to go after a change: back to the licensee's page.
fn to_licensee(name: &str) -> Response {
    Redirect::to(&format!("/dashboard/licensees/{}", pages::path_segment(name))).into_response()
}

async fn block(State(state): State<AppState>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = form(&body);
    let session = match authorize(&state, &headers, &fields, AdminRole::Operator).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let reason = fields.get("reason").map(|r| r.trim()).unwrap_or("");
    // The admin API's and the CLI's own call: the same checks, the same audit entry.
    let result =
        state.store.set_licensee_status(&name, LicenseeStatus::Blocked, reason, &change(&state, &session)).await;
    done(&session, result.map(drop), &name)
}

async fn unblock(State(state): State<AppState>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let session = match authorize(&state, &headers, &form(&body), AdminRole::Operator).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let result = state.store.set_licensee_status(&name, LicenseeStatus::Active, "", &change(&state, &session)).await;
    done(&session, result.map(drop), &name)
}

async fn revoke_key(
    State(state): State<AppState>,
    Path(prefix): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let session = match authorize(&state, &headers, &form(&body), AdminRole::Operator).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    match state.store.revoke_key(&KeyPrefix(prefix), &change(&state, &session)).await {
        Ok(record) => to_licensee(&record.licensee),
        Err(error) => error_page(Some(&session), &Problem::from(error)),
    }
}

fn done(session: &AdminSession, result: Result<(), StoreError>, licensee: &str) -> Response {
    match result {
        Ok(()) => to_licensee(licensee),
        Err(error) => error_page(Some(session), &Problem::from(error)),
    }
}

#[cfg(test)]
mod tests;

//! The dashboard in process, on the embedded store: logins, sessions, CSRF, roles, the audit.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use datapact_core::{LicenseeStatus, Timestamp};
use datapact_store::admin_users::{AdminRole, NewAdminUser};
use datapact_store::{Change, SqliteStore, Store};
use tower::ServiceExt;

use super::{hash_password, session_cookie};
use crate::AppState;

const PASSWORD: &str = "correct horse battery";

struct Setup {
    _dir: tempfile::TempDir,
    state: AppState,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let cli = Change::new("cli@test", Timestamp(1_790_000_000_000));
    store.create_licensee("acme", &cli).await.unwrap();
    let hash = hash_password(PASSWORD).unwrap();
    for (name, role) in [("olga", AdminRole::Operator), ("vic", AdminRole::Viewer)] {
        let user = NewAdminUser { name: name.into(), role, password_hash: hash.clone() };
        store.add_admin_user(user, &cli).await.unwrap();
    }
    let state = crate::test_state(store, dir.path()).await;
    Setup { _dir: dir, state }
}

fn form_post(uri: &str, body: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = crate::admin_router(state.clone()).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 24).await.unwrap();
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

/// Posts the login form as a browser does: the login page first (its cookie and form nonce).
async fn login_post(state: &AppState, body: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let (status, headers, page) = send(state, Request::get("/dashboard/login").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("datapact_login="), "{cookie}");
    let nonce = page.split("name=\"login_csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    send(state, form_post("/dashboard/login", &format!("{body}&login_csrf={nonce}"), Some(&cookie))).await
}

/// Logs in; returns the cookie (`name=value`) and the session's CSRF token (from a page's form).
async fn login(state: &AppState, user: &str) -> (String, String) {
    let (status, headers, _) = login_post(state, &format!("user={user}&password={PASSWORD}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let set_cookie = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let (status, _, page) =
        send(state, Request::get("/dashboard").header(header::COOKIE, &cookie).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    (cookie, csrf)
}

#[tokio::test]
async fn a_wrong_password_or_token_is_refused_and_makes_no_session() {
    let s = setup().await;
    for body in ["user=olga&password=wrong", "user=nobody&password=whatever", "token=not-the-token", "user=&password="]
    {
        let (status, headers, page) = login_post(&s.state, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(headers.get(header::SET_COOKIE).is_none(), "{body}");
        assert!(page.contains("Wrong name, password or token."), "{page}");
    }
    // Not logged in: pages send to the login page.
    let (status, headers, _) = send(&s.state, Request::get("/dashboard").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/dashboard/login");
    // The admin token logs in as the built-in admin-token user.
    let (status, _, _) = login_post(&s.state, "token=unused").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_session_cookie_is_http_only_same_site_strict_and_secure_behind_tls() {
    let s = setup().await;
    let (_, headers, _) = login_post(&s.state, &format!("user=olga&password={PASSWORD}")).await;
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    for attribute in ["; Path=/", "; HttpOnly", "; SameSite=Strict", "; Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let value = cookie.split(';').next().unwrap().strip_prefix("datapact_session=").unwrap();
    assert_eq!(value.len(), 64);
    assert!(session_cookie("abc", 10, true).ends_with("; Secure"));
    // The store keeps the token's hash, never the token.
    let stored = s.state.store.admin_session(value, s.state.clock.now()).await.unwrap();
    assert!(stored.is_none(), "the raw token is not a key of the session table");
}

#[tokio::test]
async fn a_change_without_the_csrf_token_is_refused_with_a_page() {
    let s = setup().await;
    let (cookie, csrf) = login(&s.state, "olga").await;
    for body in [
        "reason=leaked".to_owned(),
        "reason=leaked&csrf=wrong".to_owned(),
        format!("reason=leaked&csrf={}", &csrf[..63]),
    ] {
        let (status, headers, page) =
            send(&s.state, form_post("/dashboard/licensees/acme/block", &body, Some(&cookie))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
        assert!(page.contains("CSRF"), "{page}");
    }
    // No session at all: refused too.
    let (status, _, page) =
        send(&s.state, form_post("/dashboard/licensees/acme/block", &format!("reason=x&csrf={csrf}"), None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("not logged in"), "{page}");
    let acme = s.state.store.licensee("acme").await.unwrap().unwrap();
    assert_eq!(acme.status, LicenseeStatus::Active);
}

#[tokio::test]
async fn a_viewer_cannot_block() {
    let s = setup().await;
    let (cookie, csrf) = login(&s.state, "vic").await;
    let (status, _, page) = send(
        &s.state,
        form_post("/dashboard/licensees/acme/block", &format!("reason=leaked&csrf={csrf}"), Some(&cookie)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("needs the operator role"), "{page}");
    // The page shows a viewer no block button.
    let (_, _, page) = send(
        &s.state,
        Request::get("/dashboard/licensees/acme").header(header::COOKIE, &cookie).body(Body::empty()).unwrap(),
    )
    .await;
    assert!(!page.contains("/block\""), "{page}");
    assert_eq!(s.state.store.licensee("acme").await.unwrap().unwrap().status, LicenseeStatus::Active);
}

#[tokio::test]
async fn an_operator_block_is_the_admin_apis_and_audited_under_the_users_name() {
    let s = setup().await;
    let (cookie, csrf) = login(&s.state, "olga").await;
    let (status, headers, _) = send(
        &s.state,
        form_post(
            "/dashboard/licensees/acme/block",
            &format!("reason=scraping+beyond+terms&csrf={csrf}"),
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/dashboard/licensees/acme");
    assert_eq!(s.state.store.licensee("acme").await.unwrap().unwrap().status, LicenseeStatus::Blocked);
    let audit = s.state.store.audit_log(10).await.unwrap();
    let block = audit.iter().find(|e| e.action == "licensee.block").expect("audited");
    assert_eq!((block.actor.as_str(), block.subject.as_str()), ("olga", "acme"));
    assert!(audit.iter().any(|e| e.action == "dashboard.login" && e.actor == "olga"));
    // The CSRF token also works as a header (scripts), and unblocking is audited likewise.
    let request = Request::post("/dashboard/licensees/acme/unblock")
        .header(header::COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&s.state, request).await.0, StatusCode::SEE_OTHER);
    let audit = s.state.store.audit_log(10).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "licensee.unblock" && e.actor == "olga"), "{audit:?}");
    // Logging out ends the session.
    let (status, _, _) = send(&s.state, form_post("/dashboard/logout", &format!("csrf={csrf}"), Some(&cookie))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let audit = s.state.store.audit_log(1).await.unwrap();
    assert_eq!((audit[0].action.as_str(), audit[0].actor.as_str()), ("dashboard.logout", "olga"));
    let (status, _, _) =
        send(&s.state, Request::get("/dashboard").header(header::COOKIE, &cookie).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn every_page_renders_for_a_viewer() {
    let s = setup().await;
    let (cookie, _) = login(&s.state, "vic").await;
    for path in
        ["/dashboard", "/dashboard/licensees/acme", "/dashboard/price-books", "/dashboard/audit", "/dashboard/trace"]
    {
        let (status, headers, page) =
            send(&s.state, Request::get(path).header(header::COOKIE, &cookie).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("script-src 'self'"));
        assert!(page.starts_with("<!DOCTYPE html>"), "{path}");
    }
    // Admin-only.
    let (status, _, _) =
        send(&s.state, Request::get("/dashboard/users").header(header::COOKIE, &cookie).body(Body::empty()).unwrap())
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, page) = send(
        &s.state,
        Request::get("/dashboard/licensees/nobody").header(header::COOKIE, &cookie).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_name_for_a_while() {
    let s = setup().await;
    // A name of this test's own: the count is process-wide.
    let hash = hash_password(PASSWORD).unwrap();
    let user = NewAdminUser { name: "throttled".into(), role: AdminRole::Viewer, password_hash: hash };
    s.state.store.add_admin_user(user, &Change::new("cli@test", s.state.clock.now())).await.unwrap();
    for _ in 0..super::MAX_FAILED_LOGINS {
        let (status, _, _) = login_post(&s.state, "user=throttled&password=wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let right = format!("user=throttled&password={PASSWORD}");
    let (status, headers, page) = login_post(&s.state, &right).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert!(page.contains("Too many failed logins"), "{page}");
    // Other names are not affected.
    let (status, _, _) = login_post(&s.state, &format!("user=vic&password={PASSWORD}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_login_without_the_login_pages_nonce_is_refused() {
    let s = setup().await;
    let right = format!("user=olga&password={PASSWORD}");
    // No cookie, no nonce: a form posted from another site.
    let (status, headers, page) = send(&s.state, form_post("/dashboard/login", &right, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(headers.get(header::SET_COOKIE).is_none());
    // A nonce that is not the cookie's.
    let cookie = format!("datapact_login={}", "a".repeat(64));
    let body = format!("{right}&login_csrf={}", "b".repeat(64));
    let (status, _, _) = send(&s.state, form_post("/dashboard/login", &body, Some(&cookie))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = login_post(&s.state, &right).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn violations_this_month_count_only_this_months() {
    use datapact_store::ViolationEvent;
    let s = setup().await;
    let acme = s.state.store.licensee("acme").await.unwrap().unwrap();
    let now = s.state.clock.now();
    let event = |at: Timestamp, n: usize| ViolationEvent {
        licensee_id: acme.id,
        kind: "rate_limited".into(),
        at,
        request_id: format!("r{n}"),
        client: "203.0.113.9".into(),
    };
    // Five 40 days ago (last month at the latest), two now: the running total is seven.
    let mut events: Vec<_> = (0..5).map(|n| event(now.plus_millis(-40 * 86_400_000), n)).collect();
    events.extend((5..7).map(|n| event(now, n)));
    s.state.store.record_violations(events).await.unwrap();
    let (cookie, _) = login(&s.state, "vic").await;
    let get = |uri: &str| Request::get(uri).header(header::COOKIE, &cookie).body(Body::empty()).unwrap();
    let (status, _, live) = send(&s.state, get("/dashboard/live")).await;
    assert_eq!(status, StatusCode::OK, "{live}");
    let live: serde_json::Value = serde_json::from_str(&live).unwrap();
    assert_eq!(live["violations_month"], "2", "{live}");
    let (_, _, overview) = send(&s.state, get("/dashboard")).await;
    assert!(overview.contains("<td>rate_limited</td><td class=\"num\">2</td>"), "{overview}");
    // The licensee page keeps the all-time totals, and says so.
    let (_, _, page) = send(&s.state, get("/dashboard/licensees/acme")).await;
    assert!(page.contains("Violations (all time)") && page.contains("<td class=\"num\">7</td>"), "{page}");
}

fn multipart(fields: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "datapact-test-boundary";
    let mut body = Vec::new();
    for (name, file_name, value) in fields {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes());
        if let Some(file_name) = file_name {
            body.extend_from_slice(format!("; filename=\"{file_name}\"\r\nContent-Type: text/plain").as_bytes());
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn a_trace_upload_is_refused_before_it_is_read_unless_the_session_csrf_and_role_check_out() {
    let s = setup().await;
    let upload = |cookie: Option<&str>, fields: &[(&str, Option<&str>, &[u8])]| {
        let (content_type, body) = multipart(fields);
        let mut request = Request::post("/dashboard/trace").header(header::CONTENT_TYPE, content_type);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.body(Body::from(body)).unwrap()
    };
    let big = vec![b'x'; 4 * 1024 * 1024];
    // No session: 403 (the 4 MB field is never read into memory).
    let (status, _, page) = send(&s.state, upload(None, &[("padding", None, &big)])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("not logged in"), "{page}");
    // A session, but a form field far longer than any token: refused as a bad upload.
    let (cookie, csrf) = login(&s.state, "olga").await;
    let (status, _, page) = send(&s.state, upload(Some(&cookie), &[("padding", None, &big)])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("too long"), "{page}");
    // The file without this session's CSRF token: refused.
    let (status, _, page) =
        send(&s.state, upload(Some(&cookie), &[("csrf", None, b"0000"), ("leak", Some("leak.txt"), b"a post")])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    // A viewer with its own token: refused by role.
    let (viewer, viewer_csrf) = login(&s.state, "vic").await;
    let fields: &[(&str, Option<&str>, &[u8])] =
        &[("csrf", None, viewer_csrf.as_bytes()), ("leak", Some("leak.txt"), b"a post")];
    let (status, _, page) = send(&s.state, upload(Some(&viewer), fields)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("role"), "{page}");
    // The operator with its token gets as far as the runner (none in this test state).
    let fields: &[(&str, Option<&str>, &[u8])] =
        &[("csrf", None, csrf.as_bytes()), ("leak", Some("leak.txt"), b"a post")];
    let (status, _, page) = send(&s.state, upload(Some(&cookie), fields)).await;
    assert!(page.contains("Tracing is not available") || status == StatusCode::SEE_OTHER, "{status} {page}");
}

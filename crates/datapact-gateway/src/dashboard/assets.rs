//! The dashboard's stylesheet and script, compiled into the binary (no CDN, nothing fetched at
//! run time) and served under a path naming their content's hash, so they are cached for a year.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

static VERSION: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::new().chain_update(CSS).chain_update(JS).finalize();
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
});

pub fn css_path() -> String {
    format!("/dashboard/assets/{}/dashboard.css", *VERSION)
}

pub fn js_path() -> String {
    format!("/dashboard/assets/{}/dashboard.js", *VERSION)
}

pub async fn serve(Path((version, file)): Path<(String, String)>) -> Response {
    let (body, kind) = match file.as_str() {
        "dashboard.css" => (CSS, "text/css; charset=utf-8"),
        "dashboard.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    // Another version's path still gets today's content, but not cached.
    let cache = if version == *VERSION { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

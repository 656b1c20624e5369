//! Errors as RFC 9457 problem details, in the shape the X API uses.
//!
//! X puts parameter errors in an `errors` array beside `title`, `detail` and `type`; clients such
//! as tweepy read `errors[].message`, then `detail`, then `title`. Every error response here has
//! all three, with `status`, and the `application/problem+json` content type.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use datapact_store::StoreError;
use serde_json::{Value, json};

pub const INVALID_REQUEST: &str = "https://api.twitter.com/2/problems/invalid-request";
pub const RESOURCE_NOT_FOUND: &str = "https://api.twitter.com/2/problems/resource-not-found";
pub const CONFLICT: &str = "https://api.twitter.com/2/problems/duplicate-rules";
pub const ABOUT_BLANK: &str = "about:blank";

/// An error response. Build with the constructors; render with `IntoResponse`.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// X's `errors` array: one entry per offending parameter.
    pub errors: Vec<Value>,
    /// X's machine-readable `reason` on client-forbidden problems.
    pub reason: Option<&'static str>,
    /// At a hard usage cap: when it resets (reported in `x-rate-limit-reset` and `retry-after`).
    pub cap_reset: Option<datapact_core::Timestamp>,
}

/// The violation a refusal decided past the terms layer stands for (a hard cap, a spent prepaid
/// credit), set on its response for the terms layer to record like its own refusals.
#[derive(Clone, Copy, Debug)]
pub struct Violation(pub &'static str);

impl Problem {
    /// The violation kind of a refusal the metering decides, by its problem type.
    fn violation(&self) -> Option<&'static str> {
        match self.kind {
            datapact_ledger::USAGE_CAPPED => Some("usage_capped"),
            crate::metering::CREDITS_DEPLETED => Some("credits_depleted"),
            _ => None,
        }
    }
}

impl Problem {
    /// A bad query parameter, as X reports it: `errors[{parameters: {name: [value]}, message}]`.
    pub fn invalid_parameter(name: &str, value: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Problem {
            status: StatusCode::BAD_REQUEST,
            kind: INVALID_REQUEST,
            title: "Invalid Request",
            detail: "One or more parameters to your request was invalid.".into(),
            errors: vec![json!({ "parameters": { name: [value] }, "message": message })],
            reason: None,
            cap_reset: None,
        }
    }

    /// A bad request that is not about one parameter (a malformed body, query string, path).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        let message = message.into();
        Problem {
            status: StatusCode::BAD_REQUEST,
            kind: INVALID_REQUEST,
            title: "Invalid Request",
            detail: message.clone(),
            errors: vec![json!({ "message": message })],
            reason: None,
            cap_reset: None,
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::plain(StatusCode::UNAUTHORIZED, ABOUT_BLANK, "Unauthorized", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::plain(StatusCode::NOT_FOUND, RESOURCE_NOT_FOUND, "Not Found Error", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::plain(StatusCode::CONFLICT, ABOUT_BLANK, "Conflict", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::plain(StatusCode::SERVICE_UNAVAILABLE, ABOUT_BLANK, "Service Unavailable", detail)
    }

    pub fn plain(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Problem {
            status,
            kind,
            title,
            errors: vec![json!({ "message": detail })],
            detail,
            reason: None,
            cap_reset: None,
        }
    }

    /// A refusal by the terms (403, 429), with X's `reason`.
    pub fn from_refusal(refusal: &datapact_terms::Refusal) -> Self {
        let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::FORBIDDEN);
        let mut problem = Problem::plain(status, refusal.type_uri, refusal.title, refusal.detail.clone());
        problem.reason = Some(refusal.reason);
        problem
    }

    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "title": self.title,
            "detail": self.detail,
            "type": self.kind,
            "status": self.status.as_u16(),
            "errors": self.errors,
        });
        if let Some(reason) = self.reason {
            body["reason"] = json!(reason);
        }
        body
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.to_json())).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(reset) = self.cap_reset {
            response.extensions_mut().insert(crate::metering::CapReset(reset));
        }
        if let Some(kind) = self.violation() {
            response.extensions_mut().insert(Violation(kind));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(detail) => Problem::not_found(detail),
            StoreError::Conflict(detail) => Problem::conflict(detail),
            StoreError::Invalid(detail) => Problem::invalid_request(detail),
            StoreError::Unavailable(detail) => {
                tracing::error!(%detail, "store unavailable");
                Problem::unavailable("the data store is unavailable; retry shortly")
            }
        }
    }
}

/// The problem type of per-resource errors. X's own SDK (xdk) validates these against the
/// api.x.com host, while tweepy and twarc ignore the host; top-level problems keep the
/// api.twitter.com types that clients and the field notes name.
pub const RESOURCE_NOT_FOUND_X: &str = "https://api.x.com/2/problems/resource-not-found";

/// A per-resource error inside a 200 response (`errors[]` beside `data`), as X reports unknown ids.
pub fn resource_not_found(resource_type: &str, parameter: &str, id: &str) -> Value {
    let noun = if resource_type == "tweet" { "tweet" } else { "user" };
    json!({
        "value": id,
        "detail": format!("Could not find {noun} with {parameter}: [{id}]."),
        "title": "Not Found Error",
        "resource_type": resource_type,
        "parameter": parameter,
        "resource_id": id,
        "type": RESOURCE_NOT_FOUND_X,
    })
}

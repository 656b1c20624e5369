//! Extractors whose rejections are problem details rather than axum's plain-text errors.

use axum::extract::FromRequest;
use axum::extract::rejection::{JsonRejection, QueryRejection};

use crate::problem::Problem;

/// A JSON request body; a malformed one is a 400 problem that says what is wrong.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub struct JsonBody<T>(pub T);

/// A typed query string; a malformed one is a 400 problem.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub struct TypedQuery<T>(pub T);

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        let mut problem = Problem::invalid_request(rejection.body_text());
        if rejection.status() == axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE {
            problem.status = rejection.status();
            problem.title = "Unsupported Media Type";
        }
        problem
    }
}

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Self {
        Problem::invalid_request(rejection.body_text())
    }
}

/// A raw request body; one that cannot be read (too large, cut short) is a problem: 413 when it
/// is over the route's limit, else 400.
pub struct BodyBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for BodyBytes {
    type Rejection = Problem;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Problem> {
        match axum::body::Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(BodyBytes(bytes)),
            Err(rejection) => {
                let mut problem = Problem::invalid_request(rejection.body_text());
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    problem.status = rejection.status();
                    problem.title = "Payload Too Large";
                }
                Err(problem)
            }
        }
    }
}

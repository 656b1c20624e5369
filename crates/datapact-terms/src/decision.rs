//! The order in which a request is judged, as a pure function, and the problems it answers with.

use std::net::IpAddr;

use datapact_core::{Endpoint, LicenseeStatus, Timestamp};
use serde::Serialize;

use crate::agreement::{Agreement, purpose_allowed};
use crate::limiter::RateDecision;
use crate::purpose::Purpose;

/// X's problem type for a client refused access (used for every 403 here; X has no more specific type for these).
pub const CLIENT_FORBIDDEN: &str = "https://api.twitter.com/2/problems/client-forbidden";

/// What kind of breach a refusal records (the violations log groups by it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// Past the rate limit of an endpoint (429).
    RateLimited,
    /// The licensee is blocked (403).
    Blocked,
    /// Outside the term `[starts, ends)`, or no agreement at all (403).
    OutsideTerm,
    /// The client address is outside `allowed_networks` (403).
    NetworkNotAllowed,
    /// The endpoint is not in the agreement (403).
    EndpointNotAllowed,
    /// The key's purpose is not granted (403).
    PurposeNotAllowed,
}

impl ViolationKind {
    /// Every kind, in decision order (rate limiting last).
    pub const ALL: [ViolationKind; 6] = [
        ViolationKind::RateLimited,
        ViolationKind::Blocked,
        ViolationKind::OutsideTerm,
        ViolationKind::NetworkNotAllowed,
        ViolationKind::EndpointNotAllowed,
        ViolationKind::PurposeNotAllowed,
    ];

    /// Stable name for storage and JSON (`rate_limited`, `outside_term`, ...), as the store's `ViolationEvent::kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::RateLimited => "rate_limited",
            ViolationKind::Blocked => "blocked",
            ViolationKind::OutsideTerm => "outside_term",
            ViolationKind::NetworkNotAllowed => "network_not_allowed",
            ViolationKind::EndpointNotAllowed => "endpoint_not_allowed",
            ViolationKind::PurposeNotAllowed => "purpose_not_allowed",
        }
    }

    /// Reads a name written by [`ViolationKind::as_str`].
    pub fn parse(name: &str) -> Option<ViolationKind> {
        ViolationKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// A refused request: the RFC 9457 problem to answer with and the violation to record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The violation to record.
    pub kind: ViolationKind,
    /// HTTP status (403 or 429).
    pub status: u16,
    /// Problem `type` URI.
    #[serde(rename = "type")]
    pub type_uri: &'static str,
    /// Problem `title`.
    pub title: &'static str,
    /// Names the reason, phrased for the licensee's developers.
    pub detail: String,
    /// Machine-readable reason, X-style (its client-forbidden problems carry `reason`): equals `kind.as_str()`.
    pub reason: &'static str,
}

impl Refusal {
    fn forbidden(kind: ViolationKind, detail: String) -> Refusal {
        Refusal {
            kind,
            status: 403,
            type_uri: CLIENT_FORBIDDEN,
            title: "Client Forbidden",
            detail,
            reason: kind.as_str(),
        }
    }

    /// 403 for a licensee that has no agreement at all (e.g. pruned from the terms); recorded as outside term.
    pub fn no_agreement(licensee: &str) -> Refusal {
        Refusal::forbidden(
            ViolationKind::OutsideTerm,
            format!("Licensee {licensee} has no agreement in force; contact the data provider."),
        )
    }

    /// 429 past the rate limit, shaped like X's (`title` and `detail` "Too Many Requests", `type` about:blank);
    /// send it with `decision.headers(endpoint)` (`x-rate-limit-remaining: 0`, the true reset) and, if wanted,
    /// `retry-after: decision.reset_after_s`.
    pub fn rate_limited(endpoint: Endpoint, decision: &RateDecision) -> Refusal {
        Refusal {
            kind: ViolationKind::RateLimited,
            status: 429,
            type_uri: "about:blank",
            title: "Too Many Requests",
            detail: format!(
                "Too Many Requests: the {endpoint} limit is {} requests per {} s; the window resets at {} (in {} s).",
                decision.limit, decision.window_s, decision.reset_epoch_s, decision.reset_after_s
            ),
            reason: ViolationKind::RateLimited.as_str(),
        }
    }
}

/// The facts a request is judged by, beyond the agreement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestFacts<'a> {
    /// The licensee's status.
    pub status: LicenseeStatus,
    /// Why the licensee is blocked (shown in the 403 when not empty).
    pub reason: &'a str,
    /// The key's purpose.
    pub purpose: Purpose,
    /// The endpoint family called.
    pub endpoint: Endpoint,
    /// The attributed client address (after trusted proxies).
    pub client_ip: IpAddr,
    /// The time of the request.
    pub now: Timestamp,
}

/// The 403 steps of the decision order, in order: blocked → outside term → network not allowed → endpoint not
/// allowed → purpose not allowed. Returns the first that fails. (401 comes before; 402, 400 and 429 after, elsewhere.)
pub fn decide(agreement: &Agreement, request: &RequestFacts<'_>) -> Result<(), Refusal> {
    let licensee = &agreement.licensee;
    if request.status == LicenseeStatus::Blocked {
        let detail = if request.reason.trim().is_empty() {
            format!("Licensee {licensee} is blocked; contact the data provider.")
        } else {
            format!("Licensee {licensee} is blocked: {}", request.reason.trim())
        };
        return Err(Refusal::forbidden(ViolationKind::Blocked, detail));
    }
    if !agreement.in_term(request.now) {
        let term = format!(
            "[{}, {})",
            agreement.starts_at.map_or("-".into(), |t| t.to_x_string()),
            agreement.ends_at.map_or("-".into(), |t| t.to_x_string())
        );
        let when = if agreement.starts_at.is_some_and(|s| request.now < s) { "has not started" } else { "has ended" };
        return Err(Refusal::forbidden(
            ViolationKind::OutsideTerm,
            format!("The agreement of licensee {licensee} {when}: its term is {term}."),
        ));
    }
    if !agreement.network_allowed(request.client_ip) {
        return Err(Refusal::forbidden(
            ViolationKind::NetworkNotAllowed,
            format!(
                "Requests from {} are not allowed for licensee {licensee}; call from an allowed network.",
                request.client_ip.to_canonical()
            ),
        ));
    }
    if !agreement.endpoint_allowed(request.endpoint) {
        return Err(Refusal::forbidden(
            ViolationKind::EndpointNotAllowed,
            format!(
                "The {} endpoint is not part of licensee {licensee}'s agreement (plan {}).",
                request.endpoint, agreement.plan
            ),
        ));
    }
    if !purpose_allowed(agreement, request.purpose) {
        return Err(Refusal::forbidden(
            ViolationKind::PurposeNotAllowed,
            format!(
                "The purpose {} is not allowed by licensee {licensee}'s agreement (allowed: {}).",
                request.purpose,
                agreement.purposes.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    Ok(())
}

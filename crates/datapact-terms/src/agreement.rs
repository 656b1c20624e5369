//! The effective agreement: a plan merged with one licensee's overrides.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use datapact_core::{Endpoint, Timestamp};
use ipnet::IpNet;
use serde::Serialize;

use crate::limit::{RateLimit, Span};
use crate::model::{CapMode, Dedup, LicenseeTerms, MonthlyRecords, Plan};
use crate::purpose::{Purpose, purposes_cover};

/// Everything a request of one licensee is judged by, fully resolved (serialized for `terms show --json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Agreement {
    /// The licensee's name.
    pub licensee: String,
    /// The plan the agreement is based on.
    pub plan: String,
    /// Cap on counted records per calendar month (UTC); `None` = unlimited.
    pub monthly_records: Option<u64>,
    /// What happens past `monthly_records`.
    pub cap: CapMode,
    /// One per allowed endpoint (guaranteed by [`Agreement::resolve`]), possibly more.
    #[serde(with = "crate::model::endpoint_map")]
    pub rate_limits: BTreeMap<Endpoint, RateLimit>,
    /// Endpoints the licensee may call.
    #[serde(with = "crate::model::endpoint_set")]
    pub endpoints: BTreeSet<Endpoint>,
    /// Purposes granted; see [`Purpose`] for the hierarchy.
    pub purposes: BTreeSet<Purpose>,
    /// How repeated deliveries are counted.
    pub dedup: Dedup,
    /// Whether served posts carry the licensee's fingerprint.
    pub fingerprint: bool,
    /// Whether records are paid from a prepaid credit as they are delivered.
    pub prepaid: bool,
    /// Share of served posts that are canaries, in parts per million.
    pub canary_ppm: u32,
    /// How soon a deletion must reach the licensee's copy; `None` = not set.
    pub deletion_deadline: Option<Span>,
    /// First instant of the term (inclusive); `None` = unbounded.
    pub starts_at: Option<Timestamp>,
    /// First instant after the term (exclusive); `None` = open-ended.
    pub ends_at: Option<Timestamp>,
    /// `None` = any client address.
    pub allowed_networks: Option<Vec<IpNet>>,
}

impl Agreement {
    /// Merges `licensee`'s overrides over `plan`: each overridden field replaces the plan's, except `rate_limits`,
    /// merged per endpoint. Fails (with a message naming the endpoints) if an allowed endpoint ends up without a
    /// rate limit, or if `licensee` names another plan.
    pub fn resolve(plan: &Plan, licensee: &LicenseeTerms) -> Result<Agreement, String> {
        if licensee.plan != plan.name {
            return Err(format!("licensee {:?} is on plan {:?}, not {:?}", licensee.name, licensee.plan, plan.name));
        }
        let o = &licensee.overrides;
        let mut rate_limits = plan.rate_limits.clone();
        rate_limits.extend(o.rate_limits.iter().map(|(e, r)| (*e, *r)));
        let endpoints = o.endpoints.clone().unwrap_or_else(|| plan.endpoints.clone());
        let unlimited: Vec<&str> =
            endpoints.iter().filter(|e| !rate_limits.contains_key(e)).map(|e| e.as_str()).collect();
        if !unlimited.is_empty() {
            return Err(format!(
                "endpoint(s) {} are allowed but have no rate limit in plan {:?} or this licensee: add them to `rate_limits`, such as {} = \"60/15m\"",
                unlimited.join(", "),
                plan.name,
                unlimited[0]
            ));
        }
        Ok(Agreement {
            licensee: licensee.name.clone(),
            plan: plan.name.clone(),
            monthly_records: o.monthly_records.map_or(plan.monthly_records, MonthlyRecords::limit),
            cap: o.cap.unwrap_or(plan.cap),
            rate_limits,
            endpoints,
            purposes: o.purposes.clone().unwrap_or_else(|| plan.purposes.clone()),
            dedup: o.dedup.unwrap_or(plan.dedup),
            fingerprint: o.fingerprint.unwrap_or(plan.fingerprint),
            prepaid: o.prepaid.unwrap_or(plan.prepaid),
            canary_ppm: o.canary_ppm.unwrap_or(plan.canary_ppm),
            deletion_deadline: o.deletion_deadline.or(plan.deletion_deadline),
            starts_at: licensee.starts_at(),
            ends_at: licensee.ends_at(),
            allowed_networks: licensee.allowed_networks.clone(),
        })
    }

    /// The rate limit of `endpoint`, if the agreement has one (every allowed endpoint does).
    pub fn rate_limit(&self, endpoint: Endpoint) -> Option<RateLimit> {
        self.rate_limits.get(&endpoint).copied()
    }

    /// Whether `now` is inside the term `[starts, ends)`.
    pub fn in_term(&self, now: Timestamp) -> bool {
        self.starts_at.is_none_or(|s| now >= s) && self.ends_at.is_none_or(|e| now < e)
    }

    /// Whether `client` may call. IPv4-mapped IPv6 addresses (`::ffff:203.0.113.7`) count as their IPv4 address.
    pub fn network_allowed(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.allowed_networks.as_ref().is_none_or(|nets| nets.iter().any(|n| n.contains(&client)))
    }

    /// Whether `endpoint` is part of the agreement.
    pub fn endpoint_allowed(&self, endpoint: Endpoint) -> bool {
        self.endpoints.contains(&endpoint)
    }
}

/// Whether a key with `purpose` may be issued for (and used under) `agreement`; see [`Purpose`] for the hierarchy.
pub fn purpose_allowed(agreement: &Agreement, purpose: Purpose) -> bool {
    purposes_cover(&agreement.purposes, purpose)
}

//! The terms as data: plans, licensee agreements (a plan plus overrides), and the state the store keeps.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::NaiveDate;
use datapact_billing::{BillingTerms, PriceBook};
use datapact_core::{Endpoint, LicenseeStatus, Timestamp};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limit::{RateLimit, Span};
use crate::purpose::Purpose;

/// What happens past `monthly_records`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapMode {
    /// Refuse past the cap (the default).
    #[default]
    Hard,
    /// Serve and record the overage.
    Soft,
}

impl CapMode {
    /// The name in the terms file.
    pub fn as_str(self) -> &'static str {
        match self {
            CapMode::Hard => "hard",
            CapMode::Soft => "soft",
        }
    }

    /// Reads the name in the terms file.
    pub fn parse(value: &str) -> Option<CapMode> {
        [CapMode::Hard, CapMode::Soft].into_iter().find(|c| c.as_str() == value)
    }
}

/// How repeated deliveries of one post to one licensee are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dedup {
    /// The same post to the same licensee twice in one UTC day counts once (X's rule; the default).
    #[default]
    Daily,
    /// Every delivery counts.
    None,
}

impl Dedup {
    /// The name in the terms file.
    pub fn as_str(self) -> &'static str {
        match self {
            Dedup::Daily => "daily",
            Dedup::None => "none",
        }
    }

    /// Reads the name in the terms file.
    pub fn parse(value: &str) -> Option<Dedup> {
        [Dedup::Daily, Dedup::None].into_iter().find(|d| d.as_str() == value)
    }
}

/// A monthly record cap, or none. Written as an integer, or `"unlimited"` (useful to lift a plan's cap for one
/// licensee); serialized the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MonthlyRecords {
    /// No cap.
    Unlimited,
    /// At most this many counted records per calendar month (UTC).
    Limit(u64),
}

impl MonthlyRecords {
    /// `None` when unlimited.
    pub fn limit(self) -> Option<u64> {
        match self {
            MonthlyRecords::Unlimited => None,
            MonthlyRecords::Limit(n) => Some(n),
        }
    }

    /// `None` means unlimited.
    pub fn from_limit(limit: Option<u64>) -> MonthlyRecords {
        limit.map_or(MonthlyRecords::Unlimited, MonthlyRecords::Limit)
    }
}

impl fmt::Display for MonthlyRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonthlyRecords::Unlimited => f.write_str("unlimited"),
            MonthlyRecords::Limit(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for MonthlyRecords {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MonthlyRecords::Unlimited => s.serialize_str("unlimited"),
            MonthlyRecords::Limit(n) => s.serialize_u64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for MonthlyRecords {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(MonthlyRecords::Limit(n)),
            Raw::S(s) if s == "unlimited" => Ok(MonthlyRecords::Unlimited),
            Raw::S(s) => Err(serde::de::Error::custom(format!("expected a count or \"unlimited\", got {s:?}"))),
        }
    }
}

/// A plan, fully resolved: every default applied. Serialized (JSON) with the terms file's field names, so the store
/// can keep it as JSON and `terms show --json` can print it; [`Deserialize`] reads it back.
///
/// Reading JSON, fields with a default may be missing (so stored plans survive new fields being added).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The plan's name (same rule as licensee names).
    pub name: String,
    /// Cap on counted records per calendar month (UTC); `None` = unlimited.
    #[serde(default)]
    pub monthly_records: Option<u64>,
    /// What happens past `monthly_records` (default hard).
    #[serde(default)]
    pub cap: CapMode,
    /// Per endpoint. Every endpoint in `endpoints` has one (the parser checks).
    #[serde(with = "endpoint_map")]
    pub rate_limits: BTreeMap<Endpoint, RateLimit>,
    /// Endpoints the plan allows.
    #[serde(with = "endpoint_set")]
    pub endpoints: BTreeSet<Endpoint>,
    /// Purposes the plan grants.
    pub purposes: BTreeSet<Purpose>,
    /// How repeated deliveries are counted (default daily).
    #[serde(default)]
    pub dedup: Dedup,
    /// Whether served posts carry the licensee's fingerprint (default true).
    #[serde(default = "default_true")]
    pub fingerprint: bool,
    /// Whether records are paid in advance from a prepaid credit (charged per counted record as they are
    /// delivered; 402 when it runs out) rather than invoiced in arrears (default false).
    #[serde(default)]
    pub prepaid: bool,
    /// Share of served posts that are canaries, in parts per million (`canary_rate = "0.001"` → 1000; default 0).
    #[serde(default)]
    pub canary_ppm: u32,
    /// How soon a deletion must reach the licensee's copy; `None` = not set.
    #[serde(default)]
    pub deletion_deadline: Option<Span>,
}

fn default_true() -> bool {
    true
}

/// A licensee's overrides of its plan's fields: `None` (or an empty `rate_limits`) keeps the plan's value.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PlanOverrides {
    /// Replaces the plan's cap; `Unlimited` lifts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_records: Option<MonthlyRecords>,
    /// Replaces the plan's cap mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<CapMode>,
    /// Merged per endpoint over the plan's: an endpoint named here replaces the plan's limit for it only.
    #[serde(default, with = "endpoint_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub rate_limits: BTreeMap<Endpoint, RateLimit>,
    /// Replaces the plan's list whole.
    #[serde(default, with = "opt_endpoint_set", skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<BTreeSet<Endpoint>>,
    /// Replaces the plan's list whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purposes: Option<BTreeSet<Purpose>>,
    /// Replaces the plan's dedup rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<Dedup>,
    /// Replaces the plan's fingerprint switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<bool>,
    /// Replaces the plan's prepaid switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepaid: Option<bool>,
    /// Replaces the plan's canary share (parts per million).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_ppm: Option<u32>,
    /// Replaces the plan's deletion deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_deadline: Option<Span>,
}

impl PlanOverrides {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == PlanOverrides::default()
    }
}

/// A licensee's agreement as written: its plan, term, networks and overrides (status lives beside it, see
/// [`LicenseeRecord`] and [`LicenseeSpec`]). Serialize/Deserialize (JSON) round-trips, for the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseeTerms {
    /// The licensee's name.
    pub name: String,
    /// The plan it is on.
    pub plan: String,
    /// First day of the term (UTC midnight), inclusive; `None` = no lower bound.
    pub starts: Option<NaiveDate>,
    /// Day the term ends (UTC midnight), exclusive; `None` = open-ended.
    pub ends: Option<NaiveDate>,
    /// Client networks allowed; `None` = any address.
    pub allowed_networks: Option<Vec<IpNet>>,
    /// Plan fields this licensee overrides.
    #[serde(default)]
    pub overrides: PlanOverrides,
    /// Payment terms, grace days and negotiated prices (`payment_terms_days`, `grace_days`, `prices`); left out of
    /// the JSON when all default, and read back as the defaults when missing (agreements stored before billing).
    #[serde(default, skip_serializing_if = "BillingTerms::is_default")]
    pub billing: BillingTerms,
}

impl LicenseeTerms {
    /// The first instant of the term, if bounded.
    pub fn starts_at(&self) -> Option<Timestamp> {
        self.starts.map(date_start)
    }

    /// The first instant after the term, if bounded.
    pub fn ends_at(&self) -> Option<Timestamp> {
        self.ends.map(date_start)
    }
}

/// UTC midnight at the start of `date`.
pub fn date_start(date: NaiveDate) -> Timestamp {
    Timestamp::from_datetime(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

/// A `[[licensee]]` entry of a terms file: its agreement, and the status and reason only if the file sets them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LicenseeSpec {
    /// The agreement.
    #[serde(flatten)]
    pub terms: LicenseeTerms,
    /// The status, only if the file sets it.
    pub status: Option<LicenseeStatus>,
    /// The reason, only if the file sets it (needs `status`).
    pub reason: Option<String>,
}

/// A licensee as the store keeps it: agreement, status and reason (empty when none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LicenseeRecord {
    /// The agreement.
    #[serde(flatten)]
    pub terms: LicenseeTerms,
    /// Whether the licensee may be served.
    pub status: LicenseeStatus,
    /// Why it is blocked (empty when none).
    pub reason: String,
}

/// A parsed and validated terms file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TermsFile {
    /// Plans, in file order.
    pub plans: Vec<Plan>,
    /// Licensees, in file order.
    pub licensees: Vec<LicenseeSpec>,
    /// Price book versions (`[[price_book]]`), by effective date.
    pub price_books: Vec<PriceBook>,
}

/// All terms as stored (what `apply` reads as "current" and what `terms show` prints).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
pub struct Terms {
    /// Every plan.
    pub plans: Vec<Plan>,
    /// Every licensee that has an agreement.
    pub licensees: Vec<LicenseeRecord>,
}

impl Terms {
    /// Rebuilds the terms from the store's JSON: plans as `(name, JSON of [`Plan`])`, licensees as
    /// `(status, reason, JSON of [`LicenseeTerms`])` (licensees without an agreement are left out by the caller).
    /// Fails naming each stored record that does not read back.
    pub fn from_stored(
        plans: &[(String, serde_json::Value)],
        licensees: impl IntoIterator<Item = (LicenseeStatus, String, serde_json::Value)>,
    ) -> Result<Terms, crate::parse::TermsError> {
        let mut problems = Vec::new();
        let mut terms = Terms::default();
        for (name, body) in plans {
            match serde_json::from_value::<Plan>(body.clone()) {
                Ok(plan) => terms.plans.push(plan),
                Err(e) => problems.push(crate::parse::TermsProblem {
                    at: format!("stored plan {name:?}"),
                    message: format!("unreadable: {e}"),
                }),
            }
        }
        for (status, reason, body) in licensees {
            match serde_json::from_value::<LicenseeTerms>(body.clone()) {
                Ok(agreement) => terms.licensees.push(LicenseeRecord { terms: agreement, status, reason }),
                Err(e) => problems.push(crate::parse::TermsProblem {
                    at: format!("stored licensee {}", body.get("name").map_or("?".into(), |n| n.to_string())),
                    message: format!("unreadable: {e}"),
                }),
            }
        }
        if problems.is_empty() { Ok(terms) } else { Err(crate::parse::TermsError { problems }) }
    }

    /// The plan named `name`.
    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.name == name)
    }

    /// The licensee named `name`.
    pub fn licensee(&self, name: &str) -> Option<&LicenseeRecord> {
        self.licensees.iter().find(|l| l.terms.name == name)
    }
}

pub(crate) mod endpoint_name {
    use datapact_core::Endpoint;

    pub fn parse<E: serde::de::Error>(name: &str) -> Result<Endpoint, E> {
        Endpoint::parse(name).ok_or_else(|| E::custom(format!("unknown endpoint {name:?}")))
    }
}

pub(crate) mod endpoint_map {
    use std::collections::BTreeMap;

    use datapact_core::Endpoint;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::limit::RateLimit;

    pub fn serialize<S: Serializer>(map: &BTreeMap<Endpoint, RateLimit>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(e, r)| (e.as_str(), r)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<Endpoint, RateLimit>, D::Error> {
        let raw = BTreeMap::<String, RateLimit>::deserialize(d)?;
        raw.into_iter().map(|(name, rate)| Ok((super::endpoint_name::parse(&name)?, rate))).collect()
    }
}

pub(crate) mod endpoint_set {
    use std::collections::BTreeSet;

    use datapact_core::Endpoint;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(set: &BTreeSet<Endpoint>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(set.iter().map(|e| e.as_str()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<Endpoint>, D::Error> {
        Vec::<String>::deserialize(d)?.iter().map(|name| super::endpoint_name::parse(name)).collect()
    }
}

pub(crate) mod opt_endpoint_set {
    use std::collections::BTreeSet;

    use datapact_core::Endpoint;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(set: &Option<BTreeSet<Endpoint>>, s: S) -> Result<S::Ok, S::Error> {
        match set {
            Some(set) => super::endpoint_set::serialize(set, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeSet<Endpoint>>, D::Error> {
        match Option::<Vec<String>>::deserialize(d)? {
            Some(names) => {
                Ok(Some(names.iter().map(|name| super::endpoint_name::parse(name)).collect::<Result<_, _>>()?))
            }
            None => Ok(None),
        }
    }
}

//! datapact's agreement rules, as pure functions and data: no I/O, no clock (`now` is always a parameter), so every
//! rule is tested exhaustively.
//!
//! - [`parse_terms`] reads the terms file (`datapact apply terms.toml`) into a [`TermsFile`] of [`Plan`]s,
//!   [`LicenseeSpec`]s and price books, or a [`TermsError`] listing every problem with where it is and what to do.
//!   Prices, money and invoices are `datapact-billing`'s; this crate reads them from the file.
//! - [`Agreement::resolve`] merges a plan with a licensee's overrides into the effective [`Agreement`].
//! - [`diff_terms`] computes what an apply changes ([`TermsDiff`]), for `--dry-run`, the store and the audit log.
//! - [`RateLimiter`] counts requests exactly per (licensee, endpoint) and fixed window; [`RateDecision`] gives the
//!   response headers.
//! - [`decide`] runs the 403 steps of the decision order and returns the first [`Refusal`] with its
//!   [`ViolationKind`]; [`purpose_allowed`] is the check at key issue time.
//!
//! ```
//! use datapact_core::{Endpoint, LicenseeStatus, Timestamp};
//! use datapact_terms::{Agreement, Purpose, RateLimiter, RequestFacts, ViolationKind, decide, parse_terms};
//!
//! let file = parse_terms(include_str!("../examples/terms.toml")).unwrap();
//! let agreement = Agreement::resolve(&file.plans[0], &file.licensees[0].terms).unwrap();
//! let now = Timestamp::parse_rfc3339("2026-06-01T00:07:00Z").unwrap();
//! let facts = RequestFacts {
//!     status: LicenseeStatus::Active,
//!     reason: "",
//!     purpose: Purpose::AiTrain,
//!     endpoint: Endpoint::Search,
//!     client_ip: "203.0.113.7".parse().unwrap(),
//!     now,
//! };
//! assert_eq!(decide(&agreement, &facts).unwrap_err().kind, ViolationKind::PurposeNotAllowed);
//!
//! let limiter = RateLimiter::<String>::new();
//! let rate = agreement.rate_limit(Endpoint::Search).unwrap(); // 60/15m
//! let decision = limiter.check("acme", Endpoint::Search, rate, now);
//! assert!(decision.allowed);
//! assert_eq!(decision.remaining, 59);
//! assert_eq!(decision.reset_after_s, 480); // the window ends at 00:15:00
//! assert_eq!(decision.ietf_headers(Endpoint::Search)[0].1, "\"search\";q=60;w=900");
//! ```
//!
//! # The terms file
//!
//! ```toml
//! [[plan]]
//! name = "basic"
//! monthly_records = 10000          # or "unlimited"; omitted = unlimited
//! cap = "hard"                     # "hard" (default) | "soft"
//! rate_limits = { search = "60/15m", lookup = "300/15m" }
//! endpoints = ["search", "lookup"] # required
//! purposes = ["search", "ai-input"] # required
//! dedup = "daily"                  # "daily" (default) | "none"
//! fingerprint = true               # default true
//! prepaid = false                  # default false: true = pay-per-use from a prepaid credit (402 when spent)
//! canary_rate = "0.001"            # share of posts; stored as parts per million (1000); default 0
//! deletion_deadline = "24h"        # optional
//!
//! [[licensee]]
//! name = "acme"
//! plan = "basic"                   # a plan of the same file
//! status = "active"                # optional: "active" | "blocked"; only applied when set
//! reason = ""                      # optional; needs status
//! starts = "2026-01-01"            # optional; UTC midnight, inclusive
//! ends = "2027-01-01"              # optional; UTC midnight, exclusive
//! allowed_networks = ["203.0.113.0/24"]  # optional; CIDR or single addresses
//! monthly_records = 500            # any plan field can be overridden
//! payment_terms_days = 30          # optional (default 30): due date = issue date + 30 days; 0 to 366
//! grace_days = 15                  # optional (default 15): suspended after 15 days overdue; 0 to 366
//! prices = [{ effective = "2026-12-01", monthly_fee = "38000.00" }]   # optional negotiated prices
//!
//! [[price_book]]                   # one table per version (see examples/billing.toml)
//! effective = "2026-12-01"         # UTC midnight; in force until the next version
//! currency = "USD"                 # ISO 4217: USD, EUR, GBP, CHF, CAD, AUD (2 decimals), JPY (0), KWD (3)
//! [price_book.plans.basic]         # a plan of the same file
//! monthly_fee = "200.00"           # default "0"
//! included_records = 10000         # default 0
//! overage_per_1000 = "15.00"       # optional: billed in arrears
//! per_record = "0.005"             # optional: prepaid
//! ```
//!
//! Unknown keys are errors naming the key and the table. The only top-level keys are `plan`, `licensee` and
//! `price_book`. Names (plans and licensees) are 1–64 of `[a-z0-9_-]` starting with a letter, unique per kind.
//! Every allowed endpoint must have a rate limit (so every response can carry rate-limit headers).
//!
//! # Rules
//!
//! - **Durations and windows** are `<n><unit>` with unit `s`, `m`, `h`, `d` (a bare unit means 1): `30s`, `15m`,
//!   `2h`, `1d`, at most `366d`. A rate limit is `N/window` with `N` ≥ 1: `60/0m`, `x/15m` and `0/15m` are errors
//!   (to forbid an endpoint, leave it out of `endpoints`; that answers 403 with a reason instead of a bare 429).
//! - **Window alignment**: windows are fixed and aligned to the Unix epoch: a request at `now` (ms) falls in the
//!   window starting at `floor(now / w) * w`, so every node and every licensee agree on window boundaries (a `15m`
//!   window starts at :00, :15, :30, :45 UTC).
//! - **Reset**: `x-rate-limit-reset` is the window's end in epoch seconds, rounded up to a whole second; `RateLimit`'s
//!   `t` is the whole seconds until then, rounded up. `remaining` is what is left after this request; refused requests
//!   are not counted and report `remaining = 0`.
//! - **Limit changes never reset counters**: a new limit applies to the count so far; a new window length carries the
//!   count over when the old window overlaps the new one.
//! - **Purpose hierarchy** (RSL 1.0): `all` covers everything; `ai-all` covers `ai-train`, `ai-input`, `ai-index`.
//!   A request's purpose is allowed when every leaf purpose it stands for is granted, so a grant of the three `ai-*`
//!   leaves also allows an `ai-all` key.
//! - **Override merging**: a licensee's field replaces its plan's (lists such as `endpoints` and `purposes` are
//!   replaced whole), except `rate_limits`, which merges per endpoint. `monthly_records = "unlimited"` lifts a plan's cap.
//! - **Term**: `[starts, ends)` at UTC midnights; `ends` must be after `starts`.
//! - **Money** is written as a decimal string (`"200.00"`; a whole number such as `200` is accepted too, a float
//!   never) with at most the currency's decimals; rates (`overage_per_1000`, `per_record`) with at most 6 (they are
//!   kept in micro-units); nothing negative. See `datapact_billing::money`.
//! - **Price books**: effective dates are unique; a version lists only plans of the file, and must price again every
//!   plan an earlier version priced (a version replaces the whole book; `monthly_fee = "0"` makes a plan free).
//!   They are sorted by effective date. Refusing a version sooner than the notice period is
//!   `datapact_billing::check_notice`'s job at apply time (it needs `now`).
//! - **Negotiated prices** (`prices`): each entry needs `effective` and at least one price field; fields it leaves
//!   out come from the book in force. Its `currency` defaults to that of the price book in force on its date (with
//!   none in force, `currency` is required) and must equal it. One entry per date; sorted by date. Billing terms are
//!   part of the licensee's agreement ([`LicenseeTerms::billing`]), so `apply` stores and diffs them.
//! - **Apply**: see [`diff_terms`]: creates and updates, removes only with `prune`, changes `status` (and `reason`)
//!   only when the file sets `status`.

#![warn(missing_docs)]

pub mod agreement;
pub mod decision;
pub mod diff;
pub mod limit;
pub mod limiter;
pub mod model;
pub mod parse;
pub mod purpose;

pub use agreement::{Agreement, purpose_allowed};
pub use decision::{CLIENT_FORBIDDEN, Refusal, RequestFacts, ViolationKind, decide};
pub use diff::{Change, FieldChange, StatusChange, TermsDiff, diff_terms};
pub use limit::{RateLimit, Span};
pub use limiter::{RateDecision, RateLimiter};
pub use model::{
    CapMode, Dedup, LicenseeRecord, LicenseeSpec, LicenseeTerms, MonthlyRecords, Plan, PlanOverrides, Terms, TermsFile,
};
pub use parse::{TermsError, TermsProblem, parse_terms};
pub use purpose::Purpose;

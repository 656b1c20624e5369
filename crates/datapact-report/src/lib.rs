//! datapact's evidence reports (issue 11): what one licensee did over a period, stated so a third
//! party can check it.
//!
//! A [`Report`] holds, per licensee, the agreement and price-book versions in force, counted
//! usage per day and month against the cap, amounts invoiced, paid and outstanding (integer
//! money, never floats), status changes (blocks, suspensions), violations, trace findings with
//! their statistical bound stated in words, canary hits and deletion-compliance findings; and a
//! [`Reproducibility`] section: the ledger batches the numbers rest on, the signed checkpoint
//! covering them, the SHA-256 of every input and the exact command that regenerates the report.
//!
//! This crate is pure: it neither reads the store nor the clock. The `datapact` binary gathers the
//! values (`crates/datapact/src/report`) and calls a renderer: [`to_json`], [`to_markdown`] or
//! [`to_html`] (one self-contained page: inline CSS, inline SVG charts drawn with `plotters`, no
//! network, every text escaped). Rendering is deterministic: the same report gives the same bytes.

mod chart;
mod html;
mod markdown;

use datapact_billing::Money;
use datapact_core::Timestamp;
use serde::Serialize;

pub use chart::usage_chart_svg;
pub use html::{escape_html, to_html};
pub use markdown::{escape_markdown, to_markdown};

/// A whole report: one section per licensee (one for `datapact report LICENSEE`, every licensee
/// for `--all`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub title: String,
    /// First day of the period (UTC, `YYYY-MM-DD`, inclusive).
    pub from: String,
    /// Last day of the period (UTC, `YYYY-MM-DD`, inclusive).
    pub to: String,
    /// The instant the store's records were read as of: nothing recorded later counts.
    pub as_of: Timestamp,
    pub licensees: Vec<LicenseeReport>,
    pub reproducibility: Reproducibility,
}

/// Everything about one licensee.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LicenseeReport {
    pub licensee: String,
    pub licensee_id: i64,
    /// `active` or `blocked` at the end of the period (or at `as_of`, if earlier), with the reason given.
    pub status: String,
    pub status_reason: String,
    /// The agreement in force at the end of the period (or at `as_of`, if earlier; `None`: it had none).
    pub agreement: Option<AgreementSummary>,
    /// Changes of its terms, its plan and the price books recorded in the audit log up to the end of
    /// the period (the versions in force, with when each began).
    pub terms_versions: Vec<TermsVersion>,
    /// Price-book versions for its plan in force during the period.
    pub price_books: Vec<PriceBookVersion>,
    /// Its negotiated prices in force during the period (each field set replaces the book's).
    pub negotiated_prices: Vec<NegotiatedPrice>,
    pub usage: Usage,
    pub billing: Billing,
    /// Blocks, unblocks, suspensions and reinstatements in the audit log during the period.
    pub status_events: Vec<StatusEvent>,
    /// Breaches of terms by kind, as recorded.
    pub violations: Vec<ViolationRow>,
    /// Trace findings (`datapact trace --record`) naming this licensee.
    pub trace_findings: Vec<TraceFindingRow>,
    /// Canaries of this licensee found in recorded leaks.
    pub canary_hits: Vec<CanaryHitRow>,
    /// Deletion-compliance violations recorded against this licensee.
    pub deletion_violations: Vec<DeletionViolationRow>,
}

/// The agreement's fields a report needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgreementSummary {
    pub plan: String,
    /// Counted records allowed per month (`None`: unlimited).
    pub monthly_records: Option<u64>,
    /// `hard` or `soft`.
    pub cap: String,
    pub dedup: String,
    pub deletion_deadline: Option<String>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub allowed_networks: Vec<String>,
    pub purposes: Vec<String>,
    /// Days from issue to due date, and of grace after it before a suspension.
    pub payment_terms_days: Option<u32>,
    pub grace_days: Option<u32>,
}

/// One audit-log entry that changed what the licensee was bound by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TermsVersion {
    pub at: Timestamp,
    /// `licensee.create`, `licensee.terms`, `plan.put`, `price_book.put`, ...
    pub action: String,
    pub subject: String,
    pub actor: String,
    /// The audit log's sequence number (look it up with `datapact audit`).
    pub audit_seq: i64,
}

/// One version of the plan's price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PriceBookVersion {
    /// First day in force (`YYYY-MM-DD`).
    pub effective: String,
    /// Last day in force within the books (`None`: still in force).
    pub until: Option<String>,
    pub monthly_fee: Money,
    pub included_records: u64,
    /// Per 1,000 records past those included, as the terms file writes it.
    pub overage_per_1000: Option<String>,
    pub per_record: Option<String>,
}

/// A negotiated price version: the fields it sets replace the price book's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NegotiatedPrice {
    pub effective: String,
    pub until: Option<String>,
    pub monthly_fee: Option<Money>,
    pub included_records: Option<u64>,
    pub overage_per_1000: Option<String>,
    pub per_record: Option<String>,
}

/// Counted records per day and per month of the period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Every day of the period, with none left out.
    pub days: Vec<DayUsage>,
    pub months: Vec<MonthUsage>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DayUsage {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub counted: u64,
    /// Counted in the month so far, this day included (what the cap is checked against).
    pub month_to_date: u64,
    /// The month's cap (`None`: unlimited).
    pub cap: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MonthUsage {
    /// `YYYY-MM`.
    pub month: String,
    /// Counted within the period's days of this month.
    pub counted: u64,
    pub cap: Option<u64>,
    /// `hard` or `soft`.
    pub cap_mode: String,
    /// Counted past the cap (`counted - cap`, or 0).
    pub over_cap: u64,
    /// The first day the month's count passed the cap.
    pub first_day_over: Option<String>,
    /// The last day counted, when the month is not whole in the report (the period or `--as-of`
    /// ends inside it).
    pub through: Option<String>,
}

/// Invoices of the period's months as they stood at `as_of`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Billing {
    pub invoices: Vec<InvoiceRow>,
    /// One line per currency.
    pub totals: Vec<BillingTotals>,
    /// Suspended for non-payment at `as_of`, and since when.
    pub suspension: Option<SuspensionFinding>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvoiceRow {
    pub number: String,
    pub month: String,
    pub issued_at: Timestamp,
    /// Payable until the end of this day (`YYYY-MM-DD`).
    pub due: String,
    pub records: u64,
    pub total: Money,
    pub paid: Money,
    pub credited: Money,
    pub outstanding: Money,
    /// `open`, `paid`, `overdue` or `void`.
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BillingTotals {
    pub invoiced: Money,
    pub paid: Money,
    pub credited: Money,
    pub outstanding: Money,
    pub overdue: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SuspensionFinding {
    /// When the earliest invoice past its grace days began to suspend the licensee.
    pub since: Timestamp,
    pub invoices: Vec<String>,
    pub outstanding: Vec<Money>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusEvent {
    pub at: Timestamp,
    /// `licensee.block`, `licensee.unblock`, `licensee.suspended`, `licensee.reinstated`.
    pub action: String,
    pub actor: String,
    /// The reason recorded, if any.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ViolationRow {
    /// `network_not_allowed`, `blocked`, `rate_limited`, ...
    pub kind: String,
    /// Violations of this kind in the period.
    pub count: u64,
    /// The first and last of them (`None` when none is dated in the period).
    pub first_at: Option<Timestamp>,
    pub last_at: Option<Timestamp>,
    /// The newest (up to ten) request ids among them.
    pub sample_request_ids: Vec<String>,
    /// What the count leaves out and why (violations recorded before per-day counting, a day
    /// only partly before `--as-of`).
    pub notes: Vec<String>,
}

/// A recorded trace finding, as it concerns this licensee.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceFindingRow {
    pub finding_id: i64,
    pub at: Timestamp,
    /// Leak files traced (their hashes are in the reproducibility section).
    pub leak_files: Vec<String>,
    /// The trace's outcome (`Accused`, ...).
    pub outcome: String,
    pub accused: bool,
    pub score: Option<f64>,
    pub threshold: Option<f64>,
    /// log10 of the bound on the probability that an innocent licensee scores this high.
    pub log10_bound: Option<f64>,
    /// The same for any of the candidates.
    pub log10_bound_all: Option<f64>,
    /// The bound in words.
    pub statement: String,
    pub candidates: u64,
    /// Leaked posts matched to the corpus.
    pub posts_matched: u64,
    /// How many of them the ledger says this licensee received.
    pub delivered_posts: Option<u64>,
    pub delivered_share: Option<f64>,
    /// Leaked posts it received that were deleted, and the trace's verdicts on them.
    pub deleted_posts: u64,
    pub deletion_deadline: Option<String>,
    pub deletion_violations: u64,
    pub deletion_may_predate: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CanaryHitRow {
    pub finding_id: i64,
    pub canary_id: String,
    pub exact_occurrences: u64,
    pub normalised_records: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeletionViolationRow {
    pub post_id: String,
    pub deleted_at: Timestamp,
    pub deadline_at: Timestamp,
    pub notified_at: Option<Timestamp>,
    pub finding_id: Option<i64>,
    pub recorded_at: Timestamp,
}

/// What someone needs to check the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reproducibility {
    /// Per licensee and chain, the ledger batches holding its usage events in the period.
    pub ledger_ranges: Vec<LedgerRange>,
    /// The first signed checkpoint covering every range (`None`: none yet).
    pub checkpoint: Option<CheckpointRef>,
    /// The checkpoint in words (or that none covers the batches yet).
    pub checkpoint_statement: String,
    /// SHA-256 of every input: the terms in force, each leak file traced.
    pub inputs: Vec<InputHash>,
    /// The command that regenerates this report byte for byte.
    pub command: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LedgerRange {
    pub licensee: String,
    pub chain: String,
    pub first_seq: u64,
    pub last_seq: u64,
    /// The licensee's usage events in these batches and the period.
    pub events: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckpointRef {
    pub number: u64,
    pub at: Timestamp,
    pub key_id: String,
    /// `(chain, seq, hash)` of each signed head.
    pub heads: Vec<(String, u64, String)>,
    /// The checkpoint as `datapact ledger checkpoint list --json` prints it (for `ledger verify --checkpoints`).
    pub json: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InputHash {
    /// `terms` or `leak`.
    pub kind: String,
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The report as pretty JSON (a trailing newline).
pub fn to_json(report: &Report) -> String {
    let mut out = serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    out.push('\n');
    out
}

// ---- Sentences shared by the Markdown and HTML renderers (plain text; each renderer escapes). ----

/// `1e-9` for a log10 bound of -9.3: the smallest power of ten the bound is below.
pub fn bound_words(log10_bound: f64) -> String {
    if !log10_bound.is_finite() || log10_bound >= 0.0 {
        return "not below 1".to_owned();
    }
    // 10^-9.3 < 10^-9: the ceiling is an upper bound that is a power of ten.
    let exponent = log10_bound.ceil() as i64;
    if exponent >= 0 { "below 1".to_owned() } else { format!("below 1e{exponent}") }
}

/// The statement of a trace finding's bound.
pub fn trace_statement(log10_bound: Option<f64>, log10_bound_all: Option<f64>, candidates: u64) -> String {
    match (log10_bound, log10_bound_all) {
        (Some(one), Some(all)) => format!(
            "the probability that an innocent licensee scores this high is {}; that any of the {candidates} \
             licensees traced is accused while innocent, {}",
            bound_words(one),
            bound_words(all)
        ),
        (Some(one), None) => {
            format!("the probability that an innocent licensee scores this high is {}", bound_words(one))
        }
        _ => "not accused: no bound is stated for a licensee the trace did not accuse".to_owned(),
    }
}

/// A percentage with one decimal.
pub fn percent(numerator: u64, denominator: u64) -> String {
    if denominator == 0 {
        // Nothing to be a share of (a cap of 0): no percentage says anything true.
        return "n/a".to_owned();
    }
    let tenths = (u128::from(numerator) * 1000 + u128::from(denominator) / 2) / u128::from(denominator);
    format!("{}.{}%", tenths / 10, tenths % 10)
}

/// The agreement's term in words.
pub fn term(a: &AgreementSummary) -> String {
    match (a.starts_at, a.ends_at) {
        (None, None) => "unbounded".to_owned(),
        (Some(from), None) => format!("from {from}"),
        (None, Some(until)) => format!("until {until} (exclusive)"),
        (Some(from), Some(until)) => format!("from {from} until {until} (exclusive)"),
    }
}

/// A count of records as a document prints it: digits grouped by thousands with commas
/// (`5,000,000`), so a reader cannot misread a cap by a power of ten. JSON keeps plain numbers.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// [`count`] of a cap or limit that may be absent (`—`).
pub fn count_or_dash(n: Option<u64>) -> String {
    n.map_or_else(|| "—".to_owned(), count)
}

/// One month's usage against its cap.
pub fn month_sentence(name: &str, m: &MonthUsage) -> String {
    let month = match &m.through {
        Some(day) => format!("{} (through {day})", m.month),
        None => m.month.clone(),
    };
    match m.cap {
        None => {
            format!("In {}, {name} was counted {} records; its agreement sets no monthly cap.", month, count(m.counted))
        }
        Some(cap) if m.over_cap > 0 => format!(
            "In {}, {name} was counted {} records against a {} cap of {}: {} over the cap ({} of the cap), first \
             over on {}.",
            month,
            count(m.counted),
            m.cap_mode,
            count(cap),
            count(m.over_cap),
            percent(m.counted, cap),
            m.first_day_over.as_deref().unwrap_or("?")
        ),
        Some(cap) => format!(
            "In {}, {name} was counted {} records against a {} cap of {} ({} of the cap): within the cap.",
            month,
            count(m.counted),
            m.cap_mode,
            count(cap),
            percent(m.counted, cap)
        ),
    }
}

/// The billing totals in one currency.
pub fn billing_sentence(name: &str, t: &BillingTotals) -> String {
    format!(
        "{name} was invoiced {}, paid {}, was credited {}, and owes {} ({} overdue).",
        t.invoiced, t.paid, t.credited, t.outstanding, t.overdue
    )
}

/// The suspension, if any.
pub fn suspension_sentence(name: &str, s: &SuspensionFinding) -> String {
    let owed: Vec<String> =
        s.invoices.iter().zip(&s.outstanding).map(|(n, o)| format!("{n} ({o} outstanding)")).collect();
    format!(
        "{name} is suspended for non-payment since {}: {} unpaid past the due date and grace days.",
        s.since,
        owed.join(", ")
    )
}

pub fn status_event_sentence(e: &StatusEvent) -> String {
    match &e.reason {
        Some(reason) if !reason.is_empty() => format!("{}: {} by {} ({reason}).", e.at, e.action, e.actor),
        _ => format!("{}: {} by {}.", e.at, e.action, e.actor),
    }
}

pub fn violation_sentence(v: &ViolationRow) -> String {
    let mut sentence = match (v.first_at, v.last_at) {
        (Some(first), Some(last)) => format!(
            "{}: {} time(s) in the period, first at {first}, last at {last}; sample request ids: {}.",
            v.kind,
            count(v.count),
            if v.sample_request_ids.is_empty() { "none kept".to_owned() } else { v.sample_request_ids.join(", ") }
        ),
        _ => format!("{}: none dated in the period.", v.kind),
    };
    for note in &v.notes {
        sentence.push(' ');
        sentence.push_str(note);
    }
    sentence
}

pub fn trace_sentences(name: &str, t: &TraceFindingRow) -> Vec<String> {
    let mut out = Vec::new();
    if t.accused {
        out.push(format!(
            "Trace finding #{} ({}): {name} is accused of leaking {} with score {:.2} against a threshold of {:.2}; {}.",
            t.finding_id,
            t.at,
            t.leak_files.join(", "),
            t.score.unwrap_or(0.0),
            t.threshold.unwrap_or(0.0),
            t.statement
        ));
    } else {
        out.push(format!(
            "Trace finding #{} ({}): {name} is not accused of leaking {} (outcome {}).",
            t.finding_id,
            t.at,
            t.leak_files.join(", "),
            t.outcome
        ));
    }
    if let Some(delivered) = t.delivered_posts {
        out.push(format!(
            "{name} received {delivered} of the {} leaked posts matched ({}).",
            t.posts_matched,
            percent(delivered, t.posts_matched)
        ));
    }
    if t.deleted_posts > 0 {
        out.push(format!(
            "The leak holds {} post(s) {name} received that were deleted: {} proven deletion-compliance violation(s), \
             {} that may predate the deadline ({}).",
            t.deleted_posts,
            t.deletion_violations,
            t.deletion_may_predate,
            t.deletion_deadline.as_deref().unwrap_or("none set")
        ));
    }
    out
}

pub fn canary_sentence(name: &str, c: &CanaryHitRow) -> String {
    format!(
        "Canary {} (served only to {name}) is in the leak of finding #{}: {} exact occurrence(s), {} record(s) after \
         normalisation.",
        c.canary_id, c.finding_id, c.exact_occurrences, c.normalised_records
    )
}

pub fn deletion_violation_sentence(name: &str, d: &DeletionViolationRow) -> String {
    let notified = match d.notified_at {
        Some(at) => format!("notified at {at}"),
        None => "never notified".to_owned(),
    };
    let finding = d.finding_id.map(|id| format!(" (finding #{id})")).unwrap_or_default();
    format!(
        "Deletion-compliance violation: post {} deleted at {} ({notified}) was still held by {name} after its deadline \
         {}{finding}.",
        d.post_id, d.deleted_at, d.deadline_at
    )
}

#[cfg(test)]
mod tests;

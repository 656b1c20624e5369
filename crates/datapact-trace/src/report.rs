//! What a trace found, for JSON output, for `--record`, and as text for people.

use std::fmt::Write as _;

use datapact_mark::{ChannelEvidence, Outcome};
use serde::Serialize;

use crate::canary::CanaryHit;
use crate::input::LeakFormat;

/// The full finding of one trace.
#[derive(Clone, Debug, Serialize)]
pub struct TraceReport {
    /// The leak inputs, in the order read.
    pub inputs: Vec<InputSummary>,
    /// Records read, malformed, matched and unmatched.
    pub records: RecordCounts,
    /// The first malformed lines (at most [`crate::TraceSettings::malformed_examples`]).
    pub malformed_examples: Vec<MalformedLine>,
    /// Distinct corpus posts the leak matched.
    pub posts_matched: u64,
    /// Of which read for fingerprint sites (all of them unless reading stopped early).
    pub posts_read: u64,
    /// Whether site reading stopped after a stage that accused (later records were still
    /// matched and counted, and scanned for canaries).
    pub reading_stopped_early: bool,
    /// ε for the whole trace: the probability bound of accusing any innocent licensee.
    pub epsilon: f64,
    /// Candidate licensees (every licensee in the store).
    pub candidates: usize,
    /// Secret versions the leak was read under.
    pub secret_versions: Vec<u32>,
    /// The staged tests that were run, in order.
    pub stages: Vec<StageSummary>,
    /// The evidence and verdict under each secret version at the last stage.
    pub versions: Vec<VersionSummary>,
    /// The overall conclusion.
    pub outcome: Outcome,
    /// Every accused licensee (from any stage and version), highest score first.
    pub accused: Vec<AccusedLicensee>,
    /// Every candidate's score at the last stage, highest first.
    pub licensees: Vec<LicenseeScore>,
    /// When nobody is accused for lack of evidence: an estimate of how much more is needed.
    pub more_evidence: Option<MoreEvidenceEstimate>,
    /// Canaries found in the leak (direct evidence, separate from the statistical verdict).
    pub canary_hits: Vec<CanaryHitReport>,
    /// Canaries searched for.
    pub canaries_searched: usize,
}

/// One leak input.
#[derive(Clone, Debug, Serialize)]
pub struct InputSummary {
    /// As given (a path, or `-` for standard input).
    pub name: String,
    /// The format read (after sniffing, for `auto`).
    pub format: LeakFormat,
    /// Bytes read.
    pub bytes: u64,
    /// Records read from it.
    pub records: u64,
}

/// Record counts over every input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecordCounts {
    /// Leaked records (posts) read. A JSON page holds several; a malformed line none.
    pub read: u64,
    /// Lines (or CSV rows) that could not be read as records.
    pub malformed: u64,
    /// Records matched to a corpus post by their id.
    pub matched_by_id: u64,
    /// Records matched by normalised text (no id, or an id not in the corpus).
    pub matched_by_text: u64,
    /// Records that match no corpus post (nor a canary).
    pub unmatched: u64,
    /// Records that are canaries (equal to one after normalisation; see
    /// [`TraceReport::canary_hits`]).
    pub canaries: u64,
}

/// A line that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MalformedLine {
    /// The input's index in [`TraceReport::inputs`].
    pub input: usize,
    /// 1-based line (JSON Lines, text) or record (CSV) number.
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// One staged test. Stage `k` (from 1) is run at ε·2^-k, split evenly over the secret
/// versions, so all stages and versions together stay below ε (a union bound; the stage
/// boundaries are fixed in advance by site counts, not by what the scores look like).
#[derive(Clone, Debug, Serialize)]
pub struct StageSummary {
    /// 1-based.
    pub stage: u32,
    /// ε of this stage (all versions together).
    pub epsilon: f64,
    /// Posts in the evidence.
    pub posts: usize,
    /// Markable sites in the evidence.
    pub sites: usize,
    /// Licensees this stage accused.
    pub accused: Vec<u64>,
}

/// The evidence and verdict under one secret version (at the last stage).
#[derive(Clone, Debug, Serialize)]
pub struct VersionSummary {
    /// The secret version.
    pub version: u32,
    /// Its conclusion.
    pub outcome: Outcome,
    /// ε of this test (all candidates together).
    pub epsilon: f64,
    /// The score at or above which a licensee is accused; `None` when the sites read
    /// cannot reach ε whatever the score.
    pub threshold: Option<f64>,
    /// Posts in the evidence.
    pub posts: usize,
    /// Markable sites in those posts.
    pub sites_total: usize,
    /// Sites scored (readable, in channels not normalised away).
    pub sites_used: usize,
    /// Per channel: sites, located, readable, whether dropped as normalised away.
    pub channels: Vec<ChannelEvidence>,
}

/// An accused licensee.
#[derive(Clone, Debug, Serialize)]
pub struct AccusedLicensee {
    /// Store id.
    pub licensee: u64,
    /// Name, if known.
    pub name: Option<String>,
    /// The secret version the accusing copies were rendered under.
    pub version: u32,
    /// The stage that accused it.
    pub stage: u32,
    /// Its score there.
    pub score: f64,
    /// The threshold it reached.
    pub threshold: f64,
    /// log10 of the bound on the probability that an innocent licensee scores this high.
    pub log10_bound: f64,
    /// The same for any of the candidates (union bound).
    pub log10_bound_all: f64,
    /// Distinct leaked posts the delivery ledger says it received (filled by the caller
    /// that has the ledger).
    pub delivered_posts: Option<u64>,
    /// `delivered_posts / posts_matched`. A leaked text that several posts share after
    /// normalisation matches each of them, so this can be slightly below the true share.
    pub delivered_share: Option<f64>,
}

/// One candidate's score (under the version with the most evidence).
#[derive(Clone, Debug, Serialize)]
pub struct LicenseeScore {
    /// Store id.
    pub licensee: u64,
    /// Name, if known.
    pub name: Option<String>,
    /// The secret version scored.
    pub version: u32,
    /// Symmetric Tardos score.
    pub score: f64,
    /// The accusation threshold it is compared with.
    pub threshold: Option<f64>,
    /// log10 of the tail bound, for the top scorers only (see [`crate::BOUNDED_TOP`]);
    /// the others are below them and so further from the threshold.
    pub log10_bound: Option<f64>,
    /// Accused (at any stage or version).
    pub accused: bool,
}

/// A canary hit with its licensee's name.
#[derive(Clone, Debug, Serialize)]
pub struct CanaryHitReport {
    /// The hit.
    #[serde(flatten)]
    pub hit: CanaryHit,
    /// The licensee's name, if known.
    pub name: Option<String>,
}

/// An estimate (not a bound) of how many more matched posts would let the trace accuse.
///
/// The trace scores `m` sites now and needs a leaker's score `S` to reach the threshold
/// `Z`. A leaker's score grows linearly with the sites (mean `r` per site), while the
/// threshold grows like `√m` (the innocent score has mean 0 and variance ~1 per site), so
/// `S(m') ≈ r·m'` meets `Z(m') ≈ Z·√(m'/m)` at `m' = Z² / (r²·m)`. `r` is the top
/// candidate's score per site when positive, else the expected score of a single leaker
/// who does not tamper with the text, `2/π` per site before public-form weighting (about
/// 0.75 of that after; E[2√(p(1-p))] under the arcsine bias density is 2/π). When no
/// threshold exists yet, `Z(m') ≈ √(2·m'·ln(1/ε₁))` (the Gaussian form, optimistic at
/// these tails), so `m' ≈ 2·ln(1/ε₁) / r²`. The sites needed are turned into posts with
/// the sites per post seen so far. A colluding or tampering leaker needs more.
#[derive(Clone, Debug, Serialize)]
pub struct MoreEvidenceEstimate {
    /// Estimated additional matched posts (distinct) needed.
    pub more_posts: u64,
    /// Estimated total scoring sites needed.
    pub sites_needed: u64,
    /// Scoring sites per matched post so far.
    pub sites_per_post: f64,
    /// The per-site score growth assumed.
    pub score_per_site: f64,
    /// Always "estimate": this is a planning figure, not a guarantee.
    pub kind: &'static str,
}

impl TraceReport {
    /// A plain-text rendering for people.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let r = &self.records;
        let _ = writeln!(o, "datapact trace");
        for (i, input) in self.inputs.iter().enumerate() {
            let _ = writeln!(
                o,
                "  input {}: {} ({}, {} bytes, {} records)",
                i + 1,
                input.name,
                input.format,
                input.bytes,
                input.records
            );
        }
        let _ = writeln!(
            o,
            "records: {} read, {} malformed, {} matched by id, {} matched by text, {} canaries, {} unmatched",
            r.read, r.malformed, r.matched_by_id, r.matched_by_text, r.canaries, r.unmatched
        );
        for m in &self.malformed_examples {
            let _ = writeln!(o, "  malformed: input {} line {}: {}", m.input + 1, m.line, m.reason);
        }
        let _ = writeln!(
            o,
            "posts: {} distinct posts matched, {} read for fingerprints{}",
            self.posts_matched,
            self.posts_read,
            if self.reading_stopped_early { " (reading stopped after an accusing stage)" } else { "" }
        );
        for v in &self.versions {
            let _ = writeln!(
                o,
                "secret version {}: {} posts, {} markable sites, {} scored, threshold {}",
                v.version,
                v.posts,
                v.sites_total,
                v.sites_used,
                v.threshold.map_or("unreachable".to_string(), |z| format!("{z:.2}"))
            );
            for c in &v.channels {
                let _ = writeln!(
                    o,
                    "  {:<15} {:>8} sites, {:>8} located, {:>8} readable{}",
                    c.channel.name(),
                    c.sites,
                    c.located,
                    c.readable,
                    if c.dropped { "  NORMALISED AWAY (dropped)" } else { "" }
                );
            }
        }
        for s in &self.stages {
            let _ = writeln!(
                o,
                "stage {}: {} posts, {} sites, ε = {:.3e}, accused: {}",
                s.stage,
                s.posts,
                s.sites,
                s.epsilon,
                if s.accused.is_empty() {
                    "nobody".to_string()
                } else {
                    s.accused.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
                }
            );
        }
        let _ = writeln!(
            o,
            "verdict (ε = {:.1e} over {} licensees): {}",
            self.epsilon,
            self.candidates,
            outcome_text(self.outcome)
        );
        for a in &self.accused {
            let _ = write!(
                o,
                "  ACCUSED {} (id {}): score {:.2} ≥ threshold {:.2} (version {}, stage {}), P(innocent this high) ≤ 10^{:.1}, for any licensee ≤ 10^{:.1}",
                a.name.as_deref().unwrap_or("?"),
                a.licensee,
                a.score,
                a.threshold,
                a.version,
                a.stage,
                a.log10_bound,
                a.log10_bound_all
            );
            if let (Some(d), Some(s)) = (a.delivered_posts, a.delivered_share) {
                let _ = write!(
                    o,
                    "; the ledger shows {d} of the {} leaked posts delivered to it ({:.1} %)",
                    self.posts_matched,
                    100.0 * s
                );
            }
            let _ = writeln!(o);
        }
        if let Some(e) = &self.more_evidence {
            let _ = writeln!(
                o,
                "  too little evidence: an estimated {} more matched posts would be needed (~{} scoring sites at {:.2} per post, assuming {:.2} score per site; an estimate, not a bound)",
                e.more_posts, e.sites_needed, e.sites_per_post, e.score_per_site
            );
        }
        let shown = self.licensees.iter().take(10);
        let _ = writeln!(o, "top licensees (of {}):", self.licensees.len());
        for l in shown {
            let _ = writeln!(
                o,
                "  {:<24} id {:>6}  score {:>9.2}  threshold {:>9}  bound {:>9}  {}",
                l.name.as_deref().unwrap_or("?"),
                l.licensee,
                l.score,
                l.threshold.map_or("-".to_string(), |z| format!("{z:.2}")),
                l.log10_bound.map_or("-".to_string(), |b| format!("10^{b:.1}")),
                if l.accused { "ACCUSED" } else { "not accused" }
            );
        }
        if self.canaries_searched == 0 {
            let _ = writeln!(o, "canaries: none searched");
        } else if self.canary_hits.is_empty() {
            let _ = writeln!(o, "canaries: none of {} found", self.canaries_searched);
        } else {
            let _ = writeln!(
                o,
                "canaries: {} of {} found (direct evidence)",
                self.canary_hits.len(),
                self.canaries_searched
            );
            for h in &self.canary_hits {
                let _ = writeln!(
                    o,
                    "  canary {} of {} (id {}): {} exact, {} normalised record(s); first in input {} at byte {}",
                    h.hit.canary_id,
                    h.name.as_deref().unwrap_or("?"),
                    h.hit.licensee,
                    h.hit.exact_occurrences,
                    h.hit.normalised_records,
                    h.hit.first_input + 1,
                    h.hit.first_offset
                );
            }
        }
        o
    }
}

fn outcome_text(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Accused => "licensee(s) accused",
        Outcome::InsufficientEvidence => "nobody accused: the evidence does not prove anything at this ε",
        Outcome::MatchesPublicText => "nobody accused: the leak matches the public text",
        Outcome::NoSitesRead => "nobody accused: no fingerprint site could be read",
    }
}

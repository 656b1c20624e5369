//! The accusation over one secret version's evidence, with candidates scored in parallel.
//!
//! Same decision as [`datapact_mark::Evidence::accuse`] (it is built from the same public
//! pieces: channels, scoring sites, the Chernoff threshold and tail bound), but scoring
//! 1,000 candidates over hundreds of thousands of sites is split across cores, and every
//! candidate's score is kept for the report.

use crate::report::VersionSummary;
use datapact_mark::{Accusation, AccusationParams, Evidence, Outcome};
use rayon::prelude::*;

/// How many of the top scorers get an exact tail bound in the report (each costs a
/// root-finding over every site; the rest are compared with the threshold only).
pub const BOUNDED_TOP: usize = 10;

/// The verdict of one stage under one secret version.
#[derive(Clone, Debug)]
pub(crate) struct VersionVerdict {
    /// What the report shows of it.
    pub summary: VersionSummary,
    /// One per candidate, in candidate order.
    pub scores: Vec<f64>,
    pub accused: Vec<Accusation>,
    /// The best scorers with their bounds, highest first (accused or not).
    pub top: Vec<Accusation>,
}

pub(crate) fn judge(
    version: u32,
    evidence: &Evidence,
    candidates: &[u64],
    params: &AccusationParams,
) -> VersionVerdict {
    let channels = evidence.channels(params);
    let scoring = evidence.scoring_sites(params);
    let observed = evidence.observed_sites();
    let any_read = observed.iter().any(|s| s.symbol.is_some());
    let all_public = any_read && observed.iter().all(|s| s.symbol.is_none() || s.public_form);
    let n = candidates.len();
    let threshold = scoring.threshold(params.epsilon, n);
    let mut verdict = VersionVerdict {
        summary: VersionSummary {
            version,
            outcome: Outcome::InsufficientEvidence,
            epsilon: params.epsilon,
            threshold,
            posts: evidence.posts(),
            sites_total: evidence.sites(),
            sites_used: scoring.len(),
            channels,
        },
        scores: vec![0.0; n],
        accused: Vec::new(),
        top: Vec::new(),
    };
    if scoring.is_empty() {
        verdict.summary.outcome = Outcome::NoSitesRead;
        return verdict;
    }
    // Each task scores a block of candidates over every site: the sites stream through the
    // cache once per block, and blocks of 32 keep both cores busy for 1,000 candidates.
    verdict.scores.par_chunks_mut(32).zip(candidates.par_chunks(32)).for_each(|(s, c)| scoring.add_scores(c, s));
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| verdict.scores[b].total_cmp(&verdict.scores[a]));
    let ln10 = std::f64::consts::LN_10;
    let dist = scoring.distribution();
    let bounded = |i: usize| {
        let score = verdict.scores[i];
        let ln_b = dist.ln_tail_bound(score);
        Accusation {
            licensee: candidates[i],
            score,
            log10_bound: ln_b / ln10,
            log10_bound_all: ((ln_b + (n.max(1) as f64).ln()) / ln10).min(0.0),
        }
    };
    let accused: Vec<Accusation> = match threshold {
        Some(z) if !all_public => order.iter().take_while(|&&i| verdict.scores[i] >= z).map(|&i| bounded(i)).collect(),
        _ => Vec::new(),
    };
    let top: Vec<Accusation> = order.par_iter().take(BOUNDED_TOP.max(accused.len())).map(|&i| bounded(i)).collect();
    verdict.summary.outcome = if all_public {
        // The leak shows the public form everywhere: it is the public text, which
        // accuses nobody.
        Outcome::MatchesPublicText
    } else if accused.is_empty() {
        Outcome::InsufficientEvidence
    } else {
        Outcome::Accused
    };
    verdict.accused = accused;
    verdict.top = top;
    verdict
}

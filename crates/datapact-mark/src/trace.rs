//! Tracing: collecting evidence from a leak and the accusation decision.

use std::collections::HashSet;

use crate::bound::{ScoreDistribution, TwoPoint};
use crate::channel::{Channel, Form};
use crate::mark::{PostReading, PreparedPost, SiteCode, sip13_u64};

/// Settings of the accusation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AccusationParams {
    /// Bound on the probability that any innocent licensee (among all candidates
    /// together) is accused. Each candidate is tested at `epsilon / candidates`.
    pub epsilon: f64,
    /// A channel with at least this many located sites in the leak that all show one and
    /// the same form is taken as normalised away and dropped.
    pub min_sites_to_drop_channel: usize,
    /// Weight of a site where the leak shows the public text's form (1 elsewhere). The
    /// public text is a codeword every coalition holds, so agreeing with it is weaker
    /// evidence; weighting such sites below 1 (default 0.5, chosen empirically, see
    /// TRACING.md) shortens the leaks needed. Any weight in `(0, 1]` keeps the bound
    /// rigorous, since it depends only on the leak and the public codeword.
    pub public_form_weight: f64,
}

impl Default for AccusationParams {
    fn default() -> Self {
        AccusationParams { epsilon: 1e-6, min_sites_to_drop_channel: 16, public_form_weight: 0.5 }
    }
}

/// One markable site of a leaked post as observed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvidenceSite {
    /// The site's code.
    pub code: SiteCode,
    /// Its channel.
    pub channel: Channel,
    /// The form seen, if located.
    pub form: Option<Form>,
    /// The symbol read, if readable.
    pub symbol: Option<bool>,
    /// Whether it shows the public text's form.
    pub public_form: bool,
}

/// Evidence gathered from a leak: the observed symbols at the markable sites of every
/// leaked post. A post is counted once however often it occurs in the leak.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    sites: Vec<EvidenceSite>,
    posts: HashSet<u64>,
}

/// Per-channel summary of a leak.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ChannelEvidence {
    /// The channel.
    pub channel: Channel,
    /// Markable sites of this channel in the leaked posts.
    pub sites: usize,
    /// Of which located in the leaked text.
    pub located: usize,
    /// Of which readable as a symbol.
    pub readable: usize,
    /// Distinct forms seen.
    pub distinct_forms: usize,
    /// Dropped as normalised away.
    pub dropped: bool,
}

impl Evidence {
    /// No evidence yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `leaked_text` as a copy of `post` and adds it. Returns `false` (and adds
    /// nothing) if the post was already added: a site must count once.
    pub fn add_post(&mut self, post: &PreparedPost, leaked_text: &str) -> bool {
        let reading = post.read(leaked_text);
        self.add_reading(post, &reading)
    }

    /// Adds an existing reading of `post`. Returns `false` if the post was already added.
    pub fn add_reading(&mut self, post: &PreparedPost, reading: &PostReading) -> bool {
        if !self.posts.insert(post.post_id()) {
            return false;
        }
        for (s, o) in post.sites().iter().zip(&reading.observations) {
            self.sites.push(EvidenceSite {
                code: s.code,
                channel: s.channel,
                form: o.form,
                symbol: o.symbol,
                public_form: o.public_form,
            });
        }
        true
    }

    /// Every markable site of the added posts as observed, in the order added.
    pub fn observed_sites(&self) -> &[EvidenceSite] {
        &self.sites
    }

    /// Posts added.
    pub fn posts(&self) -> usize {
        self.posts.len()
    }

    /// Markable sites of the added posts (readable or not).
    pub fn sites(&self) -> usize {
        self.sites.len()
    }

    /// Per-channel summary, including which channels are dropped under `params`.
    pub fn channels(&self, params: &AccusationParams) -> Vec<ChannelEvidence> {
        let mut out = Vec::new();
        for ch in Channel::ALL {
            let mut forms: Vec<Form> = Vec::new();
            let (mut sites, mut located, mut readable) = (0, 0, 0);
            for s in self.sites.iter().filter(|s| s.channel == ch) {
                sites += 1;
                if let Some(f) = s.form {
                    located += 1;
                    if !forms.contains(&f) {
                        forms.push(f);
                    }
                }
                if s.symbol.is_some() {
                    readable += 1;
                }
            }
            if sites == 0 {
                continue;
            }
            let dropped = located >= params.min_sites_to_drop_channel && forms.len() == 1;
            out.push(ChannelEvidence { channel: ch, sites, located, readable, distinct_forms: forms.len(), dropped });
        }
        out
    }

    /// The readable sites of the channels that are not dropped, ready to score.
    pub fn scoring_sites(&self, params: &AccusationParams) -> ScoringSites {
        let dropped: Vec<Channel> =
            self.channels(params).into_iter().filter(|c| c.dropped).map(|c| c.channel).collect();
        let w = params.public_form_weight;
        ScoringSites::new_weighted(
            self.sites
                .iter()
                .filter(|s| !dropped.contains(&s.channel))
                .filter_map(|s| s.symbol.map(|y| (s.code, y, if s.public_form { w } else { 1.0 }))),
        )
    }

    /// Decides whom to accuse among `candidates` (pass every licensee that received the
    /// posts: the bound is split over them).
    pub fn accuse(&self, candidates: &[u64], params: &AccusationParams) -> Verdict {
        let channels = self.channels(params);
        let scoring = self.scoring_sites(params);
        let any_read = self.sites.iter().any(|s| s.symbol.is_some());
        let all_public = any_read && self.sites.iter().all(|s| s.symbol.is_none() || s.public_form);
        let mut v = scoring.accuse(candidates, params, self.posts(), self.sites(), channels);
        if all_public {
            v.outcome = Outcome::MatchesPublicText;
            v.accused.clear();
        }
        v
    }
}

#[derive(Clone, Copy, Debug)]
struct ScoredSite {
    k0: u64,
    k1: u64,
    threshold: u64,
    if_one: f64,
    if_zero: f64,
}

/// Sites with their leaked symbols, ready for scoring candidates.
#[derive(Clone, Debug)]
pub struct ScoringSites {
    sites: Vec<ScoredSite>,
    dist: ScoreDistribution,
    abs_total: f64,
}

impl ScoringSites {
    /// From `(site code, leaked symbol)` pairs.
    pub fn new(sites: impl IntoIterator<Item = (SiteCode, bool)>) -> Self {
        Self::new_weighted(sites.into_iter().map(|(c, y)| (c, y, 1.0)))
    }

    /// From `(site code, leaked symbol, weight)` triples: each site's symmetric score is
    /// multiplied by its weight (> 0; sites of weight 0 are skipped). The bound stays
    /// rigorous as long as the weights depend only on the leak, the biases and the public
    /// codeword, never on a candidate's symbols.
    pub fn new_weighted(sites: impl IntoIterator<Item = (SiteCode, bool, f64)>) -> Self {
        let mut v = Vec::new();
        let mut two = Vec::new();
        let mut abs_total = 0.0;
        for (code, y, w) in sites {
            if w.is_nan() || w <= 0.0 {
                continue;
            }
            let p = code.bias();
            let a = w * ((1.0 - p) / p).sqrt();
            let b = w * (p / (1.0 - p)).sqrt();
            let (if_one, if_zero) = if y { (a, -b) } else { (-a, b) };
            let (k0, k1, threshold) = code.parts();
            v.push(ScoredSite { k0, k1, threshold, if_one, if_zero });
            let t = TwoPoint::symmetric(p, y);
            two.push(TwoPoint { up: w * t.up, q: t.q, down: w * t.down });
            abs_total += a.max(b);
        }
        ScoringSites { sites: v, dist: ScoreDistribution::new(two), abs_total }
    }

    /// Number of sites.
    pub fn len(&self) -> usize {
        self.sites.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// The innocent score distribution (for bounds).
    pub fn distribution(&self) -> &ScoreDistribution {
        &self.dist
    }

    /// Symmetric Tardos scores of `candidates`, added into `scores` (same length).
    pub fn add_scores(&self, candidates: &[u64], scores: &mut [f64]) {
        assert_eq!(candidates.len(), scores.len());
        for s in &self.sites {
            let (k0, k1, t, one, zero) = (s.k0, s.k1, s.threshold, s.if_one, s.if_zero);
            for (sc, &lic) in scores.iter_mut().zip(candidates) {
                *sc += if sip13_u64(k0, k1, lic) < t { one } else { zero };
            }
        }
    }

    /// Symmetric Tardos scores of `candidates`.
    pub fn scores(&self, candidates: &[u64]) -> Vec<f64> {
        let mut s = vec![0.0; candidates.len()];
        self.add_scores(candidates, &mut s);
        s
    }

    /// The score at or above which a candidate is accused when there are `n_candidates`
    /// (rigorous; includes a floating-point margin). `None` when no score could reach it.
    pub fn threshold(&self, epsilon: f64, n_candidates: usize) -> Option<f64> {
        let ln_inv = -(epsilon / n_candidates.max(1) as f64).ln();
        let z = self.dist.threshold(ln_inv)?;
        // Summation error of a candidate's score.
        let margin = self.abs_total * f64::EPSILON * (self.sites.len() as f64 + 2.0);
        Some(z + margin)
    }

    fn accuse(
        &self,
        candidates: &[u64],
        params: &AccusationParams,
        posts: usize,
        sites_total: usize,
        channels: Vec<ChannelEvidence>,
    ) -> Verdict {
        let n = candidates.len();
        let per = params.epsilon / n.max(1) as f64;
        let threshold = self.threshold(params.epsilon, n);
        let mut verdict = Verdict {
            outcome: Outcome::InsufficientEvidence,
            accused: Vec::new(),
            top: None,
            threshold,
            epsilon: params.epsilon,
            candidates: n,
            per_candidate_epsilon: per,
            posts,
            sites_total,
            sites_used: self.sites.len(),
            channels,
        };
        if self.sites.is_empty() {
            verdict.outcome = Outcome::NoSitesRead;
            return verdict;
        }
        let scores = self.scores(candidates);
        let ln10 = std::f64::consts::LN_10;
        let mk = |lic: u64, score: f64| {
            let ln_b = self.dist.ln_tail_bound(score);
            Accusation {
                licensee: lic,
                score,
                log10_bound: (ln_b / ln10),
                log10_bound_all: ((ln_b + (n.max(1) as f64).ln()) / ln10).min(0.0),
            }
        };
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        if let Some(&best) = order.first() {
            verdict.top = Some(mk(candidates[best], scores[best]));
        }
        if let Some(z) = threshold {
            for &i in &order {
                if scores[i] < z {
                    break;
                }
                verdict.accused.push(mk(candidates[i], scores[i]));
            }
        }
        if !verdict.accused.is_empty() {
            verdict.outcome = Outcome::Accused;
        }
        verdict
    }
}

/// What the accusation concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Outcome {
    /// At least one licensee is accused, each with probability at most ε (all innocents
    /// together) of being innocent.
    Accused,
    /// Nobody reached the threshold: the evidence does not prove anything at ε.
    InsufficientEvidence,
    /// Every readable site shows the public form: the leak is indistinguishable from the
    /// public text, which accuses nobody.
    MatchesPublicText,
    /// No readable site in a kept channel.
    NoSitesRead,
}

/// One accused (or top-scoring) licensee.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Accusation {
    /// Licensee id.
    pub licensee: u64,
    /// Symmetric Tardos score.
    pub score: f64,
    /// log10 of the bound on the probability that one given innocent licensee scores this
    /// high.
    pub log10_bound: f64,
    /// log10 of the bound for any of the candidates (union bound, capped at 0).
    pub log10_bound_all: f64,
}

/// The result of [`Evidence::accuse`].
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Verdict {
    /// The conclusion.
    pub outcome: Outcome,
    /// Accused licensees, highest score first (empty unless `outcome == Accused`).
    pub accused: Vec<Accusation>,
    /// The highest-scoring candidate, accused or not (informative only).
    pub top: Option<Accusation>,
    /// Accusation threshold on the score; `None` when the sites read cannot reach ε.
    pub threshold: Option<f64>,
    /// ε for all candidates together.
    pub epsilon: f64,
    /// Number of candidates.
    pub candidates: usize,
    /// ε / candidates.
    pub per_candidate_epsilon: f64,
    /// Posts in the evidence.
    pub posts: usize,
    /// Markable sites in those posts.
    pub sites_total: usize,
    /// Sites scored (readable, in kept channels).
    pub sites_used: usize,
    /// Per-channel summary.
    pub channels: Vec<ChannelEvidence>,
}

impl Verdict {
    /// Whether `licensee` is accused.
    pub fn accuses(&self, licensee: u64) -> bool {
        self.accused.iter().any(|a| a.licensee == licensee)
    }
}

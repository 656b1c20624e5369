//! The tracer: streams leaks through matching, reading and canary scanning in parallel,
//! collects evidence in leak order, and runs the staged accusation.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use datapact_mark::{AccusationParams, Evidence, Observation, Outcome, PostReading, PreparedPost, Secret};
use rayon::prelude::*;

use crate::canary::{Canaries, Canary, CanaryHit, StreamScanner};
use crate::corpus::{Corpus, RevisionRef, match_key};
use crate::input::{Chunk, ChunkReader, LeakFormat, LeakRecord, Tee, parse_json_line, sniff};
use crate::judge::{VersionVerdict, judge};
use crate::report::{
    AccusedLicensee, CanaryHitReport, InputSummary, LicenseeScore, MalformedLine, MoreEvidenceEstimate, RecordCounts,
    StageSummary, TraceReport, VersionSummary,
};

/// A licensee that may have leaked (pass every licensee: ε is split over them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Store id (the id its copies are rendered for).
    pub id: u64,
    /// Name, for the report.
    pub name: String,
}

/// Settings of a trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceSettings {
    /// Bound on the probability of accusing any innocent licensee, over every stage and
    /// secret version together.
    pub epsilon: f64,
    /// The accusation's other settings (its `epsilon` is replaced per stage and version).
    pub params: AccusationParams,
    /// Markable sites at which the first staged test runs; each next stage runs at
    /// `stage_growth` times as many, and a last one at the end of the leak.
    pub first_stage_sites: usize,
    /// Growth factor between stages (at least 2).
    pub stage_growth: usize,
    /// Keep reading sites after a stage accused (to look for further colluders) rather than
    /// stop there (later records are still matched, counted and scanned for canaries).
    pub read_all: bool,
    /// Malformed lines kept as examples in the report.
    pub malformed_examples: usize,
}

impl Default for TraceSettings {
    fn default() -> Self {
        TraceSettings {
            epsilon: 1e-6,
            params: AccusationParams::default(),
            first_stage_sites: 4096,
            stage_growth: 4,
            read_all: false,
            malformed_examples: 10,
        }
    }
}

/// Why a trace could not run.
#[derive(Debug)]
pub enum TraceError {
    /// Reading an input failed.
    Io(std::io::Error),
    /// The input or the settings are unusable (a CSV without a text column, no secret, ε
    /// out of range, a bad canary).
    Invalid(String),
}

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TraceError::Io(e) => write!(f, "{e}"),
            TraceError::Invalid(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for TraceError {}

impl From<std::io::Error> for TraceError {
    fn from(e: std::io::Error) -> Self {
        TraceError::Io(e)
    }
}

/// What [`Tracer::finish`] returns: the report, and the ids of the distinct corpus posts
/// the leak matched (to ask the delivery ledger who received them).
#[derive(Debug)]
pub struct TraceOutcome {
    /// The finding.
    pub report: TraceReport,
    /// Distinct matched post ids, ascending.
    pub matched_post_ids: Vec<u64>,
    /// Distinct `(post id, revision)` the leak certainly holds, ascending: what deletion proofs
    /// may date the leak by. A record with an id holds that post (revision 1: the post existed)
    /// and, when its text is one of the post's revisions, that revision; a record without an id
    /// holds the revision its text matches only when it matches one post alone (a text several
    /// posts share proves none of them).
    pub matched_revisions: Vec<(u64, u32)>,
}

/// One matched leaked record, with its text if fingerprints were still being read.
struct Matched {
    rev: RevisionRef,
    text: Option<String>,
    /// The revision this record certainly holds, if any (see [`TraceOutcome::matched_revisions`]).
    dated: Option<u32>,
}

#[derive(Default)]
struct BatchOutcome {
    lines: u64,
    records: u64,
    counts: RecordCounts,
    /// (line within the piece, reason)
    malformed: Vec<(u64, String)>,
    matched: Vec<Matched>,
    /// (canary, offset, exact?)
    canaries: Vec<(u32, u64, bool)>,
}

/// A CSV row as read: its number, and its id and text or why it is malformed.
type CsvRow = (u64, Result<(Option<u64>, String), String>);

struct Stage {
    summary: StageSummary,
    verdicts: Vec<VersionVerdict>,
}

/// Traces leaks against a corpus. Feed it every leak with [`Tracer::read_leak`], then
/// [`Tracer::finish`].
pub struct Tracer {
    corpus: Corpus,
    secrets: Vec<Secret>,
    candidates: Vec<Candidate>,
    candidate_ids: Vec<u64>,
    canaries: Canaries,
    settings: TraceSettings,
    /// Each revision prepared under every secret, on first match.
    prepared: Vec<OnceLock<Box<[PreparedPost]>>>,
    reading: AtomicBool,
    inputs: Vec<InputSummary>,
    counts: RecordCounts,
    malformed: Vec<MalformedLine>,
    matched_posts: Vec<bool>,
    posts_matched: u64,
    /// `(post id, revision)` the leak certainly holds.
    dated: std::collections::BTreeSet<(u64, u32)>,
    /// Posts read or queued to be read (first occurrence in leak order).
    read_posts: Vec<bool>,
    /// First occurrences waiting to be read, in leak order.
    pending: Vec<(RevisionRef, String)>,
    posts_read: u64,
    evidence: Vec<Evidence>,
    stages: Vec<Stage>,
    next_stage_sites: usize,
    canary_hits: BTreeMap<u32, CanaryHit>,
}

impl Tracer {
    /// A tracer over `corpus`, reading sites under every secret in `secrets` (every version
    /// ever rendered with), accusing among `candidates`, looking for `canaries`.
    pub fn new(
        corpus: Corpus,
        secrets: Vec<Secret>,
        candidates: Vec<Candidate>,
        canaries: Vec<Canary>,
        settings: TraceSettings,
    ) -> Result<Self, TraceError> {
        if secrets.is_empty() {
            return Err(TraceError::Invalid("no fingerprint secret to read the leak with".into()));
        }
        if !(settings.epsilon > 0.0 && settings.epsilon < 1.0) {
            return Err(TraceError::Invalid(format!("epsilon must be in (0, 1), not {}", settings.epsilon)));
        }
        let canaries = Canaries::new(canaries).map_err(TraceError::Invalid)?;
        let candidate_ids = candidates.iter().map(|c| c.id).collect();
        let revisions = corpus.revisions();
        let posts = corpus.posts();
        Ok(Tracer {
            evidence: secrets.iter().map(|_| Evidence::new()).collect(),
            secrets,
            candidates,
            candidate_ids,
            canaries,
            next_stage_sites: settings.first_stage_sites.max(1),
            settings,
            prepared: (0..revisions).map(|_| OnceLock::new()).collect(),
            reading: AtomicBool::new(true),
            inputs: Vec::new(),
            counts: RecordCounts::default(),
            malformed: Vec::new(),
            matched_posts: vec![false; posts],
            posts_matched: 0,
            dated: Default::default(),
            read_posts: vec![false; posts],
            pending: Vec::new(),
            posts_read: 0,
            stages: Vec::new(),
            canary_hits: BTreeMap::new(),
            corpus,
        })
    }

    /// Reads one leak. `name` labels it in the report; `progress` is told the bytes read as
    /// they are read. Records are used in leak order (the first occurrence of a post is the
    /// one read), so the result does not depend on the number of threads.
    pub fn read_leak<R: BufRead>(
        &mut self,
        name: &str,
        mut input: R,
        format: LeakFormat,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), TraceError> {
        let format = match format {
            LeakFormat::Auto => sniff(input.fill_buf()?),
            f => f,
        };
        let index = self.inputs.len();
        self.inputs.push(InputSummary { name: name.to_string(), format, bytes: 0, records: 0 });
        match format {
            LeakFormat::Csv => self.read_csv(index, input, progress)?,
            _ => self.read_lines(index, input, format, progress)?,
        }
        Ok(())
    }

    fn read_lines<R: BufRead>(
        &mut self,
        index: usize,
        input: R,
        format: LeakFormat,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), TraceError> {
        let mut chunks = ChunkReader::new(input);
        let batch_len = 4 * rayon::current_num_threads().max(1);
        let mut line_base = 0u64;
        let mut bytes = 0u64;
        let mut batch = read_batch(&mut chunks, batch_len, &mut bytes, progress)?;
        loop {
            self.inputs[index].bytes += std::mem::take(&mut bytes);
            if batch.is_empty() {
                return Ok(());
            }
            // The pool processes this batch while this thread reads the next one.
            let mut outcomes: Vec<BatchOutcome> = Vec::new();
            let mut next = Ok(Vec::new());
            {
                let this = &*self;
                let current = &batch;
                let results = &mut outcomes;
                rayon::in_place_scope(|scope| {
                    scope.spawn(move |_| {
                        *results = current.par_iter().map(|c| this.process_lines(&c.bytes, c.offset, format)).collect();
                    });
                    next = read_batch(&mut chunks, batch_len, &mut bytes, progress);
                });
            }
            for (chunk, outcome) in batch.iter().zip(outcomes) {
                // Lines too long to hold were skipped before this chunk: one line each.
                if chunk.oversized > 0 {
                    self.counts.malformed += chunk.oversized;
                    self.push_malformed(index, line_base + 1, "line longer than 64 MiB skipped".into());
                    line_base += chunk.oversized;
                }
                self.merge(index, line_base, outcome);
                line_base += memchr::memchr_iter(b'\n', &chunk.bytes).count() as u64;
                if !chunk.bytes.ends_with(b"\n") && !chunk.bytes.is_empty() {
                    line_base += 1;
                }
            }
            self.read_pending();
            for chunk in std::mem::replace(&mut batch, next?) {
                chunks.recycle(chunk.bytes);
            }
        }
    }

    fn read_csv<R: BufRead>(
        &mut self,
        index: usize,
        input: R,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), TraceError> {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(Tee::new(input));
        let headers = reader.byte_headers().map_err(csv_error)?.clone();
        let column = |want: &str| {
            headers.iter().position(|h| {
                let h = String::from_utf8_lossy(h);
                h.trim().trim_start_matches('\u{feff}').trim().eq_ignore_ascii_case(want)
            })
        };
        let Some(text_col) = column("text") else {
            return Err(TraceError::Invalid(format!(
                "{}: the CSV header has no \"text\" column",
                self.inputs[index].name
            )));
        };
        let id_col = column("id");
        let mut scanner = StreamScanner::new();
        let mut record = csv::ByteRecord::new();
        // Rows are numbered from 1 after the header.
        let mut row = 0u64;
        let mut done = false;
        let mut seen = 0u64;
        while !done {
            let mut rows: Vec<CsvRow> = Vec::with_capacity(8192);
            while rows.len() < 8192 {
                match reader.read_byte_record(&mut record) {
                    Ok(false) => {
                        done = true;
                        break;
                    }
                    Ok(true) => {
                        row += 1;
                        let text = record.get(text_col).map(|t| String::from_utf8(t.to_vec()));
                        let id = id_col
                            .and_then(|i| record.get(i))
                            .and_then(|b| std::str::from_utf8(b).ok())
                            .and_then(|s| s.trim().parse().ok());
                        rows.push((
                            row,
                            match text {
                                Some(Ok(t)) => Ok((id, t)),
                                Some(Err(_)) => Err("the text is not UTF-8".into()),
                                None => Err("the row has no text field".into()),
                            },
                        ));
                    }
                    Err(e) if e.is_io_error() => return Err(csv_error(e)),
                    Err(e) => {
                        row += 1;
                        rows.push((row, Err(format!("bad CSV: {e}"))));
                    }
                }
            }
            // Scan the raw bytes consumed so far for canaries (with overlap across batches).
            let raw = reader.get_mut().take();
            let total = reader.get_ref().total();
            progress(total - seen);
            self.inputs[index].bytes += total - seen;
            seen = total;
            let mut hits = Vec::new();
            scanner.feed(&self.canaries, &raw, |c, end| hits.push((c, end)));
            for (c, end) in hits {
                let len = self.canaries.get(c).text.len() as u64;
                self.canary_hit(index, c, end.saturating_sub(len), true);
            }
            let this = &*self;
            let outcomes: Vec<(u64, BatchOutcome)> = rows
                .par_chunks(512)
                .map(|part| {
                    let mut out = BatchOutcome::default();
                    let first = part.first().map_or(0, |r| r.0);
                    for (n, r) in part {
                        out.lines += 1;
                        match r {
                            Ok((id, text)) => {
                                this.handle(LeakRecord { id: *id, text: text.as_str().into() }, 0, &mut out)
                            }
                            Err(reason) => {
                                out.counts.malformed += 1;
                                out.malformed.push((n - first, reason.clone()));
                            }
                        }
                    }
                    (first, out)
                })
                .collect();
            for (first, outcome) in outcomes {
                self.merge(index, first.saturating_sub(1), outcome);
            }
            self.read_pending();
        }
        Ok(())
    }

    /// Parses, matches, reads and scans one chunk of whole lines (runs in parallel).
    ///
    /// Canaries are searched where a post's text is: a text dump's lines whole, a JSON line's
    /// decoded text fields (a canary is a post, so a leak carries it as a post's text or inside
    /// one). Scanning the decoded texts rather than the raw line skips ids, dates, metrics and
    /// authors, most of an X-shaped line, and needs no JSON-escaped forms.
    fn process_lines(&self, bytes: &[u8], offset: u64, format: LeakFormat) -> BatchOutcome {
        let mut out = BatchOutcome::default();
        let per_record = format == LeakFormat::Jsonl;
        if !per_record {
            self.canaries.scan(bytes, |c, end| {
                let len = self.canaries.get(c).text.len();
                out.canaries.push((c, offset + end.saturating_sub(len) as u64, true));
            });
        }
        let mut records = Vec::new();
        let mut start = 0;
        let ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
        for (n, end) in ends.enumerate() {
            if start > bytes.len() {
                break;
            }
            let line = &bytes[start..end];
            let line_offset = offset + start as u64;
            start = end + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            out.lines += 1;
            records.clear();
            let parsed = match format {
                LeakFormat::Jsonl => parse_json_line(line, &mut records),
                _ => match std::str::from_utf8(line) {
                    Ok(text) => {
                        records.push(LeakRecord { id: None, text: text.into() });
                        Ok(())
                    }
                    Err(_) => Err("the line is not UTF-8".to_string()),
                },
            };
            if let Err(reason) = parsed {
                out.counts.malformed += 1;
                out.malformed.push((n as u64, reason));
                continue;
            }
            for record in records.drain(..) {
                if per_record {
                    self.canaries.scan(record.text.as_bytes(), |c, _| out.canaries.push((c, line_offset, true)));
                }
                self.handle(record, offset, &mut out);
            }
        }
        out
    }

    /// Matches one record to the corpus and reads it (runs in parallel).
    fn handle(&self, record: LeakRecord<'_>, offset: u64, out: &mut BatchOutcome) {
        out.records += 1;
        let read = self.reading.load(Ordering::Relaxed);
        if let Some((rev, exact)) = record.id.and_then(|id| self.corpus.match_id_exact(id, &record.text)) {
            out.counts.matched_by_id += 1;
            let text = read.then(|| record.text.into_owned());
            let dated = Some(if exact { self.corpus.revision_number(rev) } else { 1 });
            out.matched.push(Matched { rev, text, dated });
            return;
        }
        let key = match_key(&record.text);
        // A record equal to a canary after normalisation is a hit even when its bytes were
        // changed. Canaries are synthetic, never corpus posts, and carry ids of their own, so
        // only records not matched by id can be one (those still get the exact scan), and a
        // canary record needs no corpus lookup.
        let canaries = self.canaries.by_key(key);
        if !canaries.is_empty() {
            out.counts.canaries += 1;
            for &c in canaries {
                out.canaries.push((c, offset, false));
            }
            return;
        }
        let revs = self.corpus.match_by_key(key);
        if revs.is_empty() {
            out.counts.unmatched += 1;
        } else {
            out.counts.matched_by_text += 1;
        }
        let unique = revs.len() == 1;
        for rev in revs {
            let text = read.then(|| record.text.to_string());
            let dated = unique.then(|| self.corpus.revision_number(rev));
            out.matched.push(Matched { rev, text, dated });
        }
    }

    fn prepared(&self, rev: RevisionRef) -> &[PreparedPost] {
        self.prepared[rev.0 as usize].get_or_init(|| self.corpus.prepare(rev, &self.secrets))
    }

    /// Reads a leaked text as a copy of `rev` under every secret version.
    fn read(&self, rev: RevisionRef, leaked: &str) -> Box<[PostReading]> {
        let prepared = self.prepared(rev);
        if leaked == self.corpus.text(rev) {
            // The public text itself: every site shows its public form (no need to detect).
            return prepared
                .iter()
                .map(|p| PostReading {
                    post_id: p.post_id(),
                    observations: p
                        .sites()
                        .iter()
                        .map(|s| Observation {
                            form: Some(s.public_form),
                            symbol: Some(s.code.public_symbol()),
                            public_form: true,
                        })
                        .collect(),
                })
                .collect();
        }
        prepared.iter().map(|p| p.read(leaked)).collect()
    }

    /// Adds a processed piece to the totals and the evidence, in leak order (sequential).
    fn merge(&mut self, index: usize, line_base: u64, outcome: BatchOutcome) {
        let c = outcome.counts;
        self.counts.read += outcome.records;
        self.counts.malformed += c.malformed;
        self.counts.matched_by_id += c.matched_by_id;
        self.counts.matched_by_text += c.matched_by_text;
        self.counts.unmatched += c.unmatched;
        self.counts.canaries += c.canaries;
        self.inputs[index].records += outcome.records;
        for (line, reason) in outcome.malformed {
            self.push_malformed(index, line_base + line + 1, reason);
        }
        for (canary, offset, exact) in outcome.canaries {
            self.canary_hit(index, canary, offset, exact);
        }
        for m in outcome.matched {
            let post = self.corpus.post_index(m.rev) as usize;
            if let Some(revision) = m.dated {
                self.dated.insert((self.corpus.post_id(m.rev), revision));
            }
            if !self.matched_posts[post] {
                self.matched_posts[post] = true;
                self.posts_matched += 1;
            }
            if self.read_posts[post] || !self.reading.load(Ordering::Relaxed) {
                continue;
            }
            let Some(text) = m.text else { continue };
            self.read_posts[post] = true;
            self.pending.push((m.rev, text));
        }
    }

    /// Reads the queued first occurrences in leak order, in parallel groups sized to end
    /// near the next stage boundary, so that a stage which accuses stops the reading without
    /// many posts having been read (and prepared) for nothing.
    fn read_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let mut at = 0;
        while at < pending.len() && self.reading.load(Ordering::Relaxed) {
            let sites = self.evidence.iter().map(Evidence::sites).max().unwrap_or(0);
            let posts = self.evidence.iter().map(Evidence::posts).max().unwrap_or(0);
            let per_post = if posts > 0 { (sites as f64 / posts as f64).max(0.25) } else { 2.0 };
            let to_boundary = self.next_stage_sites.saturating_sub(sites) as f64 / per_post;
            let group = (to_boundary.ceil() as usize + 1).clamp(64, 16_384).min(pending.len() - at);
            let slice = &pending[at..at + group];
            let this = &*self;
            let readings: Vec<Box<[PostReading]>> = slice.par_iter().map(|(rev, text)| this.read(*rev, text)).collect();
            for ((rev, _), readings) in slice.iter().zip(readings) {
                if !self.reading.load(Ordering::Relaxed) {
                    break;
                }
                // Prepared by `read` above.
                let Some(prepared) = self.prepared[rev.0 as usize].get() else { continue };
                self.posts_read += 1;
                for ((ev, p), r) in self.evidence.iter_mut().zip(prepared.iter()).zip(readings.iter()) {
                    ev.add_reading(p, r);
                }
                let sites = self.evidence.iter().map(Evidence::sites).max().unwrap_or(0);
                if sites >= self.next_stage_sites {
                    self.run_stage();
                    self.next_stage_sites = self.next_stage_sites.saturating_mul(self.settings.stage_growth.max(2));
                }
            }
            at += group;
        }
    }

    fn push_malformed(&mut self, input: usize, line: u64, reason: String) {
        if self.malformed.len() < self.settings.malformed_examples {
            self.malformed.push(MalformedLine { input, line, reason });
        }
    }

    fn canary_hit(&mut self, input: usize, canary: u32, offset: u64, exact: bool) {
        let c = self.canaries.get(canary);
        let hit = self.canary_hits.entry(canary).or_insert_with(|| CanaryHit {
            licensee: c.licensee,
            canary_id: c.canary_id.clone(),
            exact_occurrences: 0,
            normalised_records: 0,
            first_input: input,
            first_offset: offset,
        });
        if exact {
            hit.exact_occurrences += 1;
        } else {
            hit.normalised_records += 1;
        }
    }

    /// Runs the next staged test on the evidence so far. Stage `k` gets ε·2^-k, split
    /// evenly over the secret versions: the stages' boundaries depend only on site counts
    /// in leak order (never on scores), so by the union bound every stage and version
    /// together accuse an innocent with probability below ε.
    fn run_stage(&mut self) {
        let k = self.stages.len() as u32 + 1;
        let stage_eps = self.settings.epsilon * 0.5f64.powi(k as i32);
        let mut params = self.settings.params;
        params.epsilon = stage_eps / self.secrets.len() as f64;
        let verdicts: Vec<VersionVerdict> = self
            .secrets
            .iter()
            .zip(&self.evidence)
            .map(|(s, ev)| judge(s.version(), ev, &self.candidate_ids, &params))
            .collect();
        let mut accused: Vec<u64> = verdicts.iter().flat_map(|v| v.accused.iter().map(|a| a.licensee)).collect();
        accused.sort_unstable();
        accused.dedup();
        if !accused.is_empty() && !self.settings.read_all {
            self.reading.store(false, Ordering::Relaxed);
        }
        let summary = StageSummary {
            stage: k,
            epsilon: stage_eps,
            posts: self.evidence.iter().map(Evidence::posts).max().unwrap_or(0),
            sites: self.evidence.iter().map(Evidence::sites).max().unwrap_or(0),
            accused,
        };
        self.stages.push(Stage { summary, verdicts });
    }

    /// Runs the last stage (if the evidence grew since the previous one) and builds the
    /// report.
    pub fn finish(mut self) -> TraceOutcome {
        let grew = match self.stages.last() {
            None => true,
            Some(s) => self.evidence.iter().map(Evidence::sites).max().unwrap_or(0) > s.summary.sites,
        };
        if grew && self.reading.load(Ordering::Relaxed) {
            self.run_stage();
        }
        let names: HashMap<u64, &str> = self.candidates.iter().map(|c| (c.id, c.name.as_str())).collect();
        let name = |id: u64| names.get(&id).map(|n| n.to_string());

        // Every accusation of every stage stands (each was made at its own share of ε).
        let mut accused: Vec<AccusedLicensee> = Vec::new();
        for stage in &self.stages {
            for v in &stage.verdicts {
                let Some(z) = v.summary.threshold else { continue };
                for a in &v.accused {
                    if accused.iter().any(|x| x.licensee == a.licensee) {
                        continue;
                    }
                    accused.push(AccusedLicensee {
                        licensee: a.licensee,
                        name: name(a.licensee),
                        version: v.summary.version,
                        stage: stage.summary.stage,
                        score: a.score,
                        threshold: z,
                        log10_bound: a.log10_bound,
                        log10_bound_all: a.log10_bound_all,
                        delivered_posts: None,
                        delivered_share: None,
                    });
                }
            }
        }
        accused.sort_by(|a, b| b.score.total_cmp(&a.score));

        let last = self.stages.last().map(|s| s.verdicts.as_slice()).unwrap_or(&[]);
        let versions: Vec<VersionSummary> = last.iter().map(|v| v.summary.clone()).collect();
        // Scores are listed under the version with the most scoring sites (normally the
        // current one: older versions only score posts rendered before a rotation).
        let main = last.iter().max_by_key(|v| (v.summary.sites_used, v.summary.version));
        let mut licensees: Vec<LicenseeScore> = match main {
            Some(v) => self
                .candidates
                .iter()
                .zip(&v.scores)
                .map(|(c, &score)| LicenseeScore {
                    licensee: c.id,
                    name: Some(c.name.clone()),
                    version: v.summary.version,
                    score,
                    threshold: v.summary.threshold,
                    log10_bound: v.top.iter().find(|a| a.licensee == c.id).map(|a| a.log10_bound),
                    accused: accused.iter().any(|a| a.licensee == c.id),
                })
                .collect(),
            None => Vec::new(),
        };
        licensees.sort_by(|a, b| b.score.total_cmp(&a.score));

        let outcome = if !accused.is_empty() {
            Outcome::Accused
        } else if last.iter().any(|v| v.summary.outcome == Outcome::InsufficientEvidence) {
            Outcome::InsufficientEvidence
        } else if last.iter().any(|v| v.summary.outcome == Outcome::MatchesPublicText) {
            Outcome::MatchesPublicText
        } else {
            Outcome::NoSitesRead
        };
        let more_evidence = match (outcome, main) {
            (Outcome::InsufficientEvidence | Outcome::NoSitesRead, Some(v)) => {
                estimate_more(v, self.posts_read, self.candidates.len())
            }
            _ => None,
        };
        let canary_hits =
            self.canary_hits.into_values().map(|hit| CanaryHitReport { name: name(hit.licensee), hit }).collect();
        let matched_post_ids = {
            let mut ids: Vec<u64> = (0..self.matched_posts.len())
                .filter(|&i| self.matched_posts[i])
                .map(|i| self.corpus.post_id_at(i))
                .collect();
            ids.sort_unstable();
            ids
        };
        let report = TraceReport {
            inputs: self.inputs,
            records: self.counts,
            malformed_examples: self.malformed,
            posts_matched: self.posts_matched,
            posts_read: self.posts_read,
            reading_stopped_early: !self.reading.load(Ordering::Relaxed),
            epsilon: self.settings.epsilon,
            candidates: self.candidates.len(),
            secret_versions: self.secrets.iter().map(Secret::version).collect(),
            stages: self.stages.iter().map(|s| s.summary.clone()).collect(),
            versions,
            outcome,
            accused,
            licensees,
            more_evidence,
            canary_hits,
            canaries_searched: self.canaries.len(),
        };
        let matched_revisions: Vec<(u64, u32)> = self.dated.into_iter().collect();
        TraceOutcome { report, matched_post_ids, matched_revisions }
    }
}

/// Reads up to `len` chunks, adding the bytes read to `bytes`.
fn read_batch<R: BufRead>(
    chunks: &mut ChunkReader<R>,
    len: usize,
    bytes: &mut u64,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Chunk>, TraceError> {
    let mut batch = Vec::with_capacity(len);
    while batch.len() < len {
        match chunks.next_chunk(&mut |n| {
            *bytes += n;
            progress(n)
        })? {
            Some(c) => batch.push(c),
            None => break,
        }
    }
    Ok(batch)
}

fn csv_error(e: csv::Error) -> TraceError {
    if e.is_io_error() {
        match e.into_kind() {
            csv::ErrorKind::Io(io) => TraceError::Io(io),
            other => TraceError::Invalid(format!("{other:?}")),
        }
    } else {
        TraceError::Invalid(format!("bad CSV: {e}"))
    }
}

/// See [`MoreEvidenceEstimate`] for the reasoning. `None` when nothing can be estimated
/// (no post had a markable site).
fn estimate_more(v: &VersionVerdict, posts_read: u64, candidates: usize) -> Option<MoreEvidenceEstimate> {
    if posts_read == 0 || v.summary.sites_total == 0 {
        return None;
    }
    let m = v.summary.sites_used as f64;
    let sites_per_post = (v.summary.sites_used.max(1)) as f64 / posts_read as f64;
    let top = v.scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // The expected per-site score of a single untampered leaker: 2/π, about 0.75 of it
    // after public-form weighting (half the sites show the public form, weighted 1/2).
    let single_leaker = 2.0 / std::f64::consts::PI * 0.75;
    let r = if m > 0.0 && top > 0.0 { (top / m).max(1e-3) } else { single_leaker };
    // A longer leak would be judged at the next stage, at half this stage's ε, per candidate.
    let eps1 = v.summary.epsilon / 2.0 / candidates.max(1) as f64;
    let needed = match v.summary.threshold {
        Some(z) if m > 0.0 => z * z / (r * r * m),
        _ => 2.0 * (1.0 / eps1).ln() / (r * r),
    };
    let needed = needed.max(m + 1.0);
    let more = ((needed - m) / sites_per_post).ceil().max(1.0);
    Some(MoreEvidenceEstimate {
        more_posts: more as u64,
        sites_needed: needed.ceil() as u64,
        sites_per_post,
        score_per_site: r,
        kind: "estimate",
    })
}

//! `datapact trace LEAK...`: which licensee leaked a dump (issue 7).
//!
//! Loads every revision of every post (deleted ones too), every licensee and every secret
//! version from the data directory, streams the leaks through `datapact_trace::Tracer`, adds
//! from the delivery ledger the share of the leaked posts each accused licensee received,
//! and prints the report (text or JSON). `--record` keeps the finding in the store.
//!
//! Deletion compliance (issue 10): for every accused licensee, the leaked posts it received that
//! were deleted are judged against its agreement's `deletion_deadline`
//! (`datapact_trace::judge_deletions`): when the leak also holds a post or revision ingested
//! after deletion + deadline, it provably postdates the deadline and, with `--record`, a
//! deletion-compliance violation is stored with the evidence; otherwise the report says the
//! leak may predate the deadline.
//!
//! Self-contained (only external crates), so the integration test can include it by path.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use datapact_core::{Clock, SystemClock};
use datapact_store::compliance::NewDeletionViolation;
use datapact_store::ledger::Ledger;
use datapact_store::secrets::SecretRing;
use datapact_store::{LeakFile, NewTraceFinding, Store};
use datapact_trace::{
    Canary, Candidate, CorpusBuilder, DeletedInLeak, DeletionVerdict, LeakFormat, TraceReport, TraceSettings, Tracer,
    Witness, judge_deletions,
};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

/// Revisions read from the store per page while loading the corpus.
const CORPUS_PAGE: usize = 10_000;
/// Read buffer per leak: large reads keep the chunker's copies cheap.
const READ_BUFFER: usize = 1 << 20;

/// `datapact trace`.
#[derive(Args, Clone, Debug)]
pub struct TraceArgs {
    /// Leaked dumps to trace (`-` reads standard input).
    #[arg(required = true, value_name = "LEAK")]
    pub leaks: Vec<PathBuf>,
    /// Format of the leaks: auto (sniffed per file), jsonl (X posts or response pages), csv
    /// (a header with a `text` column, `id` optional) or text (one post per line).
    #[arg(long, default_value = "auto", value_parser = parse_format)]
    pub format: LeakFormat,
    /// Bound on the probability of accusing any innocent licensee.
    #[arg(long, default_value_t = 1e-6)]
    pub epsilon: f64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Keep the finding (report, leak file hashes, time) in the store.
    #[arg(long)]
    pub record: bool,
    /// Keep reading fingerprints after a stage accused, to look for more colluders (slower).
    #[arg(long)]
    pub read_all: bool,
}

fn parse_format(value: &str) -> Result<LeakFormat, String> {
    value.parse()
}

/// Runs `datapact trace`, searching the leaks for `canaries` as well.
pub async fn run_with_canaries(
    args: &TraceArgs,
    data_dir: &Path,
    ledger: &Ledger,
    store: &dyn Store,
    canaries: Vec<Canary>,
    now: datapact_core::Timestamp,
) -> anyhow::Result<ExitCode> {
    let TraceResult { report, deletions, finding } =
        trace_full_at(args, data_dir, ledger, store, canaries, now).await?;
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        json["deletion_compliance"] = serde_json::to_value(&deletions)?;
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", report.to_text());
        print!("{}", deletions_text(&deletions));
    }
    if let Some(id) = finding {
        eprintln!("recorded trace finding {id}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Does the trace; returns the report and, with `--record`, the stored finding's id.
#[allow(dead_code)] // the integration test (tests/trace.rs) calls it
pub async fn trace(
    args: &TraceArgs,
    data_dir: &Path,
    ledger: &Ledger,
    store: &dyn Store,
    canaries: Vec<Canary>,
) -> anyhow::Result<(TraceReport, Option<i64>)> {
    let result = trace_full(args, data_dir, ledger, store, canaries).await?;
    Ok((result.report, result.finding))
}

/// What a leak shows about one accused licensee's deletions.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeletionCheck {
    pub licensee: i64,
    pub name: Option<String>,
    /// The agreement's `deletion_deadline` (`None`: the agreement sets none, nothing is judged).
    pub deletion_deadline: Option<String>,
    /// Leaked posts this licensee received that were deleted.
    pub deleted_posts: usize,
    pub verdicts: Vec<DeletionFinding>,
}

/// One deleted post's verdict, with when the licensee was told of the deletion.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeletionFinding {
    #[serde(flatten)]
    pub verdict: DeletionVerdict,
    /// When the licensee was first notified (feed or job), if it was.
    pub notified_at: Option<datapact_core::Timestamp>,
    pub notified_via: Option<String>,
    /// When the licensee first received the post.
    pub received_at: Option<datapact_core::Timestamp>,
}

/// The trace, the deletion-compliance checks and the stored finding.
pub struct TraceResult {
    pub report: TraceReport,
    pub deletions: Vec<DeletionCheck>,
    pub finding: Option<i64>,
}

/// The deletion checks as text, after the report.
pub fn deletions_text(checks: &[DeletionCheck]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for check in checks {
        let who = check.name.clone().unwrap_or_else(|| check.licensee.to_string());
        let Some(deadline) = &check.deletion_deadline else {
            if check.deleted_posts > 0 {
                let _ = writeln!(
                    out,
                    "deletion compliance: {who} received {} deleted post(s) found in the leak, but its agreement sets no deletion_deadline",
                    check.deleted_posts
                );
            }
            continue;
        };
        for finding in &check.verdicts {
            let _ = match &finding.verdict {
                DeletionVerdict::Violation { post_id, deleted_at, deadline_at, witness } => writeln!(
                    out,
                    "deletion compliance: VIOLATION by {who}: post {post_id} deleted at {} (deadline {deadline}, until {}) is in a leak that also holds post {} revision {}, available only from {}",
                    datapact_core::Timestamp(*deleted_at),
                    datapact_core::Timestamp(*deadline_at),
                    witness.post_id,
                    witness.revision,
                    datapact_core::Timestamp(witness.available_at)
                ),
                DeletionVerdict::MayPredate { post_id, deleted_at, deadline_at, .. } => writeln!(
                    out,
                    "deletion compliance: {who} leaked post {post_id} deleted at {}, but the leak may predate its deadline ({}): nothing in it is newer",
                    datapact_core::Timestamp(*deleted_at),
                    datapact_core::Timestamp(*deadline_at)
                ),
            };
        }
    }
    out
}

/// [`trace_full_at`] recording the finding at the system clock's now.
pub async fn trace_full(
    args: &TraceArgs,
    data_dir: &Path,
    ledger: &Ledger,
    store: &dyn Store,
    canaries: Vec<Canary>,
) -> anyhow::Result<TraceResult> {
    trace_full_at(args, data_dir, ledger, store, canaries, SystemClock.now()).await
}

/// Does the trace and the deletion-compliance checks; with `--record`, stores the finding and
/// the violations proved, dated `now` (the CLI's clock: `--now` in tests).
pub async fn trace_full_at(
    args: &TraceArgs,
    data_dir: &Path,
    ledger: &Ledger,
    store: &dyn Store,
    canaries: Vec<Canary>,
    now: datapact_core::Timestamp,
) -> anyhow::Result<TraceResult> {
    if !(args.epsilon > 0.0 && args.epsilon < 1.0) {
        bail!("--epsilon must be between 0 and 1 (exclusive), not {}", args.epsilon);
    }
    let ring = SecretRing::load(data_dir)
        .with_context(|| format!("cannot read the fingerprint secret in {}", data_dir.display()))?;
    let Some(ring) = ring else {
        bail!(
            "no fingerprint secret exists in {}: nothing served from this data directory was fingerprinted, so \
             there is nothing to trace (the gateway creates the secret when it first starts)",
            data_dir.display()
        );
    };
    let secrets: Vec<_> = ring.versions().cloned().collect();
    let mut corpus = CorpusBuilder::new();
    // For deletion proofs: when each revision became available, and when deleted posts were deleted.
    let mut available: HashMap<(u64, u32), i64> = HashMap::new();
    let mut deleted: HashMap<u64, i64> = HashMap::new();
    let mut after = 0;
    loop {
        let page = store.revisions_after(after, CORPUS_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for entry in &page {
            let id = entry.post.id.get() as u64;
            corpus.add_revision(id, entry.post.revision, &entry.post.text);
            available.insert((id, entry.post.revision), entry.ingested_at.0);
            if let Some(at) = entry.post.deleted_at {
                deleted.insert(id, at.0);
            }
        }
    }
    let licensees = store.licensees().await?;
    let candidates: Vec<Candidate> =
        licensees.iter().map(|l| Candidate { id: l.id as u64, name: l.name.clone() }).collect();
    if candidates.is_empty() {
        bail!("no licensee in {}: nobody could have received fingerprinted copies", data_dir.display());
    }
    let settings = TraceSettings { epsilon: args.epsilon, read_all: args.read_all, ..TraceSettings::default() };
    let tracer = Tracer::new(corpus.build(), secrets, candidates, canaries, settings)?;

    // Reading is CPU-bound (and parallel inside the tracer): keep it off the async workers.
    let leaks = args.leaks.clone();
    let (format, quiet, hash) = (args.format, args.json, args.record);
    let (outcome, leak_files) = tokio::task::spawn_blocking(move || read_leaks(tracer, &leaks, format, quiet, hash))
        .await
        .context("the trace stopped unexpectedly")??;
    let mut report = outcome.report;

    let mut deletions = Vec::new();
    if !report.accused.is_empty() {
        let leaked: HashSet<i64> = outcome.matched_post_ids.iter().map(|&id| id as i64).collect();
        for accused in &mut report.accused {
            let delivered = ledger.delivered_among(accused.licensee as i64, &leaked).await?;
            accused.delivered_posts = Some(delivered);
            accused.delivered_share =
                (report.posts_matched > 0).then(|| delivered as f64 / report.posts_matched as f64);
        }
        // What the leak certainly holds (a post by id, a revision by its exact text, a text that
        // matches one post alone), dated by when it became available.
        let witnesses: Vec<Witness> = outcome
            .matched_revisions
            .iter()
            .copied()
            .filter_map(|(post_id, revision)| {
                let available_at = *available.get(&(post_id, revision))?;
                Some(Witness { post_id, revision, available_at })
            })
            .collect();
        let agreements = datapact_gateway::terms::agreements(store)
            .await
            .map_err(|problem| anyhow::anyhow!("cannot read the agreements: {problem}"))?;
        let licensees = store.licensees().await?;
        for accused in &report.accused {
            let licensee_id = accused.licensee as i64;
            let name = licensees.iter().find(|l| l.id == licensee_id).map(|l| l.name.clone());
            let deadline = name
                .as_ref()
                .and_then(|n| agreements.iter().find(|a| &a.licensee == n))
                .and_then(|a| a.deletion_deadline);
            let received = ledger.received(licensee_id).await?;
            let deleted_in_leak: Vec<DeletedInLeak> = outcome
                .matched_post_ids
                .iter()
                .filter(|&&id| received.contains_key(&(id as i64)))
                .filter_map(|&id| Some(DeletedInLeak { post_id: id, deleted_at: *deleted.get(&id)? }))
                .collect();
            let notices: HashMap<i64, (datapact_core::Timestamp, String)> = store
                .deletion_notices(Some(licensee_id))
                .await?
                .into_iter()
                .map(|n| (n.post_id.get(), (n.notified_at, n.via)))
                .collect();
            let verdicts = match deadline {
                None => Vec::new(),
                Some(span) => judge_deletions(&deleted_in_leak, span.millis(), &witnesses)
                    .into_iter()
                    .map(|verdict| {
                        let post = match verdict {
                            DeletionVerdict::Violation { post_id, .. }
                            | DeletionVerdict::MayPredate { post_id, .. } => post_id as i64,
                        };
                        let notice = notices.get(&post);
                        DeletionFinding {
                            verdict,
                            notified_at: notice.map(|n| n.0),
                            notified_via: notice.map(|n| n.1.clone()),
                            received_at: received.get(&post).map(|r| r.first_at),
                        }
                    })
                    .collect(),
            };
            deletions.push(DeletionCheck {
                licensee: licensee_id,
                name,
                deletion_deadline: deadline.map(|d| d.to_string()),
                deleted_posts: deleted_in_leak.len(),
                verdicts,
            });
        }
    }

    let finding = if args.record {
        let actor = format!("cli@{}", gethostname::gethostname().to_string_lossy());
        Some(record(store, &report, &deletions, leak_files, actor, now).await?)
    } else {
        None
    };
    Ok(TraceResult { report, deletions, finding })
}

/// Keeps a trace's finding (the report, the leak files' hashes, who and when) and the deletion
/// violations it proves: what `datapact trace --record` and the dashboard's trace page store.
/// Returns the finding's id.
pub async fn record(
    store: &dyn Store,
    report: &TraceReport,
    deletions: &[DeletionCheck],
    leak_files: Vec<LeakFile>,
    actor: String,
    at: datapact_core::Timestamp,
) -> anyhow::Result<i64> {
    let mut json = serde_json::to_value(report)?;
    json["deletion_compliance"] = serde_json::to_value(deletions)?;
    let finding = NewTraceFinding {
        at,
        actor,
        leak_files: leak_files.clone(),
        outcome: format!("{:?}", report.outcome),
        accused: report.accused.iter().map(|a| a.licensee as i64).collect(),
        report: json,
    };
    let id = store.record_trace_finding(finding).await.context("cannot record the finding")?;
    let violations: Vec<NewDeletionViolation> = deletions
        .iter()
        .flat_map(|check| check.verdicts.iter().map(move |f| (check, f)))
        .filter_map(|(check, f)| match f.verdict {
            DeletionVerdict::Violation { post_id, deleted_at, deadline_at, witness } => Some(NewDeletionViolation {
                licensee_id: check.licensee,
                post_id: datapact_core::PostId::new(post_id as i64),
                deleted_at: datapact_core::Timestamp(deleted_at),
                deadline_at: datapact_core::Timestamp(deadline_at),
                notified_at: f.notified_at,
                finding_id: Some(id),
                evidence: serde_json::json!({
                    "deletion_deadline": check.deletion_deadline,
                    "witness": witness,
                    "witness_available_at": datapact_core::Timestamp(witness.available_at),
                    "received_at": f.received_at,
                    "notified_at": f.notified_at,
                    "notified_via": f.notified_via,
                    "leak_files": leak_files,
                }),
                recorded_at: at,
            }),
            DeletionVerdict::MayPredate { .. } => None,
        })
        .collect();
    if !violations.is_empty() {
        store.record_deletion_violations(violations).await.context("cannot record the deletion violations")?;
    }
    Ok(id)
}

fn read_leaks(
    mut tracer: Tracer,
    leaks: &[PathBuf],
    format: LeakFormat,
    quiet: bool,
    hash: bool,
) -> anyhow::Result<(datapact_trace::TraceOutcome, Vec<LeakFile>)> {
    let sizes: Option<u64> = leaks
        .iter()
        .map(|p| if p.as_os_str() == "-" { None } else { std::fs::metadata(p).ok().map(|m| m.len()) })
        .sum();
    let progress = if quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        match sizes {
            Some(total) => ProgressBar::new(total).with_style(
                ProgressStyle::with_template("trace [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("trace {spinner} {bytes} {binary_bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        }
    };
    let mut files = Vec::new();
    for path in leaks {
        let name = path.display().to_string();
        let source: Box<dyn Read> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(File::open(path).with_context(|| format!("cannot open {name}"))?)
        };
        let mut hashing = Hashing { inner: source, sha: hash.then(Sha256::new), bytes: 0 };
        tracer
            .read_leak(&name, BufReader::with_capacity(READ_BUFFER, &mut hashing), format, &mut |n| progress.inc(n))
            .with_context(|| format!("cannot trace {name}"))?;
        if let Some(sha) = hashing.sha.take() {
            files.push(LeakFile { name, bytes: hashing.bytes, sha256: hex::encode(sha.finalize()) });
        }
    }
    progress.finish_and_clear();
    Ok((tracer.finish(), files))
}

/// Hashes what passes through, so `--record` identifies the exact bytes traced without
/// reading a leak twice.
struct Hashing<R> {
    inner: R,
    sha: Option<Sha256>,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(sha) = &mut self.sha {
            sha.update(&buf[..n]);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

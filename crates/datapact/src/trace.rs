//! `datapact trace LEAK...`: which licensee leaked a dump (issue 7).
//!
//! Loads every revision of every post (deleted ones too), every licensee and every secret
//! version from the data directory, streams the leaks through `datapact_trace::Tracer`, adds
//! from the delivery ledger the share of the leaked posts each accused licensee received,
//! and prints the report (text or JSON). `--record` keeps the finding in the store.
//!
//! Self-contained (only external crates), so the integration test can include it by path.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use datapact_core::{Clock, SystemClock};
use datapact_store::ledger::Ledger;
use datapact_store::secrets::SecretRing;
use datapact_store::{LeakFile, NewTraceFinding, Store};
use datapact_trace::{Canary, Candidate, CorpusBuilder, LeakFormat, TraceReport, TraceSettings, Tracer};
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
) -> anyhow::Result<ExitCode> {
    let (report, finding) = trace(args, data_dir, ledger, store, canaries).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    if let Some(id) = finding {
        eprintln!("recorded trace finding {id}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Does the trace; returns the report and, with `--record`, the stored finding's id.
pub async fn trace(
    args: &TraceArgs,
    data_dir: &Path,
    ledger: &Ledger,
    store: &dyn Store,
    canaries: Vec<Canary>,
) -> anyhow::Result<(TraceReport, Option<i64>)> {
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
    let mut after = 0;
    loop {
        let page = store.revisions_after(after, CORPUS_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for entry in &page {
            corpus.add_revision(entry.post.id.get() as u64, entry.post.revision, &entry.post.text);
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

    if !report.accused.is_empty() {
        let leaked: HashSet<i64> = outcome.matched_post_ids.iter().map(|&id| id as i64).collect();
        for accused in &mut report.accused {
            let delivered = ledger.delivered_among(accused.licensee as i64, &leaked).await?;
            accused.delivered_posts = Some(delivered);
            accused.delivered_share =
                (report.posts_matched > 0).then(|| delivered as f64 / report.posts_matched as f64);
        }
    }

    let finding = if args.record {
        let finding = NewTraceFinding {
            at: SystemClock.now(),
            actor: format!("cli@{}", gethostname::gethostname().to_string_lossy()),
            leak_files,
            outcome: format!("{:?}", report.outcome),
            accused: report.accused.iter().map(|a| a.licensee as i64).collect(),
            report: serde_json::to_value(&report)?,
        };
        Some(store.record_trace_finding(finding).await.context("cannot record the finding")?)
    } else {
        None
    };
    Ok((report, finding))
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

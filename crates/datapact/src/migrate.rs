//! `datapact migrate --from sqlite://PATH --to postgres://…`: the command line of
//! `datapact_store::migrate` (progress bars, the summary, the exit status).

use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use datapact_core::Clock;
use datapact_store::PgStore;
use datapact_store::migrate::{MigrationReport, Progress, TableState, migrate};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// `--from`: `sqlite://PATH` or a bare path.
fn source_dir(from: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = from.strip_prefix("sqlite://") {
        if path.is_empty() {
            bail!("--from sqlite:// names no directory: give the data directory, e.g. sqlite:///var/lib/datapact");
        }
        return Ok(PathBuf::from(path));
    }
    if from.contains("://") {
        bail!("--from takes the embedded store's data directory, as sqlite://PATH or PATH");
    }
    Ok(PathBuf::from(from))
}

pub async fn run(from: &str, to: &str, quiet: bool, json: bool, clock: Arc<dyn Clock>) -> anyhow::Result<ExitCode> {
    let data_dir = source_dir(from)?;
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        // Never echoed: the URL may hold a password.
        bail!("--to takes a PostgreSQL URL: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE");
    }
    let target = PgStore::connect(to).await.context("cannot open the PostgreSQL store named by --to")?;
    let show = !quiet && std::io::stderr().is_terminal();
    // One bar per table, each on its own line (finished bars stay, as a record of the run).
    let bars = MultiProgress::new();
    let current: RefCell<Option<(String, ProgressBar)>> = RefCell::new(None);
    let style = ProgressStyle::with_template("{prefix:>22} [{bar:30}] {pos}/{len} rows {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let on_progress = |progress: Progress<'_>| {
        if !show {
            return;
        }
        let mut current = current.borrow_mut();
        if current.as_ref().is_none_or(|(table, _)| table != progress.table) {
            let bar = bars.add(ProgressBar::new(progress.total).with_style(style.clone()));
            bar.set_prefix(progress.table.to_owned());
            *current = Some((progress.table.to_owned(), bar));
        }
        let Some((_, bar)) = current.as_ref() else { return };
        bar.set_position(progress.copied);
        match progress.state {
            TableState::Copying => {}
            TableState::Copied => bar.finish_with_message("copied"),
            TableState::AlreadyCopied => bar.finish_with_message("already copied"),
        }
    };
    let outcome = migrate(&data_dir, &target, clock, &on_progress).await;
    if let Some((_, bar)) = current.borrow_mut().take() {
        bar.abandon();
        eprintln!(); // the last bar's line ends before the summary starts
    }
    target.close().await;
    let report = outcome.with_context(|| format!("cannot migrate {}", data_dir.display()))?;
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["ok"] = serde_json::Value::Bool(report.ok());
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_summary(&report, &data_dir);
    }
    if report.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        for mismatch in &report.mismatches {
            eprintln!("mismatch: {mismatch}");
        }
        eprintln!(
            "error: the copy in PostgreSQL does not match {}: do not serve from it; the data directory is unchanged",
            data_dir.display()
        );
        Ok(ExitCode::from(1))
    }
}

fn print_summary(report: &MigrationReport, data_dir: &std::path::Path) {
    if report.already_migrated {
        println!(
            "already migrated: every table in PostgreSQL already holds exactly the rows of {}; nothing was changed",
            data_dir.display()
        );
    } else {
        let copied: u64 = report.tables.iter().map(|t| t.copied).sum();
        println!("copied {copied} rows from {} into PostgreSQL:", data_dir.display());
    }
    for table in &report.tables {
        let state = match table.state {
            TableState::Copied => format!("copied {}", table.copied),
            TableState::AlreadyCopied => "copied by an earlier run".to_owned(),
            TableState::Copying => "interrupted".to_owned(),
        };
        println!(
            "  {:<22} {:>10} rows in {:<11} {:>10} in PostgreSQL  ({state})",
            table.table, table.source_rows, table.source_file, table.target_rows
        );
    }
    if !report.sequences_moved.is_empty() {
        println!("identity sequences moved past the copied ids: {}", report.sequences_moved.join(", "));
    }
    println!("fingerprint secret ring in the store: {} version(s)", report.ring_versions);
    let head = |head: &Option<String>| head.clone().unwrap_or_else(|| "none (no batch)".into());
    println!("ledger head, ledger.db:   {}", head(&report.sqlite_head));
    println!("ledger head, PostgreSQL:  {}", head(&report.postgres_head));
    if report.ok() {
        println!("verified: every table's row count and the ledger chain match");
    }
}

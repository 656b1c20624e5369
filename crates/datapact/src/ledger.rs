//! The ledger commands: `usage`, `deliveries`, `ledger verify`, `ledger prune`.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use datapact_core::Clock;
use datapact_ledger::MonthKey;
use datapact_store::Store;
use datapact_store::ledger::{Ledger, UsageBy, parse_anchor};

use crate::cli::{ExportFormat, LedgerCommand, UsageByArg};

fn open(data_dir: &Path, clock: Arc<dyn Clock>) -> anyhow::Result<Ledger> {
    Ledger::open_for_reading(data_dir, clock)
        .with_context(|| format!("cannot open the ledger in {}", data_dir.display()))
}

fn month(text: Option<&str>, clock: &dyn Clock) -> anyhow::Result<MonthKey> {
    match text {
        None => Ok(MonthKey::of(clock.now())),
        Some(text) => MonthKey::parse(text).with_context(|| format!("--month {text:?} is not a month: use YYYY-MM")),
    }
}

async fn licensee_id(store: &dyn Store, name: &str) -> anyhow::Result<i64> {
    match store.licensee(name).await? {
        Some(licensee) => Ok(licensee.id),
        None => bail!("no licensee named {name:?} (see `datapact licensee list`)"),
    }
}

pub async fn usage(
    data_dir: &Path,
    store: &dyn Store,
    licensee: Option<&str>,
    month_text: Option<&str>,
    by: UsageByArg,
    json: bool,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<ExitCode> {
    let month = month(month_text, clock.as_ref())?;
    let licensee_id = match licensee {
        Some(name) => Some(licensee_id(store, name).await?),
        None => None,
    };
    let by = match by {
        UsageByArg::Month => UsageBy::Month,
        UsageByArg::Day => UsageBy::Day,
        UsageByArg::Endpoint => UsageBy::Endpoint,
        UsageByArg::Purpose => UsageBy::Purpose,
    };
    let names: HashMap<i64, String> = store.licensees().await?.into_iter().map(|l| (l.id, l.name)).collect();
    let lines = open(data_dir, clock)?.usage(licensee_id, month, by)?;
    let name = |id: i64| names.get(&id).cloned().unwrap_or_else(|| format!("#{id}"));
    let mut out = std::io::stdout().lock();
    if json {
        let rows: Vec<_> = lines
            .iter()
            .map(|line| {
                let mut value = serde_json::to_value(line).unwrap_or_default();
                value["licensee"] = serde_json::json!(name(line.licensee_id));
                value
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if lines.is_empty() {
        writeln!(out, "no usage recorded in {:04}-{:02}", month.year(), month.month())?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<20} {:<12} {:>10} {:>12} {:>12} {:>10} {:>10} {:>14}",
        "LICENSEE", "GROUP", "RESPONSES", "DELIVERED", "COUNTED", "OVERAGE", "USERS", "BYTES"
    )?;
    for line in &lines {
        writeln!(
            out,
            "{:<20} {:<12} {:>10} {:>12} {:>12} {:>10} {:>10} {:>14}",
            name(line.licensee_id),
            line.group,
            line.responses,
            line.delivered,
            line.counted,
            line.overage,
            line.user_reads,
            line.bytes
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn deliveries(
    data_dir: &Path,
    store: &dyn Store,
    licensee: &str,
    month_text: Option<&str>,
    format: ExportFormat,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<ExitCode> {
    let month = month(month_text, clock.as_ref())?;
    let licensee_id = licensee_id(store, licensee).await?;
    let ledger = open(data_dir, clock)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if let ExportFormat::Csv = format {
        writeln!(out, "at,post_id,revision,request_id,counted")?;
    }
    ledger.deliveries(licensee_id, month, |record| match format {
        ExportFormat::Csv => writeln!(
            out,
            "{},{},{},{},{}",
            record.at.to_x_string(),
            record.post_id,
            record.revision,
            csv_field(&record.request_id),
            record.counted
        ),
        ExportFormat::Jsonl => {
            serde_json::to_writer(&mut out, &record)?;
            out.write_all(b"\n")
        }
    })?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A CSV field, quoted when it holds a separator, quote or line break.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

pub fn ledger(data_dir: &Path, command: LedgerCommand, clock: Arc<dyn Clock>) -> anyhow::Result<ExitCode> {
    let ledger = open(data_dir, clock.clone())?;
    match command {
        LedgerCommand::Verify { expect, json } => {
            let expect = match expect {
                Some(text) => Some(
                    parse_anchor(&text).with_context(|| format!("--expect {text:?} is not a head: use SEQ:HASH"))?,
                ),
                None => None,
            };
            let outcome = ledger.verify(expect)?;
            match (outcome, json) {
                (Ok(report), true) => {
                    let head = report.summary.head.map(|h| format!("{}:{}", h.seq, h.hash.to_hex()));
                    println!(
                        "{}",
                        serde_json::json!({
                            "ok": true, "chain": report.summary.chain, "batches": report.summary.batches,
                            "pruned_batches": report.summary.pruned_batches, "rows": report.summary.rows,
                            "daily_totals_checked": report.daily_checked, "head": head,
                        })
                    );
                    Ok(ExitCode::SUCCESS)
                }
                (Ok(report), false) => {
                    let summary = &report.summary;
                    println!(
                        "ledger verifies: chain {}, {} batches ({} pruned), {} rows, {} daily totals",
                        summary.chain, summary.batches, summary.pruned_batches, summary.rows, report.daily_checked
                    );
                    if let Some(head) = summary.head {
                        println!("head {}:{}", head.seq, head.hash.to_hex());
                        println!(
                            "keep the head outside this machine and pass it to `ledger verify --expect` next time: \
                             that also catches the newest batches being rewritten or dropped"
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                (Err(failure), true) => {
                    println!("{}", serde_json::json!({ "ok": false, "break": failure.to_string() }));
                    Ok(ExitCode::from(1))
                }
                (Err(failure), false) => {
                    eprintln!("the ledger does NOT verify: {failure}");
                    eprintln!("the database was changed outside datapact; restore it from a backup and investigate");
                    Ok(ExitCode::from(1))
                }
            }
        }
        LedgerCommand::Prune { retention_days } => {
            let before = clock.now().plus_millis(-(i64::from(retention_days)) * 86_400_000);
            let summary = ledger.prune(before)?;
            println!(
                "pruned {} batches committed before {} ({} usage events, {} deliveries; their hashes are kept) and {} \
                 expired idempotent responses",
                summary.batches,
                before.to_x_string(),
                summary.events,
                summary.deliveries,
                summary.responses
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

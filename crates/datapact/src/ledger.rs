//! The ledger commands: `usage`, `deliveries`, `ledger verify`, `ledger prune`, `ledger checkpoint`.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use datapact_core::Clock;
use datapact_ledger::ChainBreak;
use datapact_ledger::MonthKey;
use datapact_store::Store;
use datapact_store::ledger::{UsageBy, VerifyFailure, parse_anchor, verify_json};

use crate::cli::{ExportFormat, LedgerCommand, UsageByArg};
use crate::commands::LedgerPlace;

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
    place: &LedgerPlace<'_>,
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
    let lines = place.open_for_reading(clock)?.usage(licensee_id, month, by).await?;
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
    place: &LedgerPlace<'_>,
    store: &dyn Store,
    licensee: &str,
    month_text: Option<&str>,
    format: ExportFormat,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<ExitCode> {
    let month = month(month_text, clock.as_ref())?;
    let licensee_id = licensee_id(store, licensee).await?;
    let ledger = place.open_for_reading(clock)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if let ExportFormat::Csv = format {
        writeln!(out, "at,post_id,revision,request_id,counted")?;
    }
    ledger
        .deliveries(licensee_id, month, |record| match format {
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
        })
        .await?;
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

pub async fn ledger(
    place: &LedgerPlace<'_>,
    store: &dyn Store,
    command: LedgerCommand,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<ExitCode> {
    let ledger = place.open_for_reading(clock.clone())?;
    match command {
        LedgerCommand::Checkpoint(command) => crate::checkpoints::run(command, store, &ledger, clock.as_ref()).await,
        LedgerCommand::Verify { expect, checkpoints, keys, json } => {
            let mut expect = expect
                .iter()
                .map(|text| {
                    parse_anchor(text)
                        .with_context(|| format!("--expect {text:?} is not a head: use SEQ:HASH or CHAIN@SEQ:HASH"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let (signed, keys_from) = match checkpoints.is_empty() {
                true => (Vec::new(), ""),
                false => match crate::checkpoints::checked(&checkpoints, keys.as_deref(), store).await {
                    Ok(checked) => checked,
                    Err(error) if json => {
                        println!("{}", serde_json::json!({ "ok": false, "break": format!("{error:#}") }));
                        return Ok(ExitCode::from(1));
                    }
                    Err(error) => return Err(error),
                },
            };
            expect.extend(crate::checkpoints::anchors(&signed));
            let outcome = ledger.verify(&expect).await?;
            // Which signed checkpoints the ledger departs from, when it does.
            let departed: Vec<u64> = match &outcome {
                Err(VerifyFailure::Chain(ChainBreak::AnchorMismatch { expected, .. })) => {
                    crate::checkpoints::signed_with(&signed, expected)
                }
                _ => Vec::new(),
            };
            if json {
                let mut report = verify_json(&outcome);
                if !signed.is_empty() {
                    let numbers: Vec<u64> = signed.iter().map(|s| s.checkpoint.number).collect();
                    report["checkpoints"] = serde_json::json!({
                        "checked": numbers, "keys": keys_from, "departed_from": departed,
                    });
                }
                println!("{report}");
                return Ok(if outcome.is_ok() { ExitCode::SUCCESS } else { ExitCode::from(1) });
            }
            match outcome {
                Ok(report) => {
                    println!("ledger verifies: {} daily totals", report.daily_checked);
                    if let (Some(first), Some(last)) = (
                        signed.iter().min_by_key(|s| s.checkpoint.number),
                        signed.iter().max_by_key(|s| s.checkpoint.number),
                    ) {
                        println!(
                            "it extends all {} signed checkpoints given ({} to {}, signatures checked with {keys_from})",
                            signed.len(),
                            first.checkpoint.number,
                            last.checkpoint.number
                        );
                    }
                    let several = report.chains.len() > 1;
                    for summary in &report.chains {
                        println!(
                            "chain {}: {} batches ({} pruned), {} rows",
                            summary.chain, summary.batches, summary.pruned_batches, summary.rows
                        );
                        if let Some(head) = summary.head {
                            let chain = if several { format!("{}@", summary.chain) } else { String::new() };
                            println!("head {chain}{}:{}", head.seq, head.hash.to_hex());
                        }
                    }
                    if report.chains.iter().any(|summary| summary.head.is_some()) {
                        println!(
                            "keep the heads outside this machine and pass them to `ledger verify --expect` next time: \
                             that also catches the newest batches being rewritten or dropped"
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(failure) => {
                    eprintln!("the ledger does NOT verify: {failure}");
                    if !departed.is_empty() {
                        let numbers: Vec<String> = departed.iter().map(u64::to_string).collect();
                        eprintln!(
                            "it departs from what signed checkpoint {} states: history covered by a signature was rewritten",
                            numbers.join(", ")
                        );
                    }
                    eprintln!("the database was changed outside datapact; restore it from a backup and investigate");
                    Ok(ExitCode::from(1))
                }
            }
        }
        LedgerCommand::Prune { retention_days } => {
            let before = clock.now().plus_millis(-(i64::from(retention_days)) * 86_400_000);
            let summary = ledger.prune(before).await?;
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

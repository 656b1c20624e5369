//! `datapact report`: an evidence report on a licensee over a period (issue 11, parts 2 and 3).
//!
//! Gathers from the store and the ledger, as of `--as-of` (default now), everything
//! `datapact_report::Report` holds, then renders it (JSON, Markdown, self-contained HTML, or PDF
//! printed from that HTML by headless Chromium). A report is a pure function of the records as
//! of `--as-of`: the terms, price books and statuses are replayed from the audit log to the end of
//! the period (or `--as-of`, if earlier); invoices issued, payments received, audit entries, trace findings and
//! deletion violations recorded later are left out, usage counts deliveries committed up to
//! then, and the signed checkpoint is one made by then; so the printed regeneration command
//! gives the same bytes again.
//!
//! Trace findings are read as `datapact trace --record` kept them (with their leak files'
//! hashes), rather than traced again, so the report needs neither the leaks nor minutes of
//! scoring.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{Datelike, NaiveDate};
use clap::{Args, ValueEnum};
use datapact_billing::{InvoiceAccount, Money, PriceBook, suspension};
use datapact_core::Timestamp;
use datapact_ledger::DayKey;
use datapact_report as model;
use datapact_store::ledger::Ledger;
use datapact_store::{LicenseeAccount, Store};
use datapact_terms::Agreement;
use sha2::{Digest, Sha256};

/// `datapact report`.
#[derive(Args, Clone, Debug)]
pub struct ReportArgs {
    /// The licensee (or --all for every licensee, one section each).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub licensee: Option<String>,
    /// Every licensee, one section each.
    #[arg(long)]
    pub all: bool,
    /// The period as a month, YYYY-MM (instead of --from and --to).
    #[arg(long, value_name = "YYYY-MM", conflicts_with_all = ["from", "to"])]
    pub month: Option<String>,
    /// First day of the period (UTC), YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD", requires = "to")]
    pub from: Option<String>,
    /// Last day of the period (UTC, inclusive), YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD", requires = "from")]
    pub to: Option<String>,
    /// html (one self-contained page), md, json, or pdf (that page printed by headless Chromium; needs --out).
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub format: ReportFormat,
    /// Write the report here instead of standard output (required for pdf).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Read the records as of this instant (RFC 3339; default now): the regeneration command
    /// names it, so rerunning gives the same bytes.
    #[arg(long, value_name = "RFC3339")]
    pub as_of: Option<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Html,
    Md,
    Json,
    Pdf,
}

impl ReportFormat {
    fn name(self) -> &'static str {
        match self {
            ReportFormat::Html => "html",
            ReportFormat::Md => "md",
            ReportFormat::Json => "json",
            ReportFormat::Pdf => "pdf",
        }
    }
}

/// Where Debian's Chromium is.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long Chromium may take to print a report.
const CHROMIUM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// How the store was named on the command line, for the regeneration command.
pub enum StoreArg<'a> {
    DataDir(&'a Path),
    /// A PostgreSQL store: its URL may hold a password, so the command reads it from the environment.
    Postgres,
}

/// Runs `datapact report`.
pub async fn run(
    args: &ReportArgs,
    store_arg: StoreArg<'_>,
    store: &dyn Store,
    ledger: &Ledger,
    now: Timestamp,
) -> anyhow::Result<ExitCode> {
    let (from, to) = period(args)?;
    let as_of = match &args.as_of {
        Some(text) => Timestamp::parse_rfc3339(text).map_err(|e| {
            anyhow::anyhow!("--as-of {text:?}: {e} (write an RFC 3339 instant such as 2027-01-31T00:00:00Z)")
        })?,
        None => now,
    };
    if as_of > now {
        bail!(
            "--as-of {as_of} is in the future (it is {now}): a report states what the records held at an instant \
             that has passed; leave --as-of out for now"
        );
    }
    if args.format == ReportFormat::Pdf {
        if args.out.is_none() {
            bail!("--format pdf needs --out FILE (a PDF is not written to standard output)");
        }
        if !Path::new(CHROMIUM).exists() {
            bail!(
                "--format pdf prints the HTML report with headless Chromium, and {CHROMIUM} does not exist: install \
                 Debian's `chromium` package (apt-get install chromium), or use --format html and print it from a browser"
            );
        }
    }
    let names = match &args.licensee {
        Some(name) => match store.licensee(name).await? {
            None => bail!("no licensee named {name:?} (see `datapact licensee list`)"),
            Some(licensee) if licensee.created_at > as_of => {
                bail!("licensee {name:?} was created at {}, after --as-of {as_of}", licensee.created_at)
            }
            Some(_) => vec![name.clone()],
        },
        None => {
            // Those that existed by --as-of: one created later would change a rerun's bytes.
            let mut all: Vec<String> =
                store.licensees().await?.into_iter().filter(|l| l.created_at <= as_of).map(|l| l.name).collect();
            all.sort();
            all
        }
    };
    // Refuse an unwritable --out before the work, not after.
    if let Some(out) = &args.out {
        std::fs::File::create(out).with_context(|| {
            format!("cannot write --out {}: choose a path in an existing, writable directory", out.display())
        })?;
    }
    let written =
        write(args, store, ledger, &names, (from, to), as_of, command(args, &store_arg, from, to, as_of)).await;
    if written.is_err()
        && let Some(out) = &args.out
    {
        // Leave no empty or half-written file behind.
        let _ = std::fs::remove_file(out);
    }
    written
}

/// Gathers, renders and writes the report.
async fn write(
    args: &ReportArgs,
    store: &dyn Store,
    ledger: &Ledger,
    names: &[String],
    (from, to): (NaiveDate, NaiveDate),
    as_of: Timestamp,
    command: String,
) -> anyhow::Result<ExitCode> {
    let report = gather(store, ledger, names, from, to, as_of, command).await?;
    let bytes = match args.format {
        ReportFormat::Json => model::to_json(&report).into_bytes(),
        ReportFormat::Md => model::to_markdown(&report).into_bytes(),
        ReportFormat::Html => model::to_html(&report).into_bytes(),
        ReportFormat::Pdf => {
            let out = args.out.as_deref().expect("checked above");
            print_pdf(&model::to_html(&report), out)?;
            eprintln!("wrote {}", out.display());
            return Ok(ExitCode::SUCCESS);
        }
    };
    match &args.out {
        Some(out) => {
            std::fs::write(out, &bytes).with_context(|| format!("cannot write --out {}", out.display()))?;
            eprintln!("wrote {}", out.display());
        }
        None => std::io::stdout().lock().write_all(&bytes)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_day(flag: &str, text: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| anyhow::anyhow!("{flag} {text:?} is not a date: write YYYY-MM-DD (UTC), e.g. 2026-11-01"))
}

/// The period's first and last day (inclusive).
fn period(args: &ReportArgs) -> anyhow::Result<(NaiveDate, NaiveDate)> {
    match (&args.month, &args.from, &args.to) {
        (Some(month), None, None) => {
            let Some(m) = datapact_billing::Month::parse(month) else {
                bail!("--month {month:?} is not a month: write YYYY-MM, e.g. 2026-11");
            };
            Ok((m.first_day(), m.last_day()))
        }
        (None, Some(from), Some(to)) => {
            let (from, to) = (parse_day("--from", from)?, parse_day("--to", to)?);
            if from > to {
                bail!("--from {from} is after --to {to}: the period runs from --from to --to, inclusive");
            }
            if (to - from).num_days() > 3660 {
                bail!("the period from {from} to {to} is longer than ten years: report on a shorter one");
            }
            Ok((from, to))
        }
        _ => bail!("name the period: --month YYYY-MM, or --from YYYY-MM-DD --to YYYY-MM-DD"),
    }
}

fn start_of(day: NaiveDate) -> Timestamp {
    Timestamp::from_datetime(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
}

/// Quotes an argument for a POSIX shell when it needs it.
fn shell_quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c)) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// The command that regenerates this report byte for byte.
fn command(args: &ReportArgs, store_arg: &StoreArg<'_>, from: NaiveDate, to: NaiveDate, as_of: Timestamp) -> String {
    let mut words: Vec<String> = vec!["datapact".into()];
    match store_arg {
        StoreArg::DataDir(dir) => {
            // Absolute, so the command works from any directory.
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            words.extend(["--data-dir".into(), shell_quote(&dir.display().to_string())])
        }
        StoreArg::Postgres => words.extend(["--store".into(), "\"$DATAPACT_STORE\"".into()]),
    }
    words.push("report".into());
    match &args.licensee {
        Some(name) => words.push(shell_quote(name)),
        None => words.push("--all".into()),
    }
    words.extend(["--from".into(), from.to_string(), "--to".into(), to.to_string()]);
    words.extend(["--as-of".into(), as_of.to_string(), "--format".into(), args.format.name().into()]);
    // Not the original --out: rerunning must not overwrite the document it checks. Text formats
    // go to standard output; a PDF needs a file (and carries Chromium's creation date, so only its
    // text, not its bytes, comes out the same).
    if args.format == ReportFormat::Pdf {
        words.extend(["--out".into(), "regenerated.pdf".into()]);
    }
    words.join(" ")
}

fn text_of(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Everything the sections read, read once.
struct Records {
    agreements: Vec<Agreement>,
    terms_toml: String,
    billing_terms: HashMap<String, datapact_billing::BillingTerms>,
    /// Status and reason per licensee, as of the terms' instant.
    statuses: HashMap<String, (String, String)>,
    audit: Vec<datapact_store::AuditEntry>,
    accounts: Vec<LicenseeAccount>,
    issued: HashMap<String, datapact_store::StoredInvoice>,
    findings: Vec<datapact_store::TraceFinding>,
    violations: Vec<datapact_store::Violation>,
    price_books: Vec<PriceBook>,
}

#[allow(clippy::too_many_arguments)]
async fn gather(
    store: &dyn Store,
    ledger: &Ledger,
    names: &[String],
    from: NaiveDate,
    to: NaiveDate,
    as_of: Timestamp,
    command: String,
) -> anyhow::Result<model::Report> {
    let mut audit = store.audit_log(usize::MAX >> 1).await?;
    audit.retain(|entry| entry.at <= as_of);
    audit.sort_by_key(|entry| entry.seq);
    let period_end = start_of(to.succ_opt().unwrap_or(to));
    let cut = Timestamp(period_end.millis().min(as_of.millis().saturating_add(1)));
    // The terms in force at the end of the period (or at --as-of, if earlier), replayed from the
    // audit log: every change of terms is written there with the state after it.
    let InForce { terms, price_books, statuses } = terms_in_force(&audit, cut)?;
    let toml = terms.to_toml();
    let billing_terms: HashMap<String, datapact_billing::BillingTerms> =
        terms.licensees.iter().map(|l| (l.terms.name.clone(), l.terms.billing.clone())).collect();
    let agreements: Vec<Agreement> =
        terms.licensees.iter().filter_map(|l| Agreement::resolve(terms.plan(&l.terms.plan)?, &l.terms).ok()).collect();
    let books_json = serde_json::to_string(&price_books)?;
    let issued: HashMap<String, datapact_store::StoredInvoice> =
        store.invoices(None, None).await?.into_iter().map(|i| (i.number.clone(), i)).collect();
    let mut findings = store.trace_findings(100_000).await?;
    findings.retain(|f| f.finding.at <= as_of);
    findings.sort_by_key(|f| f.id);
    let records = Records {
        agreements,
        terms_toml: toml,
        billing_terms,
        statuses,
        audit,
        accounts: store.invoice_accounts(None).await?,
        issued,
        findings,
        violations: store.violations(None).await?,
        price_books,
    };

    let mut sections = Vec::new();
    let mut ranges = Vec::new();
    let mut leak_inputs: BTreeMap<String, model::InputHash> = BTreeMap::new();
    for name in names {
        let Some(licensee) = store.licensee(name).await? else { continue };
        let section = licensee_section(store, ledger, &records, &licensee, from, to, as_of, cut).await?;
        for finding in &records.findings {
            if section.trace_findings.iter().any(|t| t.finding_id == finding.id)
                || section.canary_hits.iter().any(|c| c.finding_id == finding.id)
            {
                for leak in &finding.finding.leak_files {
                    leak_inputs.entry(leak.sha256.clone()).or_insert_with(|| model::InputHash {
                        kind: "leak".into(),
                        name: leak.name.clone(),
                        bytes: leak.bytes,
                        sha256: leak.sha256.clone(),
                    });
                }
            }
        }
        // From the first month's first day: the month-to-date counts rest on those batches too.
        let first_month_start = start_of(from.with_day(1).unwrap_or(from));
        for range in ledger.batch_ranges(licensee.id, first_month_start, cut).await? {
            ranges.push(model::LedgerRange {
                licensee: name.clone(),
                chain: range.chain,
                first_seq: range.first_seq,
                last_seq: range.last_seq,
                events: range.events,
            });
        }
        sections.push(section);
    }

    // The newest batch of each chain the report rests on: the checkpoint must cover those.
    let mut needs: BTreeMap<String, u64> = BTreeMap::new();
    for range in &ranges {
        let last = needs.entry(range.chain.clone()).or_insert(0);
        *last = (*last).max(range.last_seq);
    }
    let needs: Vec<(String, u64)> = needs.into_iter().collect();
    let covering = if needs.is_empty() {
        None
    } else {
        datapact_gateway::checkpoints::covering(store, &needs).await?.filter(|c| c.checkpoint.at <= as_of)
    };
    let (checkpoint, checkpoint_statement) = match covering {
        None if needs.is_empty() => {
            (None, "No ledger batch holds usage of the period: no checkpoint is needed.".into())
        }
        None => (None, "No signed checkpoint covers these batches yet.".to_owned()),
        Some(signed) => {
            let c = &signed.checkpoint;
            let statement = format!(
                "Signed checkpoint {} (made {}, key {}) covers these batches: with the JSON below in FILE and the \
                 platform's published keys in KEYS, datapact ledger verify --checkpoints FILE --keys KEYS checks its \
                 signature and that the ledger still passes through its heads.",
                c.number, c.at, c.key_id
            );
            let heads = c.heads.iter().map(|h| (h.chain.clone(), h.seq, h.hash.to_hex())).collect();
            let json = serde_json::to_string(&signed.to_json())?;
            (
                Some(model::CheckpointRef { number: c.number, at: c.at, key_id: c.key_id.clone(), heads, json }),
                statement,
            )
        }
    };
    let mut inputs = vec![model::InputHash {
        kind: "terms".into(),
        name: "the terms in force, as datapact terms show prints them".into(),
        bytes: records.terms_toml.len() as u64,
        sha256: hex::encode(Sha256::digest(records.terms_toml.as_bytes())),
    }];
    inputs.push(model::InputHash {
        kind: "price-books".into(),
        name: "the price books in force, as JSON".into(),
        bytes: books_json.len() as u64,
        sha256: hex::encode(Sha256::digest(books_json.as_bytes())),
    });
    inputs.extend(leak_inputs.into_values());
    let title = match names {
        [one] => format!("datapact evidence report: {one}"),
        _ => "datapact evidence report: every licensee".to_owned(),
    };
    Ok(model::Report {
        title,
        from: from.to_string(),
        to: to.to_string(),
        as_of,
        licensees: sections,
        reproducibility: model::Reproducibility {
            ledger_ranges: ranges,
            checkpoint,
            checkpoint_statement,
            inputs,
            command,
        },
    })
}

/// The terms, price books and licensee statuses in force at an instant.
struct InForce {
    terms: datapact_terms::Terms,
    price_books: Vec<PriceBook>,
    statuses: HashMap<String, (String, String)>,
}

/// Replays the audit log's terms changes before `at` (entries sorted by `seq`).
fn terms_in_force(audit: &[datapact_store::AuditEntry], at: Timestamp) -> anyhow::Result<InForce> {
    let mut plans: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut licensees: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut books = serde_json::Value::Array(Vec::new());
    for entry in audit.iter().filter(|e| e.at < at) {
        match (entry.action.as_str(), &entry.after) {
            ("plan.put", Some(body)) => {
                plans.insert(entry.subject.clone(), body.clone());
            }
            ("plan.delete", _) => {
                plans.remove(&entry.subject);
            }
            ("licensee.terms" | "licensee.block" | "licensee.unblock", Some(after)) => {
                licensees.insert(entry.subject.clone(), after.clone());
            }
            ("price_book.put", Some(body)) => books = body.clone(),
            _ => {}
        }
    }
    let mut statuses = HashMap::new();
    let mut with_terms = Vec::new();
    for (name, after) in &licensees {
        let status = after["status"].as_str().unwrap_or("active").to_owned();
        let reason = after["reason"].as_str().unwrap_or_default().to_owned();
        if let Some(terms) = after.get("terms").filter(|t| !t.is_null()) {
            let parsed = datapact_core::LicenseeStatus::parse(&status).unwrap_or(datapact_core::LicenseeStatus::Active);
            with_terms.push((parsed, reason.clone(), terms.clone()));
        }
        statuses.insert(name.clone(), (status, reason));
    }
    let plans: Vec<(String, serde_json::Value)> = plans.into_iter().collect();
    let terms = datapact_terms::Terms::from_stored(&plans, with_terms)
        .map_err(|e| anyhow::anyhow!("the terms recorded in the audit log do not read back: {e}"))?;
    let price_books = serde_json::from_value(books).context("cannot read the price books recorded in the audit log")?;
    Ok(InForce { terms, price_books, statuses })
}

#[allow(clippy::too_many_arguments)]
async fn licensee_section(
    store: &dyn Store,
    ledger: &Ledger,
    records: &Records,
    licensee: &datapact_core::Licensee,
    from: NaiveDate,
    to: NaiveDate,
    as_of: Timestamp,
    cut: Timestamp,
) -> anyhow::Result<model::LicenseeReport> {
    let name = &licensee.name;
    let agreement = records.agreements.iter().find(|a| &a.licensee == name);
    let summary = agreement.map(|a| model::AgreementSummary {
        plan: a.plan.clone(),
        monthly_records: a.monthly_records,
        cap: text_of(&a.cap),
        dedup: text_of(&a.dedup),
        deletion_deadline: a.deletion_deadline.map(|d| d.to_string()),
        starts_at: a.starts_at,
        ends_at: a.ends_at,
        allowed_networks: a.allowed_networks.iter().flatten().map(ToString::to_string).collect(),
        purposes: a.purposes.iter().map(text_of).collect(),
        payment_terms_days: records.billing_terms.get(name).map(|b| b.payment_terms_days),
        grace_days: records.billing_terms.get(name).map(|b| b.grace_days),
    });
    let plan = agreement.map(|a| a.plan.clone());
    let period_end = start_of(to.succ_opt().unwrap_or(to));

    // Versions of what bound it: its own terms, its plan, the price books.
    let terms_versions = records
        .audit
        .iter()
        .filter(|e| e.at < period_end)
        .filter(|e| {
            (matches!(e.action.as_str(), "licensee.create" | "licensee.terms") && &e.subject == name)
                || (e.action == "plan.put" && Some(&e.subject) == plan.as_ref())
                || e.action == "price_book.put"
        })
        .map(|e| model::TermsVersion {
            at: e.at,
            action: e.action.clone(),
            subject: e.subject.clone(),
            actor: e.actor.clone(),
            audit_seq: e.seq,
        })
        .collect();

    // Price-book versions for its plan in force during the period.
    let mut price_books = Vec::new();
    for (book, until) in in_force_during(records.price_books.iter().collect(), |b| b.effective, from, to) {
        let Some(price) = plan.as_ref().and_then(|p| book.plans.get(p)) else { continue };
        price_books.push(model::PriceBookVersion {
            effective: book.effective.to_string(),
            until: until.map(|u| u.to_string()),
            monthly_fee: price.monthly_fee,
            included_records: price.included_records,
            overage_per_1000: price.overage_per_1000.map(|r| r.to_string()),
            per_record: price.per_record.map(|r| r.to_string()),
        });
    }

    let overrides = records.billing_terms.get(name).map(|b| b.prices.iter().collect()).unwrap_or_default();
    let mut negotiated_prices = Vec::new();
    for (o, until) in in_force_during(overrides, |o| o.effective, from, to) {
        negotiated_prices.push(model::NegotiatedPrice {
            effective: o.effective.to_string(),
            until: until.map(|u| u.to_string()),
            monthly_fee: o.monthly_fee,
            included_records: o.included_records,
            overage_per_1000: o.overage_per_1000.map(|r| r.to_string()),
            per_record: o.per_record.map(|r| r.to_string()),
        });
    }

    // Each month against the cap in force at its end (or at --as-of, if earlier).
    let mut month_caps = BTreeMap::new();
    let mut month = from.with_day(1).unwrap_or(from);
    while month <= to {
        let next = month.checked_add_months(chrono::Months::new(1)).context("a month past the calendar")?;
        let at = Timestamp(start_of(next).millis().min(cut.millis()));
        let in_force = terms_in_force(&records.audit, at)?;
        let agreement = in_force
            .terms
            .licensees
            .iter()
            .filter(|l| &l.terms.name == name)
            .find_map(|l| Agreement::resolve(in_force.terms.plan(&l.terms.plan)?, &l.terms).ok());
        let cap = agreement.as_ref().and_then(|a| a.monthly_records);
        let mode = agreement.as_ref().map_or_else(|| "none".to_owned(), |a| text_of(&a.cap));
        month_caps.insert(month.format("%Y-%m").to_string(), (cap, mode));
        month = next;
    }
    let usage = usage(ledger, licensee.id, &month_caps, from, to, cut).await?;

    // Billing: invoices of the period's months issued by as_of, as they stood then.
    let first_month = datapact_billing::Month::of(from).context("the period's first month")?;
    let last_month = datapact_billing::Month::of(to).context("the period's last month")?;
    let mut accounts: Vec<(&LicenseeAccount, &datapact_store::StoredInvoice)> = records
        .accounts
        .iter()
        .filter(|a| a.licensee_id == licensee.id && a.month >= first_month && a.month <= last_month)
        .filter_map(|a| Some((a, records.issued.get(&a.account.number)?)))
        .filter(|(_, invoice)| invoice.issued_at <= as_of)
        .collect();
    accounts.sort_by(|a, b| a.1.number.cmp(&b.1.number));
    let mut invoices = Vec::new();
    let mut totals: BTreeMap<datapact_billing::Currency, [i128; 5]> = BTreeMap::new();
    for (account, invoice) in &accounts {
        let a = &account.account;
        let status = a.status(as_of);
        let currency = a.total.currency;
        let paid = a.paid_by(as_of);
        let credited = a.credited_by(as_of);
        let outstanding = a.outstanding(as_of);
        invoices.push(model::InvoiceRow {
            number: a.number.clone(),
            month: account.month.to_string(),
            issued_at: invoice.issued_at,
            due: a.due.to_string(),
            records: invoice.records,
            total: a.total,
            paid: money(currency, paid),
            credited: money(currency, credited),
            outstanding,
            status: text_of(&status),
        });
        if status != datapact_billing::InvoiceStatus::Void {
            let sums = totals.entry(currency).or_default();
            sums[0] += i128::from(a.total.minor);
            sums[1] += paid;
            sums[2] += credited;
            sums[3] += i128::from(outstanding.minor);
            if status == datapact_billing::InvoiceStatus::Overdue {
                sums[4] += i128::from(outstanding.minor);
            }
        }
    }
    let totals = totals
        .into_iter()
        .map(|(currency, s)| model::BillingTotals {
            invoiced: money(currency, s[0]),
            paid: money(currency, s[1]),
            credited: money(currency, s[2]),
            outstanding: money(currency, s[3]),
            overdue: money(currency, s[4]),
        })
        .collect();
    // Suspension is judged on every invoice of the licensee issued by then, not only the period's.
    let all: Vec<InvoiceAccount> = records
        .accounts
        .iter()
        .filter(|a| a.licensee_id == licensee.id)
        .filter(|a| records.issued.get(&a.account.number).is_some_and(|i| i.issued_at <= as_of))
        .map(|a| a.account.clone())
        .collect();
    let grace_days = records.billing_terms.get(name).map_or(datapact_billing::DEFAULT_GRACE_DAYS, |b| b.grace_days);
    let suspended = suspension(&all, grace_days, as_of).map(|s| model::SuspensionFinding {
        since: s.invoices.iter().map(|i| i.suspended_from).min().unwrap_or(as_of),
        invoices: s.invoices.iter().map(|i| i.number.clone()).collect(),
        outstanding: s.invoices.iter().map(|i| i.outstanding).collect(),
    });

    let from_start = start_of(from);
    let status_events = records
        .audit
        .iter()
        .filter(|e| &e.subject == name && e.at >= from_start && e.at < period_end)
        .filter(|e| {
            matches!(
                e.action.as_str(),
                "licensee.block" | "licensee.unblock" | "licensee.suspended" | "licensee.reinstated"
            )
        })
        .map(|e| model::StatusEvent {
            at: e.at,
            action: e.action.clone(),
            actor: e.actor.clone(),
            reason: e.after.as_ref().and_then(|after| {
                after.get("reason").or_else(|| after.get("cause")).and_then(|r| r.as_str()).map(str::to_owned)
            }),
        })
        .collect();

    let running: Vec<&datapact_store::Violation> = records.violations.iter().filter(|v| &v.licensee == name).collect();
    let days = store.violation_days(Some(licensee.id), Timestamp(i64::MIN), Timestamp(i64::MAX)).await?;
    let violations = violation_rows(&running, &days, start_of(from), cut, as_of);

    let (trace_findings, canary_hits) = trace_rows(&records.findings, licensee.id);
    let mut deletion_violations: Vec<model::DeletionViolationRow> = store
        .deletion_violations(Some(licensee.id))
        .await?
        .into_iter()
        .filter(|d| d.violation.recorded_at <= as_of)
        .map(|d| model::DeletionViolationRow {
            post_id: d.violation.post_id.to_string(),
            deleted_at: d.violation.deleted_at,
            deadline_at: d.violation.deadline_at,
            notified_at: d.violation.notified_at,
            finding_id: d.violation.finding_id,
            recorded_at: d.violation.recorded_at,
        })
        .collect();
    deletion_violations.sort_by(|a, b| (a.deleted_at, &a.post_id).cmp(&(b.deleted_at, &b.post_id)));

    Ok(model::LicenseeReport {
        licensee: name.clone(),
        licensee_id: licensee.id,
        status: records.statuses.get(name).map_or_else(|| "active".to_owned(), |s| s.0.clone()),
        status_reason: records.statuses.get(name).map(|s| s.1.clone()).unwrap_or_default(),
        agreement: summary,
        terms_versions,
        price_books,
        negotiated_prices,
        usage,
        billing: model::Billing { invoices, totals, suspension: suspended },
        status_events,
        violations,
        trace_findings,
        canary_hits,
        deletion_violations,
    })
}

fn money(currency: datapact_billing::Currency, minor: i128) -> Money {
    Money::new(currency, i64::try_from(minor).unwrap_or(i64::MAX))
}

/// The period's violations per kind, from the per-day counts: days starting in
/// `[from_start, cut)`, the day holding `--as-of` only up to it when its samples tell (else the
/// row says so). Violations recorded before per-day counting began (the running total exceeds
/// the days' sum) are reported as undated when the running total's span meets the period.
fn violation_rows(
    running: &[&datapact_store::Violation],
    days: &[datapact_store::ViolationDay],
    from_start: Timestamp,
    cut: Timestamp,
    as_of: Timestamp,
) -> Vec<model::ViolationRow> {
    let mut kinds: BTreeMap<&str, model::ViolationRow> = BTreeMap::new();
    let row = |kind: &str| model::ViolationRow {
        kind: kind.to_owned(),
        count: 0,
        first_at: None,
        last_at: None,
        sample_request_ids: Vec::new(),
        notes: Vec::new(),
    };
    let mut samples: BTreeMap<&str, Vec<&datapact_store::ViolationSample>> = BTreeMap::new();
    for day in days.iter().filter(|d| d.day_start >= from_start && d.day_start < cut) {
        let before: Vec<_> = day.samples.iter().filter(|s| s.at <= as_of).collect();
        let (count, first, last, note) = if day.last_at <= as_of {
            (day.count, Some(day.first_at), Some(day.last_at), None)
        } else {
            // The day holding --as-of, with violations after it: exact when every one of the
            // day's violations is among its samples.
            let note = (day.count as usize > day.samples.len()).then(|| {
                format!(
                    "On {}, {} violation(s) of this kind were recorded in all, some after --as-of; only the {} kept \
                     as samples are known to precede it and are counted here.",
                    day.day_start.to_datetime().date_naive(),
                    day.count,
                    before.len()
                )
            });
            // The day's first is known even when its sample was pushed out.
            let first = Some(day.first_at).filter(|at| *at <= as_of).or(before.first().map(|s| s.at));
            (before.len() as u64, first, before.last().map(|s| s.at), note)
        };
        if count == 0 && note.is_none() {
            continue;
        }
        let entry = kinds.entry(&day.kind).or_insert_with(|| row(&day.kind));
        entry.count += count;
        entry.first_at = match (entry.first_at, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        entry.last_at = entry.last_at.max(last);
        entry.notes.extend(note);
        samples.entry(&day.kind).or_default().extend(before);
    }
    for violation in running {
        let dated: Vec<_> = days.iter().filter(|d| d.kind == violation.kind).collect();
        let undated = violation.count.saturating_sub(dated.iter().map(|d| d.count).sum());
        // Undated ones came before per-day counting began: after the running total's first, and
        // before the first dated day (or, with none dated yet, by --as-of). Only stored values
        // that no later violation changes, so a rerun says the same.
        let until = dated.iter().map(|d| d.first_at).min().unwrap_or(as_of).min(as_of);
        if undated > 0 && violation.first_at < cut && until >= from_start {
            kinds.entry(&violation.kind).or_insert_with(|| row(&violation.kind)).notes.push(format!(
                "{undated} more of this kind were recorded before datapact counted violations per day, from {} \
                 to no later than {until}; they cannot be placed in or out of the period and are not counted here.",
                violation.first_at
            ));
        }
    }
    for (kind, row) in kinds.iter_mut() {
        let mut kept = samples.remove(kind).unwrap_or_default();
        kept.sort_by_key(|s| s.at);
        let skip = kept.len().saturating_sub(datapact_store::VIOLATION_SAMPLES);
        row.sample_request_ids = kept[skip..].iter().map(|s| s.request_id.clone()).collect();
    }
    kinds.into_values().collect()
}

/// The versions (each in force from its `effective` day until the next one's) in force on some
/// day of `from..=to`, with the last day of each (`None`: still in force), oldest first.
fn in_force_during<T>(
    mut versions: Vec<&T>,
    effective: impl Fn(&T) -> NaiveDate,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<(&T, Option<NaiveDate>)> {
    versions.sort_by_key(|v| effective(v));
    let untils: Vec<Option<NaiveDate>> = (0..versions.len())
        .map(|i| versions.get(i + 1).map(|next| effective(next).pred_opt().unwrap_or(effective(next))))
        .collect();
    versions
        .into_iter()
        .zip(untils)
        .filter(|(v, until)| effective(v) <= to && !until.is_some_and(|u| u < from))
        .collect()
}

/// Counted records per day of the period, and per month against its cap (`month_caps`: the cap
/// and its mode by `YYYY-MM`), as committed before `cut` (so usage recorded after `--as-of` is
/// left out).
async fn usage(
    ledger: &Ledger,
    licensee_id: i64,
    month_caps: &BTreeMap<String, (Option<u64>, String)>,
    from: NaiveDate,
    to: NaiveDate,
    cut: Timestamp,
) -> anyhow::Result<model::Usage> {
    let (mut cap, mut cap_mode) = (None, "none".to_owned());
    // Whole days from the ledger's daily totals (kept even after `ledger prune`), from the first
    // month's first day; the day `--as-of` falls in, if inside the period, from its deliveries
    // committed by then; nothing after it.
    let first = from.with_day(1).unwrap_or(from);
    let mut per_day: BTreeMap<NaiveDate, u64> = BTreeMap::new();
    for count in ledger.daily_counts(licensee_id, DayKey::from_date(first), DayKey::from_date(to)).await? {
        let end = start_of(count.day.date().succ_opt().unwrap_or(count.day.date()));
        if end <= cut {
            per_day.insert(count.day.date(), count.counted);
        }
    }
    let partial = DayKey::of(Timestamp(cut.millis() - 1));
    if partial.start() < cut
        && start_of(partial.date().succ_opt().unwrap_or(partial.date())) > cut
        && partial.date() <= to
    {
        let mut counted = 0;
        ledger
            .deliveries(licensee_id, partial.month(), |d| {
                if d.counted && d.at >= partial.start() && d.at < cut {
                    counted += 1;
                }
                Ok(())
            })
            .await?;
        per_day.insert(partial.date(), counted);
    }
    let mut days = Vec::new();
    let mut months: Vec<model::MonthUsage> = Vec::new();
    // The month to date starts at the month's first day, even before the period.
    let mut day = from.with_day(1).unwrap_or(from);
    let mut to_date = 0u64;
    let mut current = String::new();
    // The month's first day over the cap, even when it falls before the period.
    let mut first_over: Option<NaiveDate> = None;
    // Days after `--as-of` had not happened: they are left out, not shown as zeros.
    let last = to.min(partial.date());
    while day <= last {
        let key = day.format("%Y-%m").to_string();
        if key != current {
            current = key.clone();
            to_date = 0;
            first_over = None;
            (cap, cap_mode) = month_caps.get(&key).cloned().unwrap_or((None, "none".to_owned()));
        }
        let counted = per_day.get(&day).copied().unwrap_or(0);
        to_date += counted;
        if first_over.is_none() && cap.is_some_and(|cap| to_date > cap) {
            first_over = Some(day);
        }
        if day >= from {
            days.push(model::DayUsage { day: day.to_string(), counted, month_to_date: to_date, cap });
            if months.last().is_none_or(|m| m.month != key) {
                months.push(model::MonthUsage {
                    month: key.clone(),
                    counted: 0,
                    cap,
                    cap_mode: cap_mode.clone(),
                    over_cap: 0,
                    first_day_over: None,
                    through: None,
                });
            }
            let m = months.last_mut().expect("pushed above");
            m.counted = to_date;
            // Not whole: the next day would still be this month, but it is not in the report.
            let month_goes_on = day.succ_opt().is_some_and(|next| next.month() == day.month());
            m.through = (day == last && month_goes_on).then(|| day.to_string());
            if let Some(cap) = cap {
                m.over_cap = to_date.saturating_sub(cap);
                m.first_day_over = first_over.map(|d| d.to_string());
            }
        }
        let Some(next) = day.succ_opt() else { break };
        day = next;
    }
    Ok(model::Usage { days, months })
}

fn as_u64(value: &serde_json::Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// The recorded trace findings' statements about one licensee, and its canaries they found.
fn trace_rows(
    findings: &[datapact_store::TraceFinding],
    licensee_id: i64,
) -> (Vec<model::TraceFindingRow>, Vec<model::CanaryHitRow>) {
    let mut rows = Vec::new();
    let mut canaries = Vec::new();
    for f in findings {
        let report = &f.finding.report;
        let id = licensee_id as u64;
        let accused = report["accused"].as_array().and_then(|a| a.iter().find(|x| x["licensee"].as_u64() == Some(id)));
        let deletion = report["deletion_compliance"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["licensee"].as_i64() == Some(licensee_id)));
        for hit in report["canary_hits"].as_array().into_iter().flatten() {
            if hit["licensee"].as_u64() == Some(id) {
                canaries.push(model::CanaryHitRow {
                    finding_id: f.id,
                    canary_id: hit["canary_id"].as_str().unwrap_or_default().to_owned(),
                    exact_occurrences: as_u64(&hit["exact_occurrences"]),
                    normalised_records: as_u64(&hit["normalised_records"]),
                });
            }
        }
        let Some(accused) = accused else { continue };
        let candidates = as_u64(&report["candidates"]);
        let log10_bound = accused["log10_bound"].as_f64();
        let log10_bound_all = accused["log10_bound_all"].as_f64();
        let verdicts = deletion.and_then(|d| d["verdicts"].as_array());
        let count = |kind: &str| verdicts.into_iter().flatten().filter(|v| v["verdict"] == kind).count() as u64;
        rows.push(model::TraceFindingRow {
            finding_id: f.id,
            at: f.finding.at,
            leak_files: f.finding.leak_files.iter().map(|l| l.name.clone()).collect(),
            outcome: f.finding.outcome.clone(),
            accused: true,
            score: accused["score"].as_f64(),
            threshold: accused["threshold"].as_f64(),
            log10_bound,
            log10_bound_all,
            statement: model::trace_statement(log10_bound, log10_bound_all, candidates),
            candidates,
            posts_matched: as_u64(&report["posts_matched"]),
            delivered_posts: accused["delivered_posts"].as_u64(),
            delivered_share: accused["delivered_share"].as_f64(),
            deleted_posts: deletion.map_or(0, |d| as_u64(&d["deleted_posts"])),
            deletion_deadline: deletion.and_then(|d| d["deletion_deadline"].as_str()).map(str::to_owned),
            deletion_violations: count("violation"),
            deletion_may_predate: count("may_predate"),
        });
    }
    (rows, canaries)
}

/// Prints `html` to `out` as PDF with headless Chromium (no network: the page is self-contained).
fn print_pdf(html: &str, out: &Path) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("cannot make a temporary directory for Chromium")?;
    let page = dir.path().join("report.html");
    std::fs::write(&page, html)?;
    let profile = dir.path().join("profile");
    let out_abs = std::path::absolute(out).with_context(|| format!("--out {}", out.display()))?;
    let log = dir.path().join("chromium.log");
    let mut child = std::process::Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--no-pdf-header-footer",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--print-to-pdf={}", out_abs.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("cannot run {CHROMIUM}"))?;
    // Chromium should take seconds; never wait for ever.
    let deadline = std::time::Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("Chromium did not print the report within {} s; try --format html", CHROMIUM_TIMEOUT.as_secs());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let written = std::fs::metadata(&out_abs).map(|m| m.len()).unwrap_or(0);
    if !status.success() || written == 0 {
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        bail!("Chromium could not print the report to {} ({status}): {}", out.display(), stderr.trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(month: Option<&str>, from: Option<&str>, to: Option<&str>) -> ReportArgs {
        ReportArgs {
            licensee: Some("acme".into()),
            all: false,
            month: month.map(Into::into),
            from: from.map(Into::into),
            to: to.map(Into::into),
            format: ReportFormat::Json,
            out: None,
            as_of: None,
        }
    }

    #[test]
    fn periods_are_whole_days_and_bad_ones_say_what_to_write() {
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(period(&args(Some("2024-02"), None, None)).unwrap(), (day("2024-02-01"), day("2024-02-29")));
        assert_eq!(
            period(&args(None, Some("2026-11-05"), Some("2026-11-05"))).unwrap(),
            (day("2026-11-05"), day("2026-11-05"))
        );
        let error = |a: ReportArgs| period(&a).unwrap_err().to_string();
        assert!(error(args(Some("2026-13"), None, None)).contains("write YYYY-MM"));
        assert!(error(args(None, Some("2026-02-30"), Some("2026-03-01"))).contains("write YYYY-MM-DD"));
        assert!(error(args(None, Some("2026-03-02"), Some("2026-03-01"))).contains("is after --to"));
        assert!(error(args(None, None, None)).contains("name the period"));
    }

    #[test]
    fn the_command_quotes_what_a_shell_would_split() {
        assert_eq!(shell_quote("acme"), "acme");
        assert_eq!(shell_quote("/tmp/data dir"), "'/tmp/data dir'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        let when = Timestamp::parse_rfc3339("2026-12-31T00:00:00Z").unwrap();
        let (from, to) = period(&args(Some("2026-11"), None, None)).unwrap();
        let dir = Path::new("/srv/data");
        assert_eq!(
            command(&args(Some("2026-11"), None, None), &StoreArg::DataDir(dir), from, to, when),
            "datapact --data-dir /srv/data report acme --from 2026-11-01 --to 2026-11-30 --as-of \
             2026-12-31T00:00:00.000Z --format json"
        );
        assert!(
            command(&args(Some("2026-11"), None, None), &StoreArg::Postgres, from, to, when)
                .starts_with("datapact --store \"$DATAPACT_STORE\" report")
        );
    }

    #[test]
    fn violations_are_those_of_the_period_and_what_cannot_be_placed_is_said() {
        use datapact_store::{Violation, ViolationDay, ViolationSample};
        let t = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        let sample = |at: &str, id: &str| ViolationSample { at: t(at), request_id: id.into(), client: "c".into() };
        let day = |start: &str, count: u64, samples: Vec<ViolationSample>| ViolationDay {
            licensee_id: 1,
            kind: "rate_limited".into(),
            day_start: t(start),
            count,
            first_at: samples.first().unwrap().at,
            last_at: samples.last().unwrap().at,
            samples,
        };
        let days = vec![
            day("2026-10-31T00:00:00Z", 1, vec![sample("2026-10-31T23:00:00Z", "oct")]),
            day(
                "2026-11-02T00:00:00Z",
                2,
                vec![sample("2026-11-02T01:00:00Z", "a"), sample("2026-11-02T02:00:00Z", "b")],
            ),
            // The --as-of day (Nov 5, 12:00): 20 recorded, 2 of the 10 samples before noon.
            day(
                "2026-11-05T00:00:00Z",
                20,
                (0..10).map(|n| sample(&format!("2026-11-05T{:02}:00:00Z", 10 + n), &format!("d{n}"))).collect(),
            ),
        ];
        // The running total also holds 4 from before per-day counting (27 against 23 dated).
        let running = Violation {
            licensee: "acme".into(),
            kind: "rate_limited".into(),
            count: 27,
            first_at: t("2026-10-01T00:00:00Z"),
            last_at: t("2026-11-05T19:00:00Z"),
            samples: vec![],
        };
        let as_of = t("2026-11-05T12:00:00Z");
        let (from, cut) = (t("2026-11-01T00:00:00Z"), Timestamp(as_of.0 + 1));
        let rows = violation_rows(&[&running], &days, from, cut, as_of);
        let [row] = rows.as_slice() else { panic!("{rows:?}") };
        assert_eq!(row.count, 2 + 3, "Nov 2's two and the three samples up to noon on Nov 5");
        assert_eq!((row.first_at, row.last_at), (Some(t("2026-11-02T01:00:00Z")), Some(t("2026-11-05T12:00:00Z"))));
        assert_eq!(row.sample_request_ids, ["a", "b", "d0", "d1", "d2"]);
        // The 4 undated ones came before the first dated one (Oct 31): not November's, so no note.
        assert_eq!(row.notes.len(), 1, "{:?}", row.notes);
        assert!(row.notes[0].contains("On 2026-11-05, 20 violation(s)") && row.notes[0].contains("only the 3 kept"));
        // A period that reaches back into October may hold them: it says so, with stored bounds only.
        let rows = violation_rows(&[&running], &days, t("2026-10-01T00:00:00Z"), cut, as_of);
        let notes = &rows[0].notes;
        let expected = "4 more of this kind were recorded before datapact counted violations per day, from \
                        2026-10-01T00:00:00.000Z to no later than 2026-10-31T23:00:00.000Z";
        assert!(notes[1].starts_with(expected), "{notes:?}");
        assert_eq!(rows[0].count, 1 + 2 + 3);

        // A period none of it touches: nothing, not even the undated note.
        let (from, cut) = (t("2026-12-01T00:00:00Z"), t("2027-01-01T00:00:00Z"));
        assert!(violation_rows(&[&running], &days, from, cut, t("2027-01-02T00:00:00Z")).is_empty());
    }

    #[test]
    fn versions_in_force_are_those_meeting_the_period() {
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let versions = [day("2026-12-01"), day("2026-01-01"), day("2026-11-15"), day("2026-06-01")];
        let found = in_force_during(versions.iter().collect(), |d| *d, day("2026-11-01"), day("2026-11-30"));
        // June's runs to Nov 14, Nov 15's to Nov 30; January's ended before, December's begins after.
        assert_eq!(
            found.iter().map(|(d, until)| (**d, *until)).collect::<Vec<_>>(),
            [(day("2026-06-01"), Some(day("2026-11-14"))), (day("2026-11-15"), Some(day("2026-11-30")))]
        );
        let last = in_force_during(versions.iter().collect(), |d| *d, day("2027-01-01"), day("2027-01-31"));
        assert_eq!(last.iter().map(|(d, until)| (**d, *until)).collect::<Vec<_>>(), [(day("2026-12-01"), None)]);
    }
}

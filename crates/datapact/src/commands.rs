//! What each command does.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use datapact_core::ingest::IngestRecord;
use datapact_core::{Clock, KeyPrefix, KeyRecord, LicenseeStatus, ManualClock, PostId, SystemClock, Timestamp};
use datapact_gateway::terms::SharedRates;
use datapact_gateway::{AppState, GatewayConfig, KeyCache, Services, TlsFiles, TrustedProxies};
use datapact_limiter::RedisLimiter;
use datapact_store::ops::{
    IngestBatcher, LineRejection, ParsedLine, backup_data_dir, issue_key, restore_data_dir, set_opt_out_by_username,
};
use datapact_store::postgres::GatewayClaim;
use datapact_store::secrets::SecretRing;
use datapact_store::{Change, IngestEffect, PgStore, SqliteStore, Store};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{AuthorCommand, Cli, Command, IngestArgs, KeyCommand, LicenseeCommand, ServeArgs, TermsCommand};
use crate::report::StoreArg as StorePlace;
use crate::{admin_token, billing, canaries, demo, ledger, migrate, secret, trace};

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let clock: Arc<dyn Clock> = match &cli.now {
        None => Arc::new(SystemClock),
        Some(_) if matches!(cli.command, Command::Serve(_)) => {
            bail!("--now is for the other commands' tests; `serve` takes --test-clock")
        }
        Some(now) => {
            Arc::new(ManualClock::new(Timestamp::parse_rfc3339(now).map_err(|e| anyhow::anyhow!("--now: {e}"))?))
        }
    };
    let data_dir = cli.data_dir;
    if let Command::DemoCorpus(args) = &cli.command {
        demo::write_corpus(args)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Migrate { from, to, quiet, json } = &cli.command {
        // Before open_store: it opens its own source (--from) and target (--to).
        return migrate::run(from, to, *quiet, *json, clock).await;
    }
    if let Command::Restore { from, force } = &cli.command {
        restore_data_dir(from, &data_dir, *force)?;
        println!("restored {} into {}", from.display(), data_dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    // The secret commands need no store: they work on the ring file alone (even with no store yet).
    let command = match cli.command {
        Command::Secret(command) => return secret::run(command, &data_dir, clock.now()),
        command => command,
    };
    // A gateway alone on a PostgreSQL store claims it; gateways sharing a limiter claim it together.
    let serving = match &command {
        Command::Serve(args) => Some(if args.limiter.is_some() { Serving::Shared } else { Serving::Alone }),
        _ => None,
    };
    let Opened { store, postgres, gateway_claim } = open_store(cli.store.as_deref(), &data_dir, serving).await?;
    let ledger_place = match &postgres {
        Some(pg) => LedgerPlace::Postgres(pg),
        None => LedgerPlace::DataDir(&data_dir),
    };
    match command {
        Command::Serve(args) => serve(args, store, postgres, gateway_claim, clock, &data_dir).await,
        Command::Ingest(args) => ingest(args, store.as_ref(), clock.as_ref()).await,
        Command::Delete { ids } => delete(&ids, store.as_ref(), clock.now()).await,
        Command::Licensee(command) => licensee(command, store.as_ref(), clock.now()).await,
        Command::Key(command) => key(command, store.as_ref(), clock.now()).await,
        Command::Apply { file, dry_run, prune, json, force } => {
            let options = ApplyOptions { dry_run, prune, json, force };
            apply(&file, options, store.as_ref(), clock.now()).await
        }
        Command::Terms(TermsCommand::Show { json }) => terms_show(json, store.as_ref()).await,
        Command::Author(command) => author(command, store.as_ref(), clock.now()).await,
        Command::Violations { licensee, json } => violations(licensee.as_deref(), json, store.as_ref()).await,
        Command::Audit { limit, json } => audit(limit, json, store.as_ref()).await,
        Command::Backup { out } => {
            backup_data_dir(store.as_ref(), &data_dir, &out).await?;
            println!("backed up {} to {}", data_dir.display(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Usage { licensee, month, by, json } => {
            ledger::usage(&ledger_place, store.as_ref(), licensee.as_deref(), month.as_deref(), by, json, clock).await
        }
        Command::Deliveries { licensee, month, format } => {
            ledger::deliveries(&ledger_place, store.as_ref(), &licensee, month.as_deref(), format, clock).await
        }
        Command::Ledger(command) => ledger::ledger(&ledger_place, store.as_ref(), command, clock).await,
        Command::Trace(args) => {
            if store.is_shared() {
                // Versions another machine made must be here to read its copies.
                SecretRing::sync_with_store(&data_dir, store.as_ref(), clock.now())
                    .await
                    .context("cannot sync the fingerprint secret with the shared store")?;
            }
            let canaries = canaries::delivered(&data_dir, &ledger_place).await?;
            let now = clock.now();
            let ledger = ledger_place.open_for_reading(clock)?;
            trace::run_with_canaries(&args, &data_dir, &ledger, store.as_ref(), canaries, now).await
        }
        Command::Compliance(command) => compliance(command, store.as_ref()).await,
        Command::AdminUser(command) => crate::dashboard::admin_user(command, store.as_ref(), clock.now()).await,
        Command::Invoice(command) => billing::invoice(command, &ledger_place, store.as_ref(), clock).await,
        Command::Payment(command) => billing::payment(command, store.as_ref(), clock.now()).await,
        Command::Webhook(command) => billing::webhook(command, store.as_ref(), clock.now()).await,
        Command::Credit(command) => billing::credit(command, &ledger_place, store.as_ref(), clock).await,
        Command::Balance { licensee, json } => {
            billing::balance(licensee.as_deref(), json, store.as_ref(), clock.now()).await
        }
        Command::Billing(command) => billing::billing(command, store.as_ref(), clock.now()).await,
        Command::Report(args) => {
            let place = if postgres.is_some() { StorePlace::Postgres } else { StorePlace::DataDir(&data_dir) };
            let ledger = ledger_place.open_for_reading(clock.clone())?;
            crate::report::run(&args, place, store.as_ref(), &ledger, clock.now()).await
        }
        Command::DemoCorpus(_) | Command::Restore { .. } | Command::Migrate { .. } | Command::Secret(_) => {
            unreachable!("handled above")
        }
    }
}

async fn serve(
    args: ServeArgs,
    store: Arc<dyn Store>,
    postgres: Option<Arc<PgStore>>,
    gateway_claim: Option<(Arc<PgStore>, GatewayClaim)>,
    clock: Arc<dyn Clock>,
    data_dir: &Path,
) -> anyhow::Result<ExitCode> {
    let test_clock = match &args.test_clock {
        Some(start) => {
            Some(ManualClock::new(Timestamp::parse_rfc3339(start).map_err(|e| anyhow::anyhow!("--test-clock: {e}"))?))
        }
        None => None,
    };
    let clock: Arc<dyn Clock> = match &test_clock {
        Some(manual) => Arc::new(manual.clone()),
        None => clock,
    };
    let trusted_proxies =
        TrustedProxies::parse(&args.trusted_proxies).map_err(|e| anyhow::anyhow!("--trusted-proxies: {e}"))?;
    let demo_keys = if args.demo {
        let keys = demo::prepare(store.as_ref(), clock.as_ref()).await?;
        Some((keys, demo::examples(store.as_ref()).await?))
    } else {
        None
    };
    let admin_token = admin_token::load_or_create(data_dir)?;
    // Created on the first start and reused after: every copy rendered from now on must be
    // traceable with a version kept in this ring.
    // A shared store keeps the ring too, so every machine renders with the same versions.
    let fingerprint_secrets = if store.is_shared() {
        SecretRing::sync_with_store(data_dir, store.as_ref(), clock.now()).await
    } else {
        SecretRing::load_or_create(data_dir, clock.now())
    }
    .with_context(|| format!("cannot load the fingerprint secret in {}", data_dir.display()))?;
    tracing::info!(
        version = fingerprint_secrets.current().version(),
        versions = fingerprint_secrets.versions().count(),
        "fingerprint secret ready"
    );
    let keys = Arc::new(KeyCache::load(store.as_ref()).await?);
    let limiter = match (&args.limiter, &postgres) {
        (None, _) => None,
        (Some(_), None) => bail!(
            "--limiter (DATAPACT_LIMITER) shares decisions between gateways that share a store: it needs the \
             PostgreSQL store (--store postgres://…)"
        ),
        (Some(url), Some(pg)) => {
            let namespace = limiter_namespace(&pg.deployment_name().await?);
            let limiter = RedisLimiter::connect(url, &namespace, LIMITER_TIMEOUT)
                .await
                .context("cannot use the shared limiter named by --limiter (DATAPACT_LIMITER)")?;
            tracing::info!(namespace, fail_open = args.limiter_fail_open, "deciding through the shared limiter");
            Some(limiter)
        }
    };
    let mut terms = datapact_gateway::terms::TermsCache::load(store.as_ref()).await?;
    if let Some(limiter) = &limiter {
        let shared = SharedRates { limiter: limiter.clone(), fail_open: args.limiter_fail_open };
        terms = terms.with_shared_rates(shared);
    }
    let terms = Arc::new(terms);
    let ledger = if args.unmetered {
        tracing::warn!("responses are NOT metered (--unmetered): for benchmarks only");
        None
    } else {
        Some(match &postgres {
            None => datapact_store::ledger::Ledger::open(data_dir, clock.clone())
                .with_context(|| format!("cannot open the ledger in {}", data_dir.display()))?,
            Some(pg) => {
                let node = match &args.node {
                    Some(node) => node.clone(),
                    None => host_name(),
                };
                tracing::info!(node, "metering into the PostgreSQL store's ledger");
                let opened = match &limiter {
                    None => datapact_store::ledger::Ledger::open_postgres(pg, &node, clock.clone()).await,
                    Some(limiter) => {
                        datapact_store::ledger::Ledger::open_postgres_shared(pg, &node, clock.clone(), limiter.clone())
                            .await
                    }
                };
                let ledger =
                    opened.with_context(|| format!("cannot open the shared ledger for node {node:?} (--node)"))?;
                // Reservations this node left in Redis when it last stopped (a kill -9, say).
                let reconciled =
                    ledger.reconcile().await.context("cannot reconcile the shared limiter's reservations")?;
                if reconciled != Default::default() {
                    tracing::warn!(?reconciled, "settled the reservations this node left before it last stopped");
                }
                ledger
            }
        })
    };
    let mut post_cache = datapact_gateway::post_cache::PostCache::new(args.post_cache_mib.saturating_mul(1 << 20));
    if args.unmarked {
        tracing::warn!("posts are NOT marked (--unmarked): every licensee gets the public text; for benchmarks only");
    } else {
        post_cache = post_cache.with_fingerprint_secret(fingerprint_secrets.current().clone());
    }
    let (store_for_trace, clock_for_trace) = (store.clone(), clock.clone());
    let state = AppState::from(Services {
        store,
        clock,
        keys,
        terms,
        enforce_terms: !args.unenforced,
        admin_token: admin_token.into(),
        data_dir: data_dir.into(),
        test_clock,
        feed: Arc::new(datapact_gateway::feed::PostFeed::with_post_cache(post_cache)),
        index: Default::default(),
        ledger,
        shutdown: Default::default(),
        // Derived from the current fingerprint secret: every gateway holding the ring signs the
        // compliance URLs alike; a rotation takes effect (and voids outstanding URLs) at restart.
        url_signer: datapact_gateway::compliance::UrlSigner::derived_from(fingerprint_secrets.current().key()),
        checkpoints: datapact_gateway::checkpoints::Published::new(Duration::from_secs(args.checkpoint_interval_secs)),
        trace_jobs: datapact_gateway::dashboard::TraceJobs::new((!args.unmetered).then(|| {
            let tracer = crate::dashboard::ServeTracer {
                data_dir: data_dir.into(),
                store: store_for_trace,
                postgres,
                clock: clock_for_trace,
            };
            Arc::new(tracer) as Arc<dyn datapact_gateway::dashboard::TraceRunner>
        })),
    });
    datapact_gateway::metering::spawn_retention(state.clone(), args.delivery_retention_days);
    datapact_gateway::billing::spawn_schedule(state.clone());
    datapact_gateway::webhooks::spawn_sender(state.clone());
    if state.ledger.is_some() {
        // Before listening, so the published key set is never empty while the gateway serves.
        datapact_gateway::checkpoints::ensure_signing_key(state.store.as_ref(), state.clock.now(), "gateway")
            .await
            .context("cannot create the ledger checkpoints' signing key")?;
    }
    datapact_gateway::checkpoints::spawn_schedule(state.clone());
    // The admin token may have changed since the last start: sessions opened with the old one end.
    state
        .store
        .end_admin_sessions_of(datapact_store::admin_users::ADMIN_TOKEN_USER)
        .await
        .context("cannot end the admin token's dashboard sessions")?;
    let config = GatewayConfig {
        listen: args.listen,
        admin_listen: args.admin_listen,
        trusted_proxies,
        tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| TlsFiles { cert, key }),
        request_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
        drain_timeout: Duration::from_secs(args.drain_secs),
        ..GatewayConfig::default()
    };
    if args.unenforced {
        tracing::warn!("terms are NOT enforced (--unenforced): for benchmarks only");
    }
    let drain = config.drain_timeout;
    let gateway = datapact_gateway::serve(config, state).await?;
    let public = format!("{}://{}", gateway.scheme, gateway.public_addr);
    let admin = format!("{}://{}", gateway.scheme, gateway.admin_addr);
    if let Some((keys, examples)) = demo_keys {
        demo::print_welcome(&keys, examples.as_ref(), &public, &admin, data_dir);
    }
    let stop_signal = shutdown_signal();
    // A stable line that scripts and tests can wait for.
    println!("datapact listening licensee={public} admin={admin}");
    std::io::stdout().flush().ok();
    let claim_lost = async {
        match gateway_claim {
            Some((store, claim)) => keep_claim(store, claim).await,
            None => std::future::pending().await,
        }
    };
    let stopped_for = tokio::select! {
        _ = stop_signal => None,
        lost = claim_lost => Some(lost),
    };
    tracing::info!(?drain, "shutting down: draining in-flight requests");
    gateway.shutdown(drain);
    gateway.wait().await?;
    tracing::info!("stopped");
    match stopped_for {
        None => Ok(ExitCode::SUCCESS),
        Some(error) => Err(error),
    }
}

/// Where the metering ledger lives: the data directory's `ledger.db` beside the embedded store,
/// or the PostgreSQL store's own database.
pub enum LedgerPlace<'a> {
    DataDir(&'a Path),
    Postgres(&'a PgStore),
}

impl LedgerPlace<'_> {
    /// Opens the ledger to read beside running gateways (usage, exports, verify, billing, trace).
    pub fn open_for_reading(&self, clock: Arc<dyn Clock>) -> anyhow::Result<datapact_store::ledger::Ledger> {
        Ok(match self {
            LedgerPlace::DataDir(dir) => datapact_store::ledger::Ledger::open_for_reading(dir, clock)
                .with_context(|| format!("cannot open the ledger in {}", dir.display()))?,
            LedgerPlace::Postgres(pg) => datapact_store::ledger::Ledger::open_postgres_for_reading(pg, clock),
        })
    }
}

/// How long a call to the shared limiter may take before the request fails closed (503).
const LIMITER_TIMEOUT: Duration = Duration::from_secs(1);

/// The shared limiter's namespace for a deployment (`database.schema`): readable, and unique
/// through a hash of the whole name (Redis names allow fewer characters than PostgreSQL's).
fn limiter_namespace(deployment: &str) -> String {
    use sha2::Digest as _;
    let readable: String =
        deployment.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')).take(40).collect();
    let digest = sha2::Sha256::digest(deployment.as_bytes());
    let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{readable}-{hash}")
}

/// This machine's host name, the default `--node` (a gateway's chain in a shared ledger).
fn host_name() -> String {
    let name =
        std::fs::read_to_string("/proc/sys/kernel/hostname").or_else(|_| std::env::var("HOSTNAME")).unwrap_or_default();
    let name: String =
        name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).take(64).collect();
    if name.is_empty() { "gateway".to_owned() } else { name }
}

/// How often a gateway on PostgreSQL checks that it still holds the store's one-gateway claim.
const CLAIM_CHECK: Duration = Duration::from_secs(2);

/// Keeps a PostgreSQL store's one-gateway claim: a restart of PostgreSQL drops the lock with its
/// connection, so it is taken again as soon as the server answers. Returns only if another
/// gateway took it meanwhile: this one must stop, or two would cap and bill on their own.
async fn keep_claim(store: Arc<PgStore>, mut claim: GatewayClaim) -> anyhow::Error {
    loop {
        tokio::time::sleep(CLAIM_CHECK).await;
        if claim.holds().await {
            continue;
        }
        let again = if claim.is_shared() { store.claim_gateway_shared().await } else { store.claim_gateway().await };
        match again {
            Ok(again) => {
                tracing::warn!("the PostgreSQL store's gateway claim was lost with its connection; taken again");
                claim = again;
            }
            Err(datapact_store::StoreError::Conflict(_)) => {
                return anyhow::anyhow!(
                    "another gateway took this PostgreSQL store while this one's connection was lost: stopped, so \
                     that caps and bills stay one gateway's"
                );
            }
            Err(error) => {
                tracing::warn!(%error, "cannot take the PostgreSQL store's gateway claim again yet; retrying")
            }
        }
    }
}

/// SIGINT or SIGTERM. The handlers are installed when this is called, not when the future is
/// first polled: a signal sent right after `datapact listening` is printed must stop the gateway
/// gracefully, not kill it with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let installed = signal(SignalKind::interrupt()).and_then(|i| Ok((i, signal(SignalKind::terminate())?)));
        async move {
            match installed {
                Ok((mut interrupt, mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                Err(_) => tokio::signal::ctrl_c().await.unwrap_or(()),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        tokio::signal::ctrl_c().await.ok();
    }
}

/// Lines printed per input before the rest only go to the rejects file.
const PRINTED_REJECTIONS: usize = 20;

async fn ingest(args: IngestArgs, store: &dyn Store, clock: &dyn Clock) -> anyhow::Result<ExitCode> {
    let rejects_path = args.rejects.clone().unwrap_or_else(|| {
        let first = &args.files[0];
        if first.as_os_str() == "-" {
            PathBuf::from("stdin.rejects.jsonl")
        } else {
            PathBuf::from(format!("{}.rejects.jsonl", first.display()))
        }
    });
    let mut rejects: Option<BufWriter<File>> = None;
    let mut rejected_total = 0usize;
    let mut batcher = IngestBatcher::new(store);
    let started = std::time::Instant::now();
    for path in &args.files {
        let (reader, size): (Box<dyn Read + Send>, Option<u64>) = if path.as_os_str() == "-" {
            (Box::new(std::io::stdin()), None)
        } else {
            let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let size = file.metadata().ok().map(|m| m.len());
            (Box::new(file), size)
        };
        let progress = progress_bar(size, args.quiet, path);
        // Parsing runs on its own thread so it overlaps the store's writes (two cores, two stages).
        let mut lines = spawn_line_parser(progress.wrap_read(reader), path.clone());
        while let Some(chunk) = lines.recv().await {
            for line in chunk? {
                batcher.push_parsed(line, clock.now()).await?;
            }
            let done = batcher.lines();
            progress.set_message(format!("{:.0} lines/s", done as f64 / started.elapsed().as_secs_f64().max(1e-3)));
            report_rejections(&mut batcher, path, &rejects_path, &mut rejects, &mut rejected_total, &progress)?;
        }
        batcher.flush(clock.now()).await?;
        report_rejections(&mut batcher, path, &rejects_path, &mut rejects, &mut rejected_total, &progress)?;
        progress.finish_and_clear();
    }
    if let Some(mut file) = rejects {
        file.flush()?;
    }
    let counts = batcher.counts();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "ingested {} lines in {seconds:.1}s ({:.0} lines/s): {} new, {} corrected, {} unchanged, {} deleted, {} rejected",
        batcher.lines(),
        batcher.lines() as f64 / seconds.max(1e-3),
        counts.inserted,
        counts.corrected,
        counts.unchanged,
        counts.deleted,
        rejected_total
    );
    if rejected_total > 0 {
        if rejected_total > PRINTED_REJECTIONS {
            eprintln!("… {} more rejected lines", rejected_total - PRINTED_REJECTIONS);
        }
        eprintln!("rejected lines were written to {}; fix them and ingest that file again", rejects_path.display());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Lines parsed per message from the reader thread.
const PARSE_CHUNK: usize = 1_000;

/// Reads `reader` line by line on a thread of its own and parses each line, sending chunks.
fn spawn_line_parser(
    reader: impl Read + Send + 'static,
    path: PathBuf,
) -> tokio::sync::mpsc::Receiver<anyhow::Result<Vec<ParsedLine>>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(1 << 20, reader);
        let mut line = Vec::new();
        let mut number = 0u64;
        let mut chunk = Vec::with_capacity(PARSE_CHUNK);
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => {
                    let _ = sender.blocking_send(Err(anyhow::anyhow!("cannot read {}: {error}", path.display())));
                    return;
                }
            }
            number += 1;
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            chunk.push(ParsedLine::parse(number, &line));
            if chunk.len() == PARSE_CHUNK && sender.blocking_send(Ok(std::mem::take(&mut chunk))).is_err() {
                return;
            }
        }
        if !chunk.is_empty() {
            let _ = sender.blocking_send(Ok(chunk));
        }
    });
    receiver
}

fn progress_bar(size: Option<u64>, quiet: bool, path: &Path) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = match size {
        Some(size) => ProgressBar::new(size).with_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {msg} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{prefix} {spinner} {bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_prefix(path.display().to_string());
    bar
}

fn report_rejections(
    batcher: &mut IngestBatcher<'_>,
    path: &Path,
    rejects_path: &Path,
    rejects: &mut Option<BufWriter<File>>,
    total: &mut usize,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    for LineRejection { line, reason, raw } in batcher.take_rejections() {
        if *total < PRINTED_REJECTIONS {
            progress.suspend(|| eprintln!("{}:{line}: {reason}", path.display()));
        }
        *total += 1;
        if rejects.is_none() {
            let file =
                File::create(rejects_path).with_context(|| format!("cannot create {}", rejects_path.display()))?;
            *rejects = Some(BufWriter::new(file));
        }
        let entry = serde_json::json!({
            "file": path.display().to_string(),
            "line": line,
            "reason": reason,
            "raw": String::from_utf8_lossy(&raw),
        });
        if let Some(file) = rejects.as_mut() {
            writeln!(file, "{entry}")?;
        }
    }
    Ok(())
}

async fn delete(ids: &[String], store: &dyn Store, now: Timestamp) -> anyhow::Result<ExitCode> {
    let ids: Vec<PostId> =
        ids.iter().map(|id| id.parse::<PostId>().map_err(|e| anyhow::anyhow!("{e}"))).collect::<anyhow::Result<_>>()?;
    let records = ids.iter().map(|&id| IngestRecord::Delete { id, deleted_at: None }).collect();
    let effects = store.ingest(records, now).await?;
    let mut missing = 0;
    for (id, effect) in ids.iter().zip(effects) {
        match effect {
            IngestEffect::Deleted => println!("deleted {id}"),
            IngestEffect::AlreadyDeleted => println!("{id} was already deleted"),
            _ => {
                eprintln!("no post with id {id}");
                missing += 1;
            }
        }
    }
    Ok(if missing > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

async fn licensee(command: LicenseeCommand, store: &dyn Store, now: Timestamp) -> anyhow::Result<ExitCode> {
    match command {
        LicenseeCommand::Create { name } => {
            let licensee = store.create_licensee(&name, &cli_change(now)).await?;
            println!("created licensee {}; issue a key with `datapact key issue {}`", licensee.name, licensee.name);
        }
        LicenseeCommand::List { json } => {
            let licensees = store.licensees().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&licensees)?);
            } else {
                println!("{:<24} {:<8} CREATED", "NAME", "STATUS");
                for licensee in licensees {
                    println!("{:<24} {:<8} {}", licensee.name, licensee.status.as_str(), licensee.created_at);
                }
            }
        }
        LicenseeCommand::Show { name, json } => {
            let Some(licensee) = store.licensee(&name).await? else {
                bail!("no licensee named {name:?}; `datapact licensee list` shows them");
            };
            let keys = store.keys(Some(&name)).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "licensee": licensee, "keys": keys }))?
                );
            } else {
                println!(
                    "licensee {}\nstatus   {}\ncreated  {}",
                    licensee.name,
                    licensee.status.as_str(),
                    licensee.created_at
                );
                print_keys(&keys);
            }
        }
        LicenseeCommand::Block { name, reason } => {
            store.set_licensee_status(&name, LicenseeStatus::Blocked, &reason, &cli_change(now)).await?;
            println!("blocked {name}: every gateway refuses its requests within a second");
        }
        LicenseeCommand::Unblock { name } => {
            store.set_licensee_status(&name, LicenseeStatus::Active, "", &cli_change(now)).await?;
            println!("unblocked {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `datapact apply`'s flags.
struct ApplyOptions {
    dry_run: bool,
    prune: bool,
    json: bool,
    force: bool,
}

async fn apply(file: &Path, options: ApplyOptions, store: &dyn Store, now: Timestamp) -> anyhow::Result<ExitCode> {
    let ApplyOptions { dry_run, prune, json, force } = options;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let change = cli_change(now);
    let (diff, books) = datapact_gateway::terms::apply_terms_file(store, &text, prune, dry_run, force, &change)
        .await
        .map_err(|problem| anyhow::anyhow!("{}: {problem}", file.display()))?;
    if json {
        let mut value = serde_json::to_value(&diff)?;
        value["price_books"] = serde_json::to_value(books)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", diff.render());
        if books.changed {
            println!("price books: the file's {} version(s) replace the stored ones", books.versions);
        }
        if books.forced > 0 {
            println!("price books: {} change(s) take effect sooner than the notice period (forced)", books.forced);
        }
        if dry_run {
            println!("(dry run: nothing was changed)");
        } else if !diff.is_empty() || books.changed {
            println!("applied; running gateways enforce it within a second");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn terms_show(json: bool, store: &dyn Store) -> anyhow::Result<ExitCode> {
    if json {
        let agreements = datapact_gateway::terms::agreements(store).await?;
        println!("{}", serde_json::to_string_pretty(&agreements)?);
    } else {
        print!("{}", datapact_gateway::terms::current_terms(store).await?.to_toml());
    }
    Ok(ExitCode::SUCCESS)
}

async fn author(command: AuthorCommand, store: &dyn Store, now: Timestamp) -> anyhow::Result<ExitCode> {
    let (username, purpose, opted_out) = match command {
        AuthorCommand::OptOut { username, purpose } => (username, purpose, true),
        AuthorCommand::OptIn { username, purpose } => (username, purpose, false),
    };
    let user = set_opt_out_by_username(store, &username, &purpose, opted_out, &cli_change(now)).await?;
    let verb = if opted_out { "opted out of" } else { "no longer opts out of" };
    println!("{} ({}) {verb} {purpose}", user.author.username, user.author.id);
    Ok(ExitCode::SUCCESS)
}

async fn violations(licensee: Option<&str>, json: bool, store: &dyn Store) -> anyhow::Result<ExitCode> {
    let violations = store.violations(licensee).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&violations)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<16} {:<22} {:>8} {:<25} {:<25} SAMPLE REQUESTS", "LICENSEE", "KIND", "COUNT", "FIRST", "LAST");
    for v in violations {
        let samples: Vec<String> =
            v.samples.iter().rev().take(3).map(|s| format!("{} from {}", s.request_id, s.client)).collect();
        println!(
            "{:<16} {:<22} {:>8} {:<25} {:<25} {}",
            v.licensee,
            v.kind,
            v.count,
            v.first_at.to_string(),
            v.last_at.to_string(),
            samples.join("; ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn compliance(command: crate::cli::ComplianceCommand, store: &dyn Store) -> anyhow::Result<ExitCode> {
    use crate::cli::ComplianceCommand;
    let licensee_id = |name: Option<String>| async move {
        match name {
            None => Ok(None),
            Some(name) => match store.licensee(&name).await? {
                Some(licensee) => Ok(Some(licensee.id)),
                None => anyhow::bail!("no licensee {name:?}; `datapact licensee list` shows them"),
            },
        }
    };
    match command {
        ComplianceCommand::Violations { licensee, json } => {
            let violations = store.deletion_violations(licensee_id(licensee).await?).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&violations)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<16} {:<20} {:<25} {:<25} {:<25} FINDING",
                "LICENSEE", "POST", "DELETED", "DEADLINE", "NOTIFIED"
            );
            for v in violations {
                let w = &v.violation;
                println!(
                    "{:<16} {:<20} {:<25} {:<25} {:<25} {}",
                    v.licensee,
                    w.post_id.get(),
                    w.deleted_at.to_string(),
                    w.deadline_at.to_string(),
                    w.notified_at.map_or_else(|| "never".to_owned(), |t| t.to_string()),
                    w.finding_id.map_or_else(|| "-".to_owned(), |id| id.to_string())
                );
            }
        }
        ComplianceCommand::Notices { licensee, json } => {
            let notices = store.deletion_notices(licensee_id(licensee).await?).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&notices)?);
                return Ok(ExitCode::SUCCESS);
            }
            let names: std::collections::HashMap<i64, String> =
                store.licensees().await?.into_iter().map(|l| (l.id, l.name)).collect();
            println!("{:<16} {:<20} {:<25} {:<25} VIA", "LICENSEE", "POST", "DELETED", "NOTIFIED");
            for n in notices {
                println!(
                    "{:<16} {:<20} {:<25} {:<25} {}",
                    names.get(&n.licensee_id).cloned().unwrap_or_else(|| n.licensee_id.to_string()),
                    n.post_id.get(),
                    n.deleted_at.to_string(),
                    n.notified_at.to_string(),
                    n.via
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn audit(limit: usize, json: bool, store: &dyn Store) -> anyhow::Result<ExitCode> {
    let entries = store.audit_log(limit).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    for entry in entries {
        println!("{} {:<20} {:<16} {}", entry.at, entry.actor, entry.action, entry.subject);
        if let Some(before) = &entry.before {
            println!("    before {before}");
        }
        if let Some(after) = &entry.after {
            println!("    after  {after}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn key(command: KeyCommand, store: &dyn Store, now: Timestamp) -> anyhow::Result<ExitCode> {
    match command {
        KeyCommand::Issue { licensee, expires, purpose, json } => {
            let expires_at = expires.as_deref().map(parse_date_or_time).transpose()?;
            let purpose = datapact_gateway::terms::key_purpose(store, &licensee, purpose.as_deref()).await?;
            let (key, record) = issue_key(store, &licensee, purpose.as_str(), expires_at, &cli_change(now)).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "key": key.as_str(), "prefix": record.prefix, "licensee": record.licensee, "expires_at": record.expires_at })
                );
            } else {
                println!("{}", key.as_str());
                eprintln!(
                    "This key is shown once and cannot be recovered; store it now. Its prefix is {}.",
                    record.prefix
                );
            }
        }
        KeyCommand::Revoke { prefix } => {
            let record = store.revoke_key(&KeyPrefix(prefix), &cli_change(now)).await?;
            println!("revoked {} of {} at {}", record.prefix, record.licensee, record.revoked_at.unwrap_or(now));
        }
        KeyCommand::List { licensee, json } => {
            if let Some(name) = &licensee
                && store.licensee(name).await?.is_none()
            {
                bail!("no licensee named {name:?}; `datapact licensee list` shows them");
            }
            let keys = store.keys(licensee.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                print_keys(&keys);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_keys(keys: &[KeyRecord]) {
    println!("{:<18} {:<16} {:<25} {:<25} {:<25} STATE", "PREFIX", "LICENSEE", "CREATED", "LAST USED", "EXPIRES");
    let never = || "-".to_owned();
    for key in keys {
        let state = if key.revoked_at.is_some() { "revoked" } else { "active" };
        println!(
            "{:<18} {:<16} {:<25} {:<25} {:<25} {state}",
            key.prefix,
            key.licensee,
            key.created_at.to_string(),
            key.last_used_at.map(|t| t.to_string()).unwrap_or_else(never),
            key.expires_at.map(|t| t.to_string()).unwrap_or_else(never),
        );
    }
}

/// Changes made from the command line are audited as `cli@HOST`.
pub fn cli_change(now: Timestamp) -> Change {
    Change::new(format!("cli@{}", gethostname::gethostname().to_string_lossy()), now)
}

/// `2027-01-31` (midnight UTC) or a full RFC 3339 time.
fn parse_date_or_time(value: &str) -> anyhow::Result<Timestamp> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0).context("invalid date")?.and_utc();
        return Ok(Timestamp::from_datetime(midnight));
    }
    Timestamp::parse_rfc3339(value)
        .map_err(|_| anyhow::anyhow!("--expires {value:?}: use a date such as 2027-01-31 or an RFC 3339 time"))
}

/// How a gateway serves a PostgreSQL store: alone, or with others through a shared limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serving {
    Alone,
    Shared,
}

/// A store opened by [`open_store`].
pub struct Opened {
    pub store: Arc<dyn Store>,
    /// The same store when it is PostgreSQL (its ledger lives there too).
    pub postgres: Option<Arc<PgStore>>,
    /// A serving gateway's hold on a PostgreSQL store's gateway slot: alone, or shared with the
    /// gateways that decide through the same limiter.
    pub gateway_claim: Option<(Arc<PgStore>, GatewayClaim)>,
}

/// The store `--store` names: the embedded SQLite store in the data directory when it is left out
/// (or `sqlite`), a PostgreSQL database for a `postgres://` URL. The URL is never echoed: it may
/// carry a password. To serve from PostgreSQL, the gateway claims the store's one gateway slot
/// (returned with the store, to keep); on SQLite the data directory's ledger lock does that.
pub async fn open_store(store: Option<&str>, data_dir: &Path, serving: Option<Serving>) -> anyhow::Result<Opened> {
    Ok(match store {
        None | Some("sqlite") => Opened {
            store: Arc::new(
                SqliteStore::open(data_dir)
                    .with_context(|| format!("cannot open the store in {}", data_dir.display()))?,
            ),
            postgres: None,
            gateway_claim: None,
        },
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let store = Arc::new(
                PgStore::connect(url)
                    .await
                    .context("cannot open the PostgreSQL store named by --store (DATAPACT_STORE)")?,
            );
            let claim = match serving {
                None => None,
                Some(Serving::Alone) => Some((Arc::clone(&store), store.claim_gateway().await?)),
                Some(Serving::Shared) => Some((Arc::clone(&store), store.claim_gateway_shared().await?)),
            };
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
            Opened { store: store.clone(), postgres: Some(store), gateway_claim: claim }
        }
        Some(_) => bail!(
            "--store (DATAPACT_STORE) is not a store: use postgres://USER@HOST[:PORT]/DATABASE for PostgreSQL, or \
             leave it out for the embedded store in --data-dir"
        ),
    })
}

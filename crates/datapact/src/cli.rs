//! The command line, as clap types.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "datapact", version, about = "A licensing gateway that serves, meters and traces a platform's posts")]
pub struct Cli {
    /// Where the embedded store and the gateway's secrets live.
    #[arg(long, global = true, env = "DATAPACT_DATA_DIR", default_value = "./datapact-data")]
    pub data_dir: PathBuf,

    /// The store: left out, the embedded SQLite store in --data-dir; or a shared PostgreSQL
    /// database, postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (a schema other than `public`
    /// with `?options=-csearch_path%3DNAME`), which then also holds the metering ledger (one
    /// chain per gateway, see `serve --node`). The data directory holds the admin token and the
    /// fingerprint secret's local copy.
    #[arg(long, global = true, env = "DATAPACT_STORE", hide_env_values = true)]
    pub store: Option<String>,

    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// For tests only: take "now" from this RFC 3339 time instead of the system clock (CLI commands;
    /// `serve` has --test-clock).
    #[arg(long, global = true, hide = true)]
    pub now: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway: the licensee API and the admin API.
    Serve(ServeArgs),
    /// Import posts and deletions from JSON Lines files (`-` for standard input).
    Ingest(IngestArgs),
    /// Delete posts: they are never served again; the deletion and its time are kept.
    Delete {
        /// Post ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Manage licensees.
    #[command(subcommand)]
    Licensee(LicenseeCommand),
    /// Manage licensee API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Create and update plans and licensees from a terms file (TOML).
    Apply {
        file: PathBuf,
        /// Print what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also remove plans missing from the file, and the agreements of licensees missing from it.
        #[arg(long)]
        prune: bool,
        /// Print the changes as JSON.
        #[arg(long)]
        json: bool,
        /// Apply price book changes that take effect sooner than the notice period (30 days); only when
        /// the licensees agreed to it.
        #[arg(long)]
        force: bool,
    },
    /// The terms in force.
    #[command(subcommand)]
    Terms(TermsCommand),
    /// Author opt-outs.
    #[command(subcommand)]
    Author(AuthorCommand),
    /// Breaches of terms, by licensee and kind.
    Violations {
        licensee: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The admin audit log, newest first.
    Audit {
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent copy of the data directory to a new directory, even while serving.
    Backup {
        /// A directory that does not exist yet (or is empty).
        out: PathBuf,
    },
    /// Move a deployment from the embedded store to PostgreSQL: copies the data directory's store
    /// (datapact.db) and metering ledger (ledger.db) into the PostgreSQL store, table by table, and
    /// its fingerprint secret ring into the store; then verifies row counts and the ledger chain.
    /// Stop the gateway first. Safe to re-run: an interrupted run is finished, a finished one is left
    /// as it is.
    Migrate {
        /// The data directory to move: sqlite://PATH, or PATH.
        #[arg(long)]
        from: String,
        /// The PostgreSQL store, as --store takes it: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE
        /// (optionally ?options=-csearch_path%3DSCHEMA). Never echoed: it may hold a password.
        #[arg(long)]
        to: String,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup into the data directory (stop the gateway first).
    Restore {
        /// A directory written by `datapact backup`.
        from: PathBuf,
        /// Replace an existing store.
        #[arg(long)]
        force: bool,
    },
    /// Write the deterministic demo corpus as JSON Lines.
    DemoCorpus(DemoCorpusArgs),
    /// Usage from the ledger: records delivered and counted, per licensee, for a month.
    Usage {
        /// One licensee (default: all).
        licensee: Option<String>,
        /// The month, YYYY-MM (default: this month, UTC).
        #[arg(long)]
        month: Option<String>,
        /// Break the month down by day, endpoint or purpose.
        #[arg(long, value_enum, default_value_t = UsageByArg::Month)]
        by: UsageByArg,
        #[arg(long)]
        json: bool,
    },
    /// Every post delivered to a licensee in a month, from the ledger (for audits and trace evidence).
    Deliveries {
        licensee: String,
        /// The month, YYYY-MM (default: this month, UTC).
        #[arg(long)]
        month: Option<String>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
    },
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// The fingerprint secret: its versions, rotation, and encrypted export and import for backup.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Which licensee(s) a leaked dump came from: fingerprints read back, canaries found, with a
    /// bound on the chance of accusing an innocent one; and, for its deleted posts, whether the
    /// leak proves a deletion deadline was missed.
    Trace(crate::trace::TraceArgs),
    /// Deletion compliance: the deletion-compliance violations traces proved, and when each
    /// licensee was told of each deletion (compliance feed or job).
    #[command(subcommand)]
    Compliance(ComplianceCommand),
    /// Dashboard users (the web UI on the admin listener, at /dashboard).
    #[command(subcommand)]
    AdminUser(crate::dashboard::AdminUserCommand),
    /// Invoices: issue a month's from the ledger, list and show them.
    #[command(subcommand)]
    Invoice(InvoiceCommand),
    /// Payments towards invoices.
    #[command(subcommand)]
    Payment(PaymentCommand),
    /// Webhooks: where notifications (cap 80 %/100 %, credit low, invoice issued/overdue/paid,
    /// suspended, reinstated) are sent, signed, with retries; and their delivery log.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Prepaid credits: add credit to a prepaid licensee, list credits and balances.
    #[command(subcommand)]
    Credit(CreditCommand),
    /// What each licensee was invoiced, has paid, owes and owes overdue; who is suspended.
    Balance {
        /// One licensee (default: all with an invoice).
        licensee: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Billing reports.
    #[command(subcommand)]
    Billing(BillingCommand),
    /// An evidence report on a licensee (or --all) over a period: terms, usage against the cap,
    /// billing, violations, trace and deletion findings, and how to check and regenerate it.
    Report(crate::report::ReportArgs),
}

#[derive(Subcommand, Debug)]
pub enum InvoiceCommand {
    /// Issue the month's invoices: one per licensee with an agreement and something to bill, priced
    /// from the ledger's counted records by the price books in force on each delivery day. A second
    /// run issues nothing new and lists what exists.
    Run {
        /// The month, YYYY-MM; it must be over.
        #[arg(long)]
        month: String,
        #[arg(long)]
        json: bool,
    },
    /// List invoices, with their status, paid and outstanding amounts.
    List {
        /// One licensee (default: all).
        licensee: Option<String>,
        /// One month, YYYY-MM (default: all).
        #[arg(long)]
        month: Option<String>,
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Void an invoice issued in error (only one with nothing paid or credited on it).
    Void {
        number: String,
        /// Why: printed on the invoice and in the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Correct an invoice downwards without editing it: a credit note (CN-000001) that lowers what
    /// is owed, at most what is outstanding.
    CreditNote {
        number: String,
        /// The amount in the invoice's currency, as a decimal: 25.00.
        amount: String,
        /// Why: printed on the credit note and in the audit log.
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Credit notes issued, in number order.
    CreditNotes {
        licensee: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One invoice and its lines: as text, JSON, CSV lines, or a printable self-contained HTML page.
    Show {
        /// The invoice number (DP-000001).
        number: String,
        #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
        /// Write it to this file rather than to standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum ShowFormat {
    Text,
    Json,
    Csv,
    Html,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
    Csv,
}

#[derive(Subcommand, Debug)]
pub enum PaymentCommand {
    /// Record a payment received towards an invoice (partial payments allowed; never more than is
    /// outstanding). The same reference again is the same payment: recorded once.
    Record {
        licensee: String,
        /// The amount in the invoice's currency, as a decimal: 468.00.
        amount: String,
        /// The invoice number it pays.
        #[arg(long)]
        invoice: String,
        /// The bank's or processor's reference, unique per licensee.
        #[arg(long)]
        reference: String,
        #[arg(long)]
        json: bool,
    },
    /// List payments.
    List {
        licensee: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Send notifications to URL: one licensee's (its own endpoint) or, without --licensee, every
    /// licensee's (the platform's). Prints the signing secret once.
    Add {
        /// Where to POST them: https://… (http:// for a receiver on the same network).
        url: String,
        #[arg(long)]
        licensee: Option<String>,
        /// Only these kinds, comma-separated (default: all): cap.80, cap.100, credit.low,
        /// invoice.issued, invoice.overdue, invoice.paid, licensee.suspended, licensee.reinstated.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Every webhook (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop sending to a webhook; its delivery log stays.
    Remove { id: i64 },
    /// The delivery log, newest first: status, attempts, the receiver's last answer, next attempt.
    Deliveries {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CreditCommand {
    /// Add prepaid credit to a licensee on a prepaid plan, in the currency of its price today. The
    /// same reference again is the same credit: recorded once. Running gateways serve a licensee
    /// refused for lack of credit within a second.
    Add {
        licensee: String,
        /// The amount as a decimal: 500.00.
        amount: String,
        /// The bank's or processor's reference, unique per licensee.
        #[arg(long)]
        reference: String,
        #[arg(long)]
        json: bool,
    },
    /// Each prepaid licensee's credits, what the ledger charged against them, and what is left.
    Balance {
        /// One licensee (default: all with a credit).
        licensee: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Every credit added, oldest first.
    List {
        licensee: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BillingCommand {
    /// A month's revenue: invoiced, paid and outstanding, per licensee and in total.
    Summary {
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ComplianceCommand {
    /// Deletion-compliance violations proved from leaks (`datapact trace --record`), oldest first.
    Violations {
        licensee: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// When each licensee was first told of each deletion, and how (feed, or job:ID).
    Notices {
        licensee: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// The secret's versions: number, creation time, code parameters and channels; never the keys.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make a new version from the OS random source for new copies; older versions are kept, so
    /// copies rendered with them can still be traced.
    Rotate {
        /// The largest coalition the new version's code is tuned for (default: the current version's).
        #[arg(long)]
        max_coalition: Option<u32>,
        /// The new version's channels, comma-separated (default: the current version's). Names:
        /// apostrophe, double-quotes, ellipsis, spaced-dash, french-spacing, accent, zero-width, homoglyph.
        #[arg(long, value_delimiter = ',')]
        channels: Option<Vec<String>>,
    },
    /// Write every version, encrypted with a passphrase, to a new file: a standard age file (scrypt),
    /// which `age -d` and `rage -d` also decrypt. Keep it apart from the data directory's backups.
    Export {
        /// The file to write (it must not exist yet).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Add the versions of an export that this data directory lacks; a version whose key differs
    /// from the local one is refused and nothing changes.
    Import {
        /// A file written by `datapact secret export`.
        file: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
}

#[derive(Args, Debug)]
pub struct PassphraseArgs {
    /// The environment variable that holds the passphrase. When it is unset and standard input is a
    /// terminal, the passphrase is asked for without echo.
    #[arg(long, value_name = "VAR", default_value = "DATAPACT_SECRET_PASSPHRASE")]
    pub passphrase_env: String,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum UsageByArg {
    Month,
    Day,
    Endpoint,
    Purpose,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// Recompute the ledger's hash chain and daily totals; name the first row edited, deleted,
    /// inserted or reordered. Exits 1 when the ledger does not verify.
    Verify {
        /// A head printed by an earlier verify (SEQ:HASH, or CHAIN@SEQ:HASH when the ledger has a
        /// chain per gateway), kept outside the database: the chain must still pass through it
        /// (catches the newest batches being rewritten or dropped). Repeat for several chains.
        #[arg(long)]
        expect: Vec<String>,
        /// Signed checkpoints kept earlier (the JSON of `GET /2/usage/checkpoints` or of
        /// `ledger checkpoint list --json`, or lines of checkpoints or `x-datapact-checkpoint`
        /// header values): each signature must check, and the ledger must extend every head they
        /// sign. Repeatable.
        #[arg(long, value_name = "FILE")]
        checkpoints: Vec<PathBuf>,
        /// The public keys to check signatures with: the JWK Set published at
        /// /.well-known/datapact/checkpoint-keys.json, as kept. Default: the store's own keys.
        #[arg(long, value_name = "FILE", requires = "checkpoints")]
        keys: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Signed checkpoints of the ledger's chain heads, and their signing keys.
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// Delete delivery and usage rows older than the retention, whole batches at a time, keeping
    /// their hashes so the chain still verifies.
    Prune {
        /// Keep this many days (default: 3 years; at least 1, since today's deliveries decide what
        /// daily dedup counts again).
        #[arg(long, default_value_t = 1095, value_parser = clap::value_parser!(u32).range(1..))]
        retention_days: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum CheckpointCommand {
    /// Sign every chain's head now (gateways also do it every --checkpoint-interval-secs).
    Make {
        #[arg(long)]
        json: bool,
    },
    /// Checkpoints, newest first; `--json` prints what `ledger verify --checkpoints` reads.
    List {
        /// At most this many (1 to 1000), newest first.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        #[arg(long)]
        json: bool,
    },
    /// The public signing keys, every one ever used; `--json` prints the published JWK Set.
    Keys {
        #[arg(long)]
        json: bool,
    },
    /// Replace the signing key: the key in use signs nothing from now on (its public half stays
    /// published, so what it signed still verifies). Do it when the store may have been copied.
    RotateKey,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address of the licensee API.
    #[arg(long, env = "DATAPACT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the admin API.
    #[arg(long, env = "DATAPACT_ADMIN_LISTEN", default_value = "127.0.0.1:8081")]
    pub admin_listen: SocketAddr,
    /// On an empty store, generate the demo corpus and licensees; always issue fresh demo keys.
    #[arg(long)]
    pub demo: bool,
    /// Proxies whose Forwarded / X-Forwarded-For headers are believed (CIDR or address, comma-separated).
    #[arg(long, env = "DATAPACT_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// PEM certificate chain; serves both listeners over TLS (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// For benchmarks only: serve every valid key without checking terms, limits or opt-outs.
    #[arg(long, hide = true)]
    pub unenforced: bool,
    /// For tests: start the clock at this RFC 3339 time, frozen, and let `POST /admin/test/clock` move it.
    #[arg(long, hide = true)]
    pub test_clock: Option<String>,
    /// Seconds a request may take before it is abandoned with a 503.
    #[arg(long, default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Seconds between signed checkpoints of the ledger's chain heads (published to licensees at
    /// /2/usage/checkpoints and in the x-datapact-checkpoint header).
    #[arg(long, env = "DATAPACT_CHECKPOINT_INTERVAL_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=31_622_400))]
    pub checkpoint_interval_secs: u64,
    /// Seconds in-flight requests may run after SIGTERM or SIGINT.
    #[arg(long, default_value_t = 20)]
    pub drain_secs: u64,
    /// MiB of rendered post JSON the gateway keeps for reuse across requests; 0 turns the cache off.
    #[arg(long, env = "DATAPACT_POST_CACHE_MIB", default_value_t = 256)]
    pub post_cache_mib: u64,
    /// Days delivery rows are kept in the ledger (default 3 years); older batches are pruned hourly, keeping
    /// their hashes.
    #[arg(long, default_value_t = 1095, value_parser = clap::value_parser!(u32).range(1..))]
    pub delivery_retention_days: u32,
    /// Benchmarks only: meter nothing (no ledger, no caps).
    #[arg(long, hide = true)]
    pub unmetered: bool,
    /// On a PostgreSQL store: this gateway's name, which names its chain in the shared ledger
    /// (each gateway writes its own). Defaults to the machine's host name.
    #[arg(long, env = "DATAPACT_NODE")]
    pub node: Option<String>,
    /// The limiter several gateways share, redis://HOST[:PORT][/DB]: rate limits, caps, daily
    /// dedup and prepaid credits are then decided in Redis for every node, so any number of
    /// gateways may serve one PostgreSQL store (without it, one gateway per store).
    #[arg(long, env = "DATAPACT_LIMITER", hide_env_values = true)]
    pub limiter: Option<String>,
    /// When the shared limiter cannot answer, serve on without counting *rate limits* (instead of
    /// 503). Caps and prepaid credits still fail closed: they are never decided without Redis.
    #[arg(long, env = "DATAPACT_LIMITER_FAIL_OPEN")]
    pub limiter_fail_open: bool,
    /// Benchmarks only: serve every licensee the public text (no fingerprints, no canaries).
    #[arg(long, hide = true)]
    pub unmarked: bool,
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// JSON Lines files; `-` reads standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Where rejected lines go (default: the first file's name + `.rejects.jsonl`).
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum LicenseeCommand {
    /// Add a licensee.
    Create { name: String },
    /// List licensees.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a licensee and its keys.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Refuse every request of this licensee (403 with the reason), on every gateway within a second.
    Block {
        name: String,
        /// Shown to the licensee in every refusal.
        #[arg(long)]
        reason: String,
    },
    /// Serve this licensee again.
    Unblock { name: String },
}

#[derive(Subcommand, Debug)]
pub enum TermsCommand {
    /// Print the terms as a file `datapact apply` takes back unchanged, or (--json) every agreement in force.
    Show {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuthorCommand {
    /// The author's posts are never served to keys with this purpose.
    OptOut {
        username: String,
        #[arg(long)]
        purpose: String,
    },
    /// Withdraw an opt-out.
    OptIn {
        username: String,
        #[arg(long)]
        purpose: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Issue a key; it is printed once and never stored.
    Issue {
        licensee: String,
        /// Expiry: a date (2027-01-31, midnight UTC) or an RFC 3339 time.
        #[arg(long)]
        expires: Option<String>,
        /// What the key's requests are for (RSL: all, ai-all, ai-train, ai-input, ai-index, search); it must be
        /// granted by the licensee's agreement. Default: the agreement's only purpose.
        #[arg(long)]
        purpose: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its prefix (as `key list` shows it).
    Revoke { prefix: String },
    /// List keys (prefix, created, last used, expiry); never the secret.
    List {
        licensee: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct DemoCorpusArgs {
    #[arg(long, default_value_t = 20_000)]
    pub posts: usize,
    #[arg(long, default_value_t = 500)]
    pub authors: usize,
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// The time of the last post (RFC 3339); default 2026-11-01T00:00:00Z.
    #[arg(long)]
    pub end: Option<String>,
    /// Output file; `-` for standard output.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("DATAPACT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

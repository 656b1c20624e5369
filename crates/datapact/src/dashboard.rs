//! The dashboard's parts that live in the binary (issue 12): `datapact admin-user` and the
//! trace runner the gateway's trace page calls (the trace lives in this crate, `trace.rs`).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use datapact_core::{Clock, Timestamp};
use datapact_gateway::dashboard::TraceRunner;
use datapact_gateway::dashboard::trace::{Progress, Traced};
use datapact_store::admin_users::{AdminRole, NewAdminUser};
use datapact_store::{LeakFile, PgStore, Store};

use crate::commands::{LedgerPlace, cli_change};
use crate::{canaries, trace};

/// Passwords shorter than this are refused.
const MIN_PASSWORD: usize = 12;

#[derive(Subcommand, Debug)]
pub enum AdminUserCommand {
    /// Add a dashboard user (the password is asked for, or read from standard input).
    Add {
        name: String,
        /// viewer (reads), operator (also blocks, unblocks, revokes keys, runs traces) or admin.
        #[arg(long)]
        role: AdminRole,
        /// Read the password from standard input (its first line) instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List dashboard users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a dashboard user: it can no longer log in and its sessions end at once.
    Remove { name: String },
}

pub async fn admin_user(command: AdminUserCommand, store: &dyn Store, now: Timestamp) -> anyhow::Result<ExitCode> {
    match command {
        AdminUserCommand::Add { name, role, password_stdin } => {
            let password = if password_stdin {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).context("cannot read the password from standard input")?;
                text.lines().next().unwrap_or_default().to_owned()
            } else if std::io::stdin().is_terminal() {
                let first = rpassword::prompt_password(format!("Password for {name}: "))?;
                if rpassword::prompt_password("Repeat it: ")? != first {
                    bail!("the passwords differ");
                }
                first
            } else {
                bail!("no terminal to ask for the password: pass --password-stdin and send it on standard input");
            };
            if password.chars().count() < MIN_PASSWORD {
                bail!("the password must be at least {MIN_PASSWORD} characters");
            }
            let password_hash =
                tokio::task::spawn_blocking(move || datapact_gateway::dashboard::hash_password(&password))
                    .await
                    .context("hashing stopped")??;
            let user = store.add_admin_user(NewAdminUser { name, role, password_hash }, &cli_change(now)).await?;
            println!("added dashboard user {} ({})", user.name, user.role);
        }
        AdminUserCommand::List { json } => {
            let users = store.admin_users().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                for user in users {
                    let removed = user.disabled_at.map(|at| format!("  removed {at}")).unwrap_or_default();
                    println!("{:<24} {:<9} added {}{removed}", user.name, user.role, user.created_at);
                }
            }
        }
        AdminUserCommand::Remove { name } => {
            let user = store.remove_admin_user(&name, &cli_change(now)).await?;
            println!("removed dashboard user {}", user.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `datapact trace --json` for the dashboard, on the serving gateway's store and ledger.
#[derive(Clone)]
pub struct ServeTracer {
    pub data_dir: PathBuf,
    pub store: Arc<dyn Store>,
    pub postgres: Option<Arc<PgStore>>,
    pub clock: Arc<dyn Clock>,
}

impl ServeTracer {
    async fn run(
        self,
        leak: PathBuf,
        file: LeakFile,
        actor: String,
        progress: Progress,
    ) -> anyhow::Result<(serde_json::Value, i64)> {
        if self.store.is_shared() {
            progress("syncing the fingerprint secret with the shared store");
            datapact_store::secrets::SecretRing::sync_with_store(&self.data_dir, self.store.as_ref(), self.clock.now())
                .await
                .context("cannot sync the fingerprint secret with the shared store")?;
        }
        let place = match &self.postgres {
            Some(pg) => LedgerPlace::Postgres(pg),
            None => LedgerPlace::DataDir(&self.data_dir),
        };
        progress("regenerating the canaries delivered");
        let canaries = canaries::delivered(&self.data_dir, &place).await?;
        let ledger = place.open_for_reading(self.clock.clone())?;
        let args = trace::TraceArgs {
            leaks: vec![leak],
            format: "auto".parse().map_err(|e: String| anyhow::anyhow!(e))?,
            epsilon: 1e-6,
            json: true,
            record: false,
            read_all: false,
        };
        progress("loading every post and reading the leak's fingerprints");
        let result = trace::trace_full(&args, &self.data_dir, &ledger, self.store.as_ref(), canaries).await?;
        let id =
            trace::record(self.store.as_ref(), &result.report, &result.deletions, vec![file], actor, self.clock.now())
                .await?;
        let mut json = serde_json::to_value(&result.report)?;
        json["deletion_compliance"] = serde_json::to_value(&result.deletions)?;
        Ok((json, id))
    }
}

impl TraceRunner for ServeTracer {
    fn trace(&self, path: PathBuf, file: LeakFile, actor: String, progress: Progress) -> Traced {
        let this = self.clone();
        Box::pin(async move { this.run(path, file, actor, progress).await.map_err(|e| format!("{e:#}")) })
    }
}

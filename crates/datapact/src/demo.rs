//! `serve --demo` and `demo-corpus`: a realistic corpus, three licensees and fresh keys.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use datapact_core::{ApiKey, Clock, Timestamp};
use datapact_demo::CorpusSpec;
use datapact_store::Store;
use datapact_store::ops::{IngestBatcher, issue_key};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::DemoCorpusArgs;

/// The demo licensees (created by the demo terms on first start) and the purpose of their keys.
pub const DEMO_LICENSEES: [(&str, &str); 3] = [("nimbus", "ai-train"), ("orchid", "ai-input"), ("acme", "search")];
/// Applied on the first start only: later changes to the terms are the operator's.
const DEMO_TERMS: &str = include_str!("demo_terms.toml");

/// Fills an empty store with the demo corpus (posts up to today), makes sure the demo licensees
/// exist, and issues each a fresh key (earlier demo keys keep working).
pub async fn prepare(store: &dyn Store, clock: &dyn Clock) -> anyhow::Result<Vec<(String, ApiKey)>> {
    let stats = store.stats().await?;
    if stats.posts + stats.deleted_posts == 0 {
        let today = clock.now().to_datetime().date_naive().and_hms_opt(0, 0, 0).context("midnight")?.and_utc();
        let spec = CorpusSpec { end: today, ..CorpusSpec::default() };
        let bar = ProgressBar::new(spec.posts as u64).with_style(
            ProgressStyle::with_template("generating the demo corpus [{bar:30}] {pos}/{len} posts")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let mut batcher = IngestBatcher::new(store);
        for (index, post) in datapact_demo::generate(&spec).enumerate() {
            let line = serde_json::to_vec(&post)?;
            batcher.push(index as u64 + 1, &line, clock.now()).await?;
            bar.inc(1);
        }
        batcher.flush(clock.now()).await?;
        bar.finish_and_clear();
        let rejected = batcher.take_rejections();
        anyhow::ensure!(rejected.is_empty(), "the demo corpus had rejected lines: {:?}", rejected.first());
        tracing::info!(counts = ?batcher.counts(), "demo corpus ingested");
    }
    let change = crate::commands::cli_change(clock.now());
    if store.terms_state().await?.plans.is_empty() {
        datapact_gateway::terms::apply_terms_file(store, DEMO_TERMS, false, false, false, &change).await?;
    }
    let mut keys = Vec::new();
    for (name, purpose) in DEMO_LICENSEES {
        let purpose = datapact_gateway::terms::key_purpose(store, name, Some(purpose)).await?;
        let (key, _) = issue_key(store, name, purpose.as_str(), None, &change).await?;
        keys.push((name.to_owned(), key));
    }
    Ok(keys)
}

/// Real ids from the store, so the printed commands work as pasted.
pub struct Examples {
    pub post_ids: Vec<String>,
    pub author_id: String,
    pub username: String,
}

pub async fn examples(store: &dyn Store) -> anyhow::Result<Option<Examples>> {
    let posts = store.recent_posts(2).await?;
    let Some(first) = posts.first() else {
        return Ok(None);
    };
    let users = store.users_by_ids(&[first.author_id]).await?;
    let Some(user) = users.first() else {
        return Ok(None);
    };
    Ok(Some(Examples {
        post_ids: posts.iter().map(|post| post.id.to_string()).collect(),
        author_id: first.author_id.to_string(),
        username: user.author.username.clone(),
    }))
}

pub fn print_welcome(
    keys: &[(String, ApiKey)],
    examples: Option<&Examples>,
    public: &str,
    admin: &str,
    data_dir: &Path,
) {
    println!("datapact demo: the corpus and licensees are in {}", data_dir.display());
    println!();
    for (name, key) in keys {
        println!("  {name:<8} {}", key.as_str());
    }
    let Some((name, key)) = keys.first() else {
        return;
    };
    let key = key.as_str();
    println!();
    println!("Try, as {name}:");
    if let Some(examples) = examples {
        let (username, author, ids) = (&examples.username, &examples.author_id, examples.post_ids.join(","));
        println!(
            "  curl -s -H 'Authorization: Bearer {key}' '{public}/2/users/by/username/{username}?user.fields=public_metrics,created_at'"
        );
        println!(
            "  curl -s -H 'Authorization: Bearer {key}' '{public}/2/tweets?ids={ids}&tweet.fields=created_at,lang,public_metrics&expansions=author_id'"
        );
        println!(
            "  curl -s -H 'Authorization: Bearer {key}' '{public}/2/users/{author}/tweets?max_results=5&tweet.fields=created_at'"
        );
    }
    println!("Admin API (token in {}/admin-token):", data_dir.display());
    println!("  curl -s -H \"Authorization: Bearer $(cat {}/admin-token)\" {admin}/admin/stats", data_dir.display());
    println!(
        "Dashboard: {admin}/dashboard (log in with that token, or add users: datapact admin-user add NAME --role operator)"
    );
    println!();
}

pub fn write_corpus(args: &DemoCorpusArgs) -> anyhow::Result<()> {
    let mut spec = CorpusSpec {
        seed: args.seed,
        posts: args.posts,
        authors: args.authors,
        days: args.days,
        ..CorpusSpec::default()
    };
    if let Some(end) = &args.end {
        let end = Timestamp::parse_rfc3339(end).map_err(|e| anyhow::anyhow!("--end: {e}"))?;
        spec.end = DateTime::<Utc>::from_timestamp_millis(end.millis()).context("--end is out of range")?;
    }
    anyhow::ensure!(
        args.posts > 0 && args.authors > 0 && args.days > 0,
        "--posts, --authors and --days must be positive"
    );
    let out: Box<dyn Write> = if args.out.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?)
    };
    let mut out = BufWriter::new(out);
    let lines = datapact_demo::write_jsonl(&spec, &mut out).context("cannot write the corpus")?;
    out.flush()?;
    eprintln!("wrote {lines} posts to {}", args.out.display());
    Ok(())
}

//! `datapact ledger checkpoint ...` and the checkpoint half of `ledger verify --checkpoints`:
//! reading the checkpoints a licensee kept, checking their signatures, and turning their heads
//! into the anchors the ledger must still pass through.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use datapact_core::Clock;
use datapact_gateway::checkpoints::{KEYS_PATH, Made, key_set, make, rotate_signing_key};
use datapact_ledger::checkpoint::{CheckpointJson, JwkSet, PublicKey, SignedCheckpoint};
use datapact_store::ledger::{ChainAnchor, Ledger};
use datapact_store::{Change, Store};

use crate::cli::CheckpointCommand;

/// The largest checkpoint or key file read: hourly checkpoints of a few chains for years are a
/// few tens of megabytes.
const MAX_FILE_BYTES: u64 = 256 << 20;

pub async fn run(
    command: CheckpointCommand,
    store: &dyn Store,
    ledger: &Ledger,
    clock: &dyn Clock,
) -> anyhow::Result<ExitCode> {
    match command {
        CheckpointCommand::Make { json } => {
            datapact_gateway::checkpoints::ensure_signing_key(store, clock.now(), "cli").await?;
            match make(store, ledger, clock, None).await? {
                Made::Signed(signed) if json => println!("{}", serde_json::to_string(&signed.to_json())?),
                Made::Signed(signed) => {
                    let c = &signed.checkpoint;
                    println!("checkpoint {} signed at {} by key {}", c.number, c.at, c.key_id);
                    for head in &c.heads {
                        println!("  {}@{}:{}", head.chain, head.seq, head.hash.to_hex());
                    }
                }
                Made::EmptyLedger => bail!("the ledger has no batch yet: there is no head to sign"),
                Made::SlotTaken => bail!("a checkpoint made by hand has no slot; this is a bug in datapact"),
            }
        }
        CheckpointCommand::List { limit, json } => {
            let found = store.checkpoints(None, usize::from(limit)).await?;
            if json {
                let data: Vec<CheckpointJson> = found.iter().map(SignedCheckpoint::to_json).collect();
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "data": data }))?);
            } else if found.is_empty() {
                println!(
                    "no checkpoint yet: gateways sign one every --checkpoint-interval-secs once the ledger has a batch"
                );
            } else {
                println!("{:>8}  {:<24}  {:<16}  heads", "number", "at", "key");
                for signed in &found {
                    let c = &signed.checkpoint;
                    let heads: Vec<String> = c.heads.iter().map(|h| format!("{}@{}", h.chain, h.seq)).collect();
                    println!("{:>8}  {:<24}  {:<16}  {}", c.number, c.at.to_x_string(), c.key_id, heads.join(" "));
                }
            }
        }
        CheckpointCommand::Keys { json } => {
            let set = key_set(store).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&set)?);
            } else if set.keys.is_empty() {
                println!("no signing key yet: `datapact serve` makes one on its first start");
            } else {
                for key in &set.keys {
                    let retired = key.retired_at.map(|t| format!("retired {t}")).unwrap_or_else(|| "in use".into());
                    println!("{}  Ed25519 {}  created {}  {}", key.kid, key.x, key.created_at, retired);
                }
                println!("published at {KEYS_PATH} on both listeners");
            }
        }
        CheckpointCommand::RotateKey => {
            let key = rotate_signing_key(store, &Change::new("cli", clock.now())).await?;
            println!(
                "signing key {} is now in use; the previous key is retired and stays published so what it signed \
                 still verifies",
                key.public.key_id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The checkpoints kept in `files`, each signature checked against `keys` (a kept JWK Set) or
/// else the store's own keys. Fails naming the first checkpoint that does not check.
pub async fn checked(
    files: &[PathBuf],
    keys: Option<&Path>,
    store: &dyn Store,
) -> anyhow::Result<(Vec<SignedCheckpoint>, &'static str)> {
    let (keys, keys_from) = match keys {
        Some(path) => {
            let set: JwkSet = serde_json::from_str(&read(path)?)
                .with_context(|| format!("{} is not a JWK Set (the JSON published at {KEYS_PATH})", path.display()))?;
            (set.keys.iter().map(PublicKey::from_jwk).collect::<Result<Vec<_>, _>>()?, "the --keys file")
        }
        None => (store.signing_keys().await?.into_iter().map(|k| k.public).collect(), "the store's own keys"),
    };
    let mut checkpoints = Vec::new();
    for path in files {
        let found = parse(&read(path)?).with_context(|| format!("cannot read checkpoints from {}", path.display()))?;
        if found.is_empty() {
            bail!("{} holds no checkpoint", path.display());
        }
        for signed in found {
            signed.verify(&keys).with_context(|| {
                format!(
                    "{}: checkpoint {} does not check (keys: {keys_from})",
                    path.display(),
                    signed.checkpoint.number
                )
            })?;
            checkpoints.push(signed);
        }
    }
    // Two different checkpoints under one number, or numbers whose times go backwards: the
    // signer equivocated (or a leaked key signed a backdated one); neither can be evidence.
    checkpoints.sort_by_key(|signed| signed.checkpoint.number);
    checkpoints.dedup();
    for pair in checkpoints.windows(2) {
        let (a, b) = (&pair[0].checkpoint, &pair[1].checkpoint);
        if a.number == b.number {
            bail!("two different checkpoints are numbered {}: the signer contradicted itself", a.number);
        }
        if b.at < a.at {
            bail!(
                "checkpoint {} is dated {} but checkpoint {} before it is dated {}: the times go backwards",
                b.number,
                b.at,
                a.number,
                a.at
            );
        }
    }
    Ok((checkpoints, keys_from))
}

/// Every head the checkpoints sign, as anchors the ledger must pass through.
pub fn anchors(checkpoints: &[SignedCheckpoint]) -> Vec<ChainAnchor> {
    checkpoints
        .iter()
        .flat_map(|signed| signed.checkpoint.heads.iter())
        .map(|head| ChainAnchor { chain: Some(head.chain.clone()), anchor: head.anchor() })
        .collect()
}

/// The checkpoints that signed a head with `hash` (to name them when the ledger departs from it).
pub fn signed_with(checkpoints: &[SignedCheckpoint], hash: &datapact_ledger::Digest) -> Vec<u64> {
    checkpoints
        .iter()
        .filter(|signed| signed.checkpoint.heads.iter().any(|head| head.hash == *hash))
        .map(|signed| signed.checkpoint.number)
        .collect()
}

fn read(path: &Path) -> anyhow::Result<String> {
    let size = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    if size > MAX_FILE_BYTES {
        bail!("{} is {size} bytes; a checkpoint or key file is at most {MAX_FILE_BYTES}", path.display());
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Checkpoints in any of the forms datapact hands out: a JSON document (`{"data": [...]}` as
/// served, an array, or one checkpoint), or lines, each a checkpoint's JSON or a header value.
fn parse(text: &str) -> anyhow::Result<Vec<SignedCheckpoint>> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Document {
        Page { data: Vec<CheckpointJson> },
        List(Vec<CheckpointJson>),
        One(Box<CheckpointJson>),
    }
    if let Ok(document) = serde_json::from_str::<Document>(text) {
        let all = match document {
            Document::Page { data } | Document::List(data) => data,
            Document::One(one) => vec![*one],
        };
        return Ok(all.iter().map(CheckpointJson::decode).collect::<Result<_, _>>()?);
    }
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        let line = line.trim();
        const PREFIX: &str = "x-datapact-checkpoint:";
        let line = match line.get(..PREFIX.len()) {
            Some(start) if start.eq_ignore_ascii_case(PREFIX) => line[PREFIX.len()..].trim(),
            _ => line,
        };
        let signed = if line.starts_with('{') {
            serde_json::from_str::<CheckpointJson>(line)
                .map_err(anyhow::Error::from)
                .and_then(|json| Ok(json.decode()?))
        } else {
            SignedCheckpoint::from_header(line).map_err(anyhow::Error::from)
        };
        found.push(signed.with_context(|| format!("line {}", number + 1))?);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use datapact_core::Timestamp;
    use datapact_ledger::checkpoint::{ChainHead, Checkpoint, SigningKey};

    use super::*;

    fn signed(number: u64) -> SignedCheckpoint {
        let key = SigningKey::from_seed([5; 32]);
        let heads = vec![ChainHead { chain: "sqlite".into(), seq: number, hash: datapact_ledger::Digest([7; 32]) }];
        Checkpoint { number, at: Timestamp(1_000), key_id: key.key_id(), heads }.sign(&key).unwrap()
    }

    #[test]
    fn every_form_handed_out_reads_back() {
        let (one, two) = (signed(1), signed(2));
        let json = |s: &SignedCheckpoint| serde_json::to_string(&s.to_json()).unwrap();
        let page = format!("{{\"data\": [{}, {}], \"meta\": {{\"result_count\": 2}}}}", json(&two), json(&one));
        assert_eq!(parse(&page).unwrap(), [two.clone(), one.clone()]);
        assert_eq!(parse(&format!("[{}]", json(&one))).unwrap(), std::slice::from_ref(&one));
        assert_eq!(parse(&json(&one)).unwrap(), std::slice::from_ref(&one));
        let lines = format!("{}\n\nX-Datapact-Checkpoint: {}\n", json(&one), two.to_header());
        assert_eq!(parse(&lines).unwrap(), [one, two]);
    }

    #[test]
    fn a_bad_line_is_named() {
        let error = parse("{\"number\": 1}\nnot a checkpoint\n").unwrap_err();
        assert!(format!("{error:#}").contains("line 1"), "{error:#}");
    }
}

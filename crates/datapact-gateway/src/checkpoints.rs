//! Signed ledger checkpoints (issue 11): the schedule that signs every chain's head at a fixed
//! interval, the licensee's `GET /2/usage/checkpoints`, the latest checkpoint in every
//! authenticated response's `x-datapact-checkpoint` header, and the public keys as a JWK Set at
//! [`KEYS_PATH`].
//!
//! Every gateway runs the schedule; a checkpoint is made once per interval (the store keeps one
//! per slot), by whichever gateway gets there first, and each gateway re-reads the newest one at
//! every tick for its header.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use datapact_core::{Clock, Timestamp};
use datapact_ledger::checkpoint::{JwkSet, SignedCheckpoint};
use datapact_store::checkpoints::{KeyChange, StoredSigningKey};
use datapact_store::ledger::Ledger;
use datapact_store::{Change, Store, StoreError, StoreResult};
use serde_json::json;

use crate::AppState;
use crate::params::QueryParams;
use crate::problem::Problem;

/// Where the public keys are published, on both listeners, without authentication.
pub const KEYS_PATH: &str = "/.well-known/datapact/checkpoint-keys.json";
/// The response header carrying the newest checkpoint.
pub const HEADER: HeaderName = HeaderName::from_static("x-datapact-checkpoint");
/// The default interval between checkpoints.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3_600);
/// How often the schedule looks at the clock (and re-reads the newest checkpoint).
const TICK: Duration = Duration::from_secs(10);
/// With a test clock, time jumps: look often.
const TEST_CLOCK_TICK: Duration = Duration::from_millis(200);
/// A page of `GET /2/usage/checkpoints`: at most this many, 24 (a day's) by default.
const MAX_PAGE: usize = 100;
const DEFAULT_PAGE: usize = 24;
/// The largest checkpoint sent as a header (about 25 chains).
const MAX_HEADER_BYTES: usize = 3_072;
/// How many times a checkpoint is attempted when a key rotation lands between reading the heads
/// and signing them.
const ATTEMPTS: usize = 3;

/// The newest checkpoint this gateway has seen, ready to be sent as a header.
#[derive(Debug)]
pub struct Published {
    interval: Duration,
    /// The newest checkpoint's number, and its header value unless it is too large for one.
    latest: RwLock<(u64, Option<HeaderValue>)>,
    /// The public keys as last read by the schedule: the well-known URL needs no key, so it must
    /// not cost a store read per request.
    keys: RwLock<Option<Arc<JwkSet>>>,
}

impl Published {
    /// Checkpoints every `interval` (at least a second).
    pub fn new(interval: Duration) -> Published {
        Published {
            interval: interval.max(Duration::from_secs(1)),
            latest: RwLock::new((0, None)),
            keys: RwLock::new(None),
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn header(&self) -> Option<HeaderValue> {
        self.latest.read().ok().and_then(|latest| latest.1.clone())
    }

    fn keys(&self) -> Option<Arc<JwkSet>> {
        self.keys.read().ok().and_then(|keys| keys.clone())
    }

    fn set_keys(&self, set: JwkSet) {
        if let Ok(mut keys) = self.keys.write() {
            *keys = Some(Arc::new(set));
        }
    }

    fn set(&self, checkpoint: &SignedCheckpoint) {
        let number = checkpoint.checkpoint.number;
        let text = checkpoint.to_header();
        // Proxies and clients refuse large headers (nginx's buffers are 4-8 KiB): past this, only
        // `/2/usage/checkpoints` carries the checkpoint (and no older one is sent instead).
        let value = match text.len() > MAX_HEADER_BYTES {
            true => None,
            false => HeaderValue::from_str(&text).ok(),
        };
        if let Ok(mut latest) = self.latest.write()
            && latest.0 < number
        {
            if value.is_none() {
                tracing::warn!(
                    number,
                    bytes = text.len(),
                    "checkpoint too large for a header; not sent in x-datapact-checkpoint"
                );
            }
            *latest = (number, value);
        }
    }
}

impl Default for Published {
    fn default() -> Self {
        Published::new(DEFAULT_INTERVAL)
    }
}

/// What [`make`] did.
#[derive(Debug)]
pub enum Made {
    Signed(SignedCheckpoint),
    /// Another gateway made the checkpoint of this slot.
    SlotTaken,
    /// The ledger has no batch yet: there is no head to sign.
    EmptyLedger,
}

/// Reads every chain's head and records it signed, as checkpoint `slot` (`None`: by hand).
pub async fn make(store: &dyn Store, ledger: &Ledger, clock: &dyn Clock, slot: Option<i64>) -> StoreResult<Made> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Heads first, then the time: the checkpoint says the ledger held at least these at `at`.
        let heads = ledger.heads().await?;
        let at = clock.now();
        if heads.is_empty() {
            return Ok(Made::EmptyLedger);
        }
        match store.record_checkpoint(heads, at, slot).await {
            Ok(Some(signed)) => return Ok(Made::Signed(signed)),
            Ok(None) => return Ok(Made::SlotTaken),
            // A rotation landed between reading the heads and signing them: read them again.
            Err(StoreError::Conflict(_)) if attempt < ATTEMPTS => continue,
            Err(error) => return Err(error),
        }
    }
}

/// The signing key in use, created from the OS random source if the store has none.
pub async fn ensure_signing_key(store: &dyn Store, now: Timestamp, actor: &str) -> StoreResult<StoredSigningKey> {
    store.add_signing_key(random_seed()?, KeyChange::CreateIfNone, &Change::new(actor, now)).await
}

/// Replaces the signing key in use by a new one (the old one signs nothing from now on).
pub async fn rotate_signing_key(store: &dyn Store, change: &Change) -> StoreResult<StoredSigningKey> {
    store.add_signing_key(random_seed()?, KeyChange::Rotate, change).await
}

fn random_seed() -> StoreResult<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| StoreError::Unavailable(format!("the OS random source failed; no signing key made: {e}")))?;
    Ok(seed)
}

/// The first checkpoint that covers every `(chain, seq)` batch in `needs` (it signs a head at or
/// after each): the signed statement behind a report that read those batches. `None` when no
/// checkpoint covers them yet (the next one will).
pub async fn covering(store: &dyn Store, needs: &[(String, u64)]) -> StoreResult<Option<SignedCheckpoint>> {
    let mut below: Option<u64> = None;
    let mut oldest_covering = None;
    // Newest first: the covering ones come first; keep going until one does not cover.
    loop {
        let page = store.checkpoints(below, datapact_store::checkpoints::MAX_CHECKPOINTS_PER_READ).await?;
        let Some(last) = page.last() else { return Ok(oldest_covering) };
        below = Some(last.checkpoint.number);
        for signed in page {
            if !needs.iter().all(|(chain, seq)| signed.checkpoint.covers(chain, *seq)) {
                return Ok(oldest_covering);
            }
            oldest_covering = Some(signed);
        }
    }
}

/// The public keys, every one ever used, as a JWK Set.
pub async fn key_set(store: &dyn Store) -> StoreResult<JwkSet> {
    Ok(JwkSet { keys: store.signing_keys().await?.iter().map(|key| key.public.to_jwk()).collect() })
}

/// Starts the schedule: a signing key if there is none, then one checkpoint per interval.
pub fn spawn_schedule(state: AppState) {
    let Some(ledger) = state.ledger.clone() else { return };
    let tick = if state.test_clock.is_some() { TEST_CLOCK_TICK } else { TICK };
    let interval_ms = i64::try_from(state.checkpoints.interval().as_millis()).unwrap_or(i64::MAX);
    tokio::spawn(async move {
        let mut made_slot: Option<i64> = None;
        loop {
            let now = state.clock.now();
            // A slot is named by its first instant, so changing the interval never reuses a name.
            let slot = now.millis() - now.millis().rem_euclid(interval_ms);
            if made_slot != Some(slot) {
                let outcome = match ensure_signing_key(state.store.as_ref(), now, "gateway").await {
                    Ok(_) => make(state.store.as_ref(), &ledger, state.clock.as_ref(), Some(slot)).await,
                    Err(error) => Err(error),
                };
                match outcome {
                    Ok(Made::Signed(signed)) => {
                        let c = &signed.checkpoint;
                        tracing::info!(number = c.number, heads = c.heads.len(), key = %c.key_id, "ledger checkpoint signed");
                        made_slot = Some(slot);
                    }
                    Ok(Made::SlotTaken) => made_slot = Some(slot),
                    // Nothing to sign yet: look again at the next tick.
                    Ok(Made::EmptyLedger) => {}
                    Err(error) => tracing::error!(%error, "no ledger checkpoint this tick; retrying"),
                }
            }
            match state.store.checkpoints(None, 1).await {
                Ok(newest) => {
                    if let Some(newest) = newest.first() {
                        state.checkpoints.set(newest);
                    }
                }
                Err(error) => tracing::debug!(%error, "cannot read the newest checkpoint"),
            }
            // A rotation by another gateway or the CLI shows up here within a tick.
            match key_set(state.store.as_ref()).await {
                Ok(set) => state.checkpoints.set_keys(set),
                Err(error) => tracing::debug!(%error, "cannot read the checkpoint keys"),
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = state.shutdown.cancelled() => return,
            }
        }
    });
}

/// Middleware on the licensee API: the newest checkpoint on every authenticated response, so a
/// licensee keeps one without asking.
pub async fn header(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Some(value) = state.checkpoints.header() {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// `GET /2/usage/checkpoints`: signed checkpoints, newest first, with `next_token` to older ones.
/// Readable with any valid key, a blocked licensee's included: they are its evidence too. The
/// heads show how many batches each gateway has committed (platform-wide volume, not any
/// licensee's).
#[utoipa::path(
    get, path = "/2/usage/checkpoints", tag = "usage",
    params(
        ("max_results" = Option<u32>, Query, description = "1-100 checkpoints per page (default 24)"),
        ("pagination_token" = Option<String>, Query, description = "`meta.next_token` of the previous page"),
    ),
    responses(
        (status = 200, description = "`data`: checkpoints (number, at, key_id, heads [{chain, seq, hash}], signature in base64), newest first; `meta`: result_count, next_token, keys_url", content_type = "application/json"),
        crate::openapi::LicenseeProblems,
    )
)]
pub async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Response, Problem> {
    page(&state, query.as_deref()).await
}

/// `GET /admin/ledger/checkpoints`: the same pages for operators.
#[utoipa::path(
    get, path = "/admin/ledger/checkpoints", tag = "admin",
    params(
        ("max_results" = Option<u32>, Query, description = "1-100 checkpoints per page (default 24)"),
        ("pagination_token" = Option<String>, Query, description = "`meta.next_token` of the previous page"),
    ),
    responses((status = 200, description = "as `GET /2/usage/checkpoints`", content_type = "application/json"))
)]
pub async fn admin_list(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Response, Problem> {
    page(&state, query.as_deref()).await
}

async fn page(state: &AppState, query: Option<&str>) -> Result<Response, Problem> {
    let params = QueryParams::parse(query)?;
    let max = params.bounded("max_results", 1, MAX_PAGE, DEFAULT_PAGE)?;
    let before: Option<u64> = params.id("pagination_token")?;
    let mut found = state.store.checkpoints(before, max + 1).await?;
    let more = found.len() > max;
    found.truncate(max);
    let mut meta = json!({ "result_count": found.len(), "keys_url": KEYS_PATH });
    if more && let Some(last) = found.last() {
        meta["next_token"] = json!(last.checkpoint.number.to_string());
    }
    let data: Vec<_> = found.iter().map(SignedCheckpoint::to_json).collect();
    Ok(Json(json!({ "data": data, "meta": meta })).into_response())
}

/// The public keys as a JWK Set (RFC 7517), every key ever used with the span it signed in.
#[utoipa::path(
    get, path = "/.well-known/datapact/checkpoint-keys.json", tag = "usage",
    responses((status = 200, description = "JWK Set: kty OKP, crv Ed25519, kid, x, created_at, retired_at", content_type = "application/json"))
)]
pub async fn keys(State(state): State<AppState>) -> Result<Response, Problem> {
    // The schedule's copy; the store only before its first tick (or with no ledger to sign).
    let set = match state.checkpoints.keys() {
        Some(set) => set,
        None => Arc::new(key_set(state.store.as_ref()).await?),
    };
    Ok(([(header::CACHE_CONTROL, "public, max-age=300")], Json(set.as_ref())).into_response())
}

#[cfg(test)]
mod tests {
    use datapact_ledger::{ChainHead, Digest};
    use datapact_store::SqliteStore;

    use super::*;

    fn heads(a: u64, b: u64) -> Vec<ChainHead> {
        vec![
            ChainHead { chain: "node-a".into(), seq: a, hash: Digest([a as u8; 32]) },
            ChainHead { chain: "node-b".into(), seq: b, hash: Digest([b as u8; 32]) },
        ]
    }

    #[tokio::test]
    async fn the_first_checkpoint_covering_the_batches_read_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        ensure_signing_key(&store, Timestamp(0), "test").await.unwrap();
        for (n, (a, b)) in [(3, 1), (5, 1), (5, 4), (9, 6)].into_iter().enumerate() {
            store.record_checkpoint(heads(a, b), Timestamp(10 + n as i64), None).await.unwrap().unwrap();
        }
        let number = |found: Option<SignedCheckpoint>| found.map(|c| c.checkpoint.number);
        let need = |a: u64, b: u64| vec![("node-a".to_owned(), a), ("node-b".to_owned(), b)];
        assert_eq!(number(covering(&store, &need(4, 1)).await.unwrap()), Some(2));
        assert_eq!(number(covering(&store, &need(1, 2)).await.unwrap()), Some(3));
        assert_eq!(number(covering(&store, &need(9, 6)).await.unwrap()), Some(4));
        // Beyond the newest heads, or a chain no checkpoint names: none yet.
        assert_eq!(number(covering(&store, &need(10, 1)).await.unwrap()), None);
        assert_eq!(number(covering(&store, &[("node-c".to_owned(), 1)]).await.unwrap()), None);
    }
}

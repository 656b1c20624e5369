//! Who is calling: licensee keys for the `/2/` API, the admin token for the admin API.
//!
//! Keys live in an in-memory map swapped atomically whenever the store's change counter moves,
//! so a key issued or revoked by the CLI in another process takes effect within one poll
//! interval, and authentication never waits on the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use arc_swap::ArcSwap;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use datapact_core::{ApiKey, KeyHash, KeyPrefix, Timestamp};
use datapact_store::{KeyGrant, Store, StoreResult};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::problem::Problem;

/// The licensee a request is served for, set by [`require_licensee`].
#[derive(Clone, Debug)]
pub struct Caller {
    pub licensee_id: i64,
    pub licensee: String,
    pub key_prefix: KeyPrefix,
    /// The key's purpose: every request made with it is for this purpose.
    pub purpose: String,
}

pub struct KeyCache {
    grants: ArcSwap<HashMap<KeyHash, KeyGrant>>,
    seen_counter: AtomicI64,
    /// Last use per key since the previous flush to the store.
    uses: Mutex<HashMap<KeyPrefix, Timestamp>>,
}

impl KeyCache {
    pub async fn load(store: &dyn Store) -> StoreResult<Self> {
        let cache = KeyCache {
            grants: ArcSwap::from_pointee(HashMap::new()),
            seen_counter: AtomicI64::new(i64::MIN),
            uses: Mutex::new(HashMap::new()),
        };
        cache.refresh(store).await?;
        Ok(cache)
    }

    /// Reloads the keys if the store's change counter moved; returns whether it did.
    pub async fn refresh(&self, store: &dyn Store) -> StoreResult<bool> {
        // Read the counter before the keys: a change landing in between is caught next time.
        let counter = store.change_counter().await?;
        if counter == self.seen_counter.load(Ordering::Acquire) {
            return Ok(false);
        }
        let grants = store.key_grants().await?;
        self.grants.store(Arc::new(grants.into_iter().map(|grant| (grant.hash, grant)).collect()));
        self.seen_counter.store(counter, Ordering::Release);
        Ok(true)
    }

    pub fn authenticate(&self, headers: &HeaderMap, now: Timestamp) -> Result<Caller, Problem> {
        let token = bearer_token(headers).ok_or_else(|| {
            Problem::unauthorized("Missing credentials: send `Authorization: Bearer <your datapact API key>`")
        })?;
        let key =
            ApiKey::parse(token).ok_or_else(|| Problem::unauthorized("The bearer token is not a datapact API key"))?;
        let grants = self.grants.load();
        let grant = grants.get(&key.hash()).ok_or_else(|| Problem::unauthorized("Unknown API key"))?;
        let record = &grant.record;
        if let Some(revoked_at) = record.revoked_at {
            return Err(Problem::unauthorized(format!("API key {} was revoked at {revoked_at}", record.prefix)));
        }
        if let Some(expires_at) = record.expires_at.filter(|expiry| now >= *expiry) {
            return Err(Problem::unauthorized(format!("API key {} expired at {expires_at}", record.prefix)));
        }
        if let Ok(mut uses) = self.uses.lock() {
            match uses.get_mut(&record.prefix) {
                Some(last) => *last = now,
                None => {
                    uses.insert(record.prefix.clone(), now);
                }
            }
        }
        Ok(Caller {
            licensee_id: grant.licensee_id,
            licensee: record.licensee.clone(),
            key_prefix: record.prefix.clone(),
            purpose: record.purpose.clone(),
        })
    }

    /// Key uses since the last call, for the store's `last_used_at`.
    pub fn take_uses(&self) -> Vec<(KeyPrefix, Timestamp)> {
        self.uses.lock().map(|mut uses| uses.drain().collect()).unwrap_or_default()
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Middleware for the licensee API: a valid key or a 401 problem.
pub async fn require_licensee(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    match state.keys.authenticate(request.headers(), state.clock.now()) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(problem) => problem.into_response(),
    }
}

/// Middleware for the admin API: the admin token, compared in constant time. A licensee key
/// never matches it: the two are different secrets with different prefixes.
pub async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = bearer_token(request.headers()).unwrap_or("");
    let expected = state.admin_token.as_bytes();
    let matches = presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected));
    if !matches {
        return Problem::unauthorized("The admin API needs `Authorization: Bearer <admin token>`").into_response();
    }
    next.run(request).await
}

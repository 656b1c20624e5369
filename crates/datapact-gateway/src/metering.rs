//! Metering responses: every post a licensee receives is counted in the ledger, durably, before
//! the bytes that carry it leave (ARCHITECTURE.md, "Invariants").
//!
//! A handler chooses its posts, then hands them to [`deliver_posts`] with a function that renders
//! the body. `deliver_posts` reserves the counts (which may cut the page at a hard cap, or refuse
//! it with 429 `usage-capped`), renders what was allotted, commits the ledger rows and only then
//! returns the body. A client that disconnects mid-request cannot leave a reservation half-made:
//! the reservation commits itself when dropped (counted, not received: the only way the ledger
//! may exceed what clients got); see [`meter_body`].
//!
//! [`idempotency`] makes a retried request with the same `Idempotency-Key` replay the committed
//! body without counting it again.

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use datapact_core::{Endpoint, PostId, Timestamp};
use datapact_ledger::{
    Cap, Capped, CreditExhausted, Dedup, IdempotencyKey, RequestFingerprint, USAGE_CAPPED, cap_reset,
};
use datapact_store::ledger::{Claim, ClaimGuard, EventFacts, IdempotentResponse, MeterRequest, PrepaidTerms, Reserved};

use crate::AppState;
use crate::api::Delivery;
use crate::problem::Problem;
use crate::terms::{Admission, TermsSnapshot};

/// The header a client sends to make a request safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a replayed response.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// A fresh `Idempotency-Key` this request holds (set by [`idempotency`]).
#[derive(Clone, Debug)]
pub struct IdempotencyClaim {
    key: String,
    fingerprint: RequestFingerprint,
    _guard: Arc<ClaimGuard>,
}

/// A rendered body and what it carried besides posts.
pub struct Rendered {
    pub body: Vec<u8>,
    /// User objects in the body (`includes.users` or `data`), reported in the usage event.
    pub user_reads: u32,
}

/// When a licensee's hard cap resets: set on a 429 `usage-capped` response, so the terms layer
/// reports that instant in `x-rate-limit-reset` rather than the rate window's.
#[derive(Clone, Copy, Debug)]
pub struct CapReset(pub Timestamp);

/// A metered body, and whether a hard cap cut its posts short.
pub struct MeteredBody {
    pub body: Vec<u8>,
    pub cut: bool,
}

/// A response's ledger commit, sent to the writer but not yet known to be durable: the body may
/// not leave before it resolves (an error: answer that instead).
type Commit = std::pin::Pin<Box<dyn Future<Output = Result<(), Problem>> + Send>>;

/// A response whose body waits for its ledger commit ([`await_commit`] awaits it). Carried in the
/// response's extensions, which must be `Clone + Sync`.
#[derive(Clone)]
struct PendingCommit(Arc<std::sync::Mutex<CommitSlot>>);

/// The commit until [`await_commit`] takes it.
struct CommitSlot(Option<Commit>);

impl Drop for CommitSlot {
    fn drop(&mut self) {
        // Only a route outside `await_commit` can drop a response's commit unawaited: its body
        // would then leave before its records were durable.
        if self.0.is_some() {
            tracing::error!("a metered response was sent without awaiting its ledger commit");
            debug_assert!(false, "a metered response was sent without awaiting its ledger commit");
        }
    }
}

/// Meters and renders a response carrying posts. `render` gets the allotted delivery (a prefix of
/// the one chosen) and whether a hard cap cut it short, and returns the body.
pub async fn deliver_posts<F, Fut>(
    state: &AppState,
    admission: &Admission,
    delivery: Delivery,
    render: F,
) -> Result<Response, Problem>
where
    F: FnOnce(Delivery, bool) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Rendered, Problem>> + Send + 'static,
{
    let (metered, commit) = meter_deferred(state, admission, delivery, render).await?;
    let mut response = json(metered.body, false);
    if let Some(commit) = commit {
        response.extensions_mut().insert(PendingCommit(Arc::new(std::sync::Mutex::new(CommitSlot(Some(commit))))));
    }
    Ok(response)
}

/// Middleware outside every layer of the licensee API but metrics: a response still waiting for its
/// ledger commit ([`deliver_posts`]) leaves only once the commit is durable, and becomes a 503 if
/// it fails. Waiting here rather than in the handler means the layers inside finish in one pass
/// while their state is still in the CPU's caches, instead of each being resumed, cold, after a
/// group commit that ran dozens of other requests meanwhile.
pub async fn await_commit(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let pending = response.extensions_mut().remove::<PendingCommit>();
    let commit = pending.and_then(|pending| pending.0.lock().unwrap_or_else(|p| p.into_inner()).0.take());
    if let Some(commit) = commit
        && let Err(problem) = commit.await
    {
        return problem.into_response();
    }
    response
}

/// Refuses with 429 `usage-capped` when the caller is at its hard cap, or 402 when its prepaid
/// credit pays for no record (a stream checks before it starts): the ledger's answer to a page of
/// nothing, which reserves nothing.
pub async fn check_cap(state: &AppState, admission: &Admission) -> Result<(), Problem> {
    let Some(ledger) = &state.ledger else { return Ok(()) };
    let (cap, dedup, prepaid) = meter_terms(state, admission)?;
    let at = admission.now();
    let request_id = admission.request_id();
    let request = MeterRequest { licensee_id: admission.licensee_id(), request_id, cap, dedup, page: &[], at, prepaid };
    match ledger.reserve(request).await? {
        Reserved::Refused(capped) => Err(usage_capped(capped, at)),
        Reserved::NoCredit(exhausted) => Err(credits_depleted(state, admission, exhausted)),
        Reserved::Serve(_) => Ok(()),
    }
}

/// [`deliver_posts`]'s work, returning the body: reserve, render, commit, in that order.
///
/// A client that disconnects cancels this future. Before the reservation there is nothing to
/// undo; after it, the reservation commits itself when dropped (counted, not received: the only
/// way the ledger may exceed what clients got), so most responses run inline. Two kinds finish
/// in a task of their own, immune to cancellation: a response with an `Idempotency-Key` (a retry
/// must find its body) and one that crosses a notification threshold (the webhook must be raised).
pub async fn meter_body<F, Fut>(
    state: &AppState,
    admission: &Admission,
    delivery: Delivery,
    render: F,
) -> Result<MeteredBody, Problem>
where
    F: FnOnce(Delivery, bool) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Rendered, Problem>> + Send + 'static,
{
    let (metered, commit) = meter_deferred(state, admission, delivery, render).await?;
    if let Some(commit) = commit {
        commit.await?;
    }
    Ok(metered)
}

/// [`meter_body`], but the commit, when still to be awaited, is returned rather than awaited: the
/// body may leave only once it resolved.
async fn meter_deferred<F, Fut>(
    state: &AppState,
    admission: &Admission,
    mut delivery: Delivery,
    render: F,
) -> Result<(MeteredBody, Option<Commit>), Problem>
where
    F: FnOnce(Delivery, bool) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Rendered, Problem>> + Send + 'static,
{
    let Some(ledger) = state.ledger.as_ref() else {
        let count = delivery.len();
        let rendered = render(delivery, false).await?;
        admission.served(count);
        return Ok((MeteredBody { body: rendered.body, cut: false }, None));
    };
    let (cap, dedup, prepaid) = meter_terms(state, admission)?;
    let page: Vec<(i64, u32)> = delivery.delivered().map(|(id, revision)| (id.get(), revision)).collect();
    let at = admission.now();
    let request_id = admission.request_id();
    let request =
        MeterRequest { licensee_id: admission.licensee_id(), request_id, cap, dedup, page: &page, at, prepaid };
    let mut reservation = match ledger.reserve(request).await? {
        Reserved::Refused(capped) => return Err(usage_capped(capped, at)),
        Reserved::NoCredit(exhausted) => return Err(credits_depleted(state, admission, exhausted)),
        Reserved::Serve(reservation) => reservation,
    };
    // No await from here until the reservation is either committed on drop or moved into a task.
    reservation.commit_if_dropped(facts(admission, 0, 0));
    let crossing = crate::webhooks::Crossing {
        licensee_id: admission.licensee_id(),
        at,
        cap: cap.monthly_records.limit().map(|limit| {
            let after = reservation.allotment().used_after;
            (limit, after - u64::from(reservation.allotment().counted), after)
        }),
        credit: prepaid
            .zip(reservation.balance())
            .map(|(terms, (before, after))| (terms.credited_micros, before, after)),
    };
    let allotted = reservation.posts().len();
    let cut = reservation.cut();
    delivery.truncate(allotted);
    let canaries: Vec<i64> = delivery.canary().map(PostId::get).into_iter().collect();
    let notifications = crate::webhooks::crossings(&crossing);
    let detached = admission.idempotency().is_some() || !notifications.is_empty();
    let finish = {
        let (state, admission) = (state.clone(), admission.clone());
        async move {
            let rendered = match render(delivery, cut).await {
                Ok(rendered) => rendered,
                Err(problem) => {
                    reservation.abandon();
                    return Err(problem);
                }
            };
            let facts = facts(&admission, rendered.user_reads, rendered.body.len() as u64);
            let response = response_to_keep(&admission, &rendered);
            // The rows go to the writer now, whoever awaits the commit and whenever.
            let commit = reservation.commit_with_canaries(facts, &canaries, response);
            let commit: Commit = Box::pin(async move {
                commit.await.map_err(not_committed)?;
                admission.served(allotted);
                crate::webhooks::raise(&state, notifications);
                Ok(())
            });
            Ok((MeteredBody { body: rendered.body, cut }, commit))
        }
    };
    if !detached {
        let (metered, commit) = finish.await?;
        return Ok((metered, Some(commit)));
    }
    let finished = tokio::spawn(async move {
        let (metered, commit) = finish.await?;
        commit.await.map(|()| metered)
    });
    let metered = finished.await.map_err(task_failed)??;
    Ok((metered, None))
}

/// Meters and returns a response carrying no posts (user lookups): its user reads are recorded.
pub async fn deliver_users(state: &AppState, admission: &Admission, rendered: Rendered) -> Result<Response, Problem> {
    let Some(ledger) = &state.ledger else { return Ok(json(rendered.body, false)) };
    let facts = facts(admission, rendered.user_reads, rendered.body.len() as u64);
    let response = response_to_keep(admission, &rendered);
    // Submitted before the first await: a disconnecting client cannot leave it half-done.
    let commit = ledger.record(admission.licensee_id(), admission.now(), facts, response);
    let committed = if admission.idempotency().is_some() {
        // Awaited in a task holding the admission, and with it the key, until the commit is
        // durable: a client that goes away meanwhile and retries is told "in progress", rather than
        // finding no stored response and being served (and recorded) a second time.
        let held = admission.clone();
        let committed = tokio::spawn(async move {
            let committed = commit.await;
            drop(held);
            committed
        });
        committed.await.map_err(task_failed)?
    } else {
        commit.await
    };
    committed.map_err(not_committed)?;
    Ok(json(rendered.body, false))
}

fn facts(admission: &Admission, user_reads: u32, bytes: u64) -> EventFacts {
    EventFacts {
        key_prefix: admission.key_prefix().clone(),
        endpoint: admission.endpoint,
        purpose: admission.purpose,
        request_id: admission.request_id().to_owned(),
        idempotency_key: admission.idempotency().map(|claim| claim.key.clone()),
        user_reads,
        bytes,
    }
}

fn response_to_keep(admission: &Admission, rendered: &Rendered) -> Option<IdempotentResponse> {
    admission.idempotency().map(|claim| IdempotentResponse {
        key: claim.key.clone(),
        fingerprint: claim.fingerprint,
        body: rendered.body.clone(),
    })
}

fn task_failed(error: tokio::task::JoinError) -> Problem {
    tracing::error!(%error, "metering task failed");
    Problem::unavailable("the response could not be metered; nothing was delivered, retry")
}

fn not_committed(error: datapact_store::StoreError) -> Problem {
    tracing::error!(%error, "ledger commit failed; the response was not sent");
    Problem::unavailable("the usage ledger could not record this response, so nothing was delivered; retry shortly")
}

/// What the ledger meters the caller's response against: its cap, dedup rule and, if prepaid, its
/// credit terms, all from one terms snapshot.
fn meter_terms(state: &AppState, admission: &Admission) -> Result<(Cap, Dedup, Option<PrepaidTerms>), Problem> {
    let snapshot = state.terms.snapshot();
    let (cap, dedup) = agreement_cap(&snapshot, admission.licensee_id());
    Ok((cap, dedup, snapshot.prepaid(admission.licensee_id(), admission.now())?))
}

/// The cap and dedup rule in force for a licensee. Without an agreement (only when terms are
/// not enforced, for benchmarks) nothing is capped and posts count once a day.
pub(crate) fn agreement_cap(snapshot: &TermsSnapshot, licensee_id: i64) -> (Cap, Dedup) {
    match snapshot.licensees.get(&licensee_id).and_then(|l| l.agreement.as_ref()) {
        Some(agreement) => {
            let monthly_records = match agreement.monthly_records {
                Some(limit) => datapact_ledger::MonthlyRecords::Limit(limit),
                None => datapact_ledger::MonthlyRecords::Unlimited,
            };
            (Cap { monthly_records, mode: agreement.cap }, agreement.dedup)
        }
        None => (Cap::UNLIMITED, Dedup::Daily),
    }
}

/// The problem type of a prepaid licensee whose credit is spent (X answers pay-per-use accounts
/// without credits with a 402 of this kind).
pub const CREDITS_DEPLETED: &str = "https://api.twitter.com/2/problems/credits-depleted";

/// 402 `credits-depleted`: the prepaid credit pays for no record. Says what is left, what a record
/// costs and how to be served again.
fn credits_depleted(state: &AppState, admission: &Admission, exhausted: CreditExhausted) -> Problem {
    let snapshot = state.terms.snapshot();
    let currency = snapshot.prepaid_currency(admission.licensee_id(), admission.now());
    let money = |micro: i64| match currency {
        Some(currency) => datapact_billing::format_micro(currency, micro),
        None => format!("{micro} micro-units"),
    };
    let detail = format!(
        "Your prepaid credit is spent: {} left, and a record costs {}. Add credit to be served again \
         (it takes effect within a second).",
        money(exhausted.balance_micros),
        money(exhausted.per_record_micros as i64)
    );
    let mut problem = Problem::plain(StatusCode::PAYMENT_REQUIRED, CREDITS_DEPLETED, "CreditsDepleted", detail);
    problem.reason = Some("credits_depleted");
    problem
}

/// X's 429 at a hard cap; `x-rate-limit-reset` is set to the cap's reset by the terms layer.
fn usage_capped(capped: Capped, now: Timestamp) -> Problem {
    let reset = cap_reset(now);
    let mut problem = Problem::plain(
        StatusCode::TOO_MANY_REQUESTS,
        USAGE_CAPPED,
        "UsageCapExceeded",
        format!(
            "Usage cap exceeded: {} of {} monthly records used; the cap resets at {}",
            capped.used,
            capped.limit,
            reset.to_x_string()
        ),
    );
    problem.cap_reset = Some(reset);
    problem
}

fn json(body: Vec<u8>, replayed: bool) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if replayed {
        response.headers_mut().insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// Middleware inside [`crate::terms::enforce`]: a request with an `Idempotency-Key` that was
/// already served (same licensee, same request, within 24 h) gets the committed body again and
/// counts nothing; a key in use by a request still running gets 409; a key reused for another
/// request gets 422. Streams and the usage endpoint ignore the header (nothing to replay).
pub async fn idempotency(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(value) = request.headers().get(IDEMPOTENCY_KEY).cloned() else { return next.run(request).await };
    let (Some(ledger), Some(mut admission)) = (state.ledger.clone(), request.extensions().get::<Admission>().cloned())
    else {
        return next.run(request).await;
    };
    if matches!(admission.endpoint, Endpoint::Stream | Endpoint::Usage) {
        return next.run(request).await;
    }
    let Some(key) = value.to_str().ok().and_then(|text| IdempotencyKey::parse(text).ok()) else {
        return Problem::invalid_request(
            "The Idempotency-Key header must be 1 to 255 visible ASCII characters (optionally quoted)",
        )
        .into_response();
    };
    let uri = request.uri();
    let fingerprint = RequestFingerprint::new(request.method().as_str(), uri.path(), uri.query().unwrap_or(""));
    let claim = match ledger.claim(admission.licensee_id(), key.as_str(), fingerprint).await {
        Ok(claim) => claim,
        Err(error) => return Problem::from(error).into_response(),
    };
    match claim {
        Claim::Fresh(guard) => {
            admission.set_idempotency(IdempotencyClaim {
                key: key.as_str().to_owned(),
                fingerprint,
                _guard: Arc::new(guard),
            });
            request.extensions_mut().insert(admission);
            next.run(request).await
        }
        Claim::Replay(stored) => {
            // A replay costs no record, but it is a request: it counts against the rate limit.
            if let Err(problem) = admission.admit().await {
                return problem.into_response();
            }
            let mut response = json(stored.body, true);
            if let Ok(original) = HeaderValue::from_str(&stored.request_id) {
                response.headers_mut().insert("x-datapact-replay-of", original);
            }
            response
        }
        Claim::InProgress => {
            Problem::conflict("A request with this Idempotency-Key is still being served; retry once it has completed")
                .into_response()
        }
        Claim::Mismatch { first_used_at, reusable_at } => Problem::plain(
            StatusCode::UNPROCESSABLE_ENTITY,
            crate::problem::INVALID_REQUEST,
            "Invalid Request",
            format!(
                "This Idempotency-Key was used at {} for a different request; send a new key (this one may be \
                 reused after {})",
                first_used_at.to_x_string(),
                reusable_at.to_x_string()
            ),
        )
        .into_response(),
    }
}

/// Deletes ledger rows past their retention, once an hour, until shutdown.
pub fn spawn_retention(state: AppState, retention_days: u32) {
    let Some(ledger) = state.ledger.clone() else { return };
    tokio::spawn(async move {
        loop {
            let before = state.clock.now().plus_millis(-(i64::from(retention_days)) * 86_400_000);
            match ledger.prune(before).await {
                Ok(summary) if summary.batches > 0 || summary.responses > 0 => {
                    tracing::info!(?summary, "pruned ledger rows past retention")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "ledger pruning failed; retrying in an hour"),
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
                _ = state.shutdown.cancelled() => return,
            }
        }
    });
}

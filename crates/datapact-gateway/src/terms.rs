//! Terms on every request: the agreement cache, the decision order, rate limits and their
//! headers, author opt-outs and violations.
//!
//! Order (ARCHITECTURE.md): 401 key → 403 blocked / outside term / network / endpoint / purpose
//! ([`enforce`], before the handler) → 402 payment required (an invoice unpaid past its due date and
//! the licensee's grace days; [`enforce`]) → 400 parameters (the handler) → 429 rate limit
//! ([`Admission::admit`], called by the handler once its parameters are valid). Every
//! authenticated response carries the endpoint's rate-limit headers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use datapact_billing::{DEFAULT_GRACE_DAYS, InvoiceAccount, Money, PriceBook, PriceOverride, Suspension};
use datapact_core::purpose::Purpose;
use datapact_core::{Endpoint, KeyPrefix, LicenseeStatus, Timestamp, UserId};
use datapact_store::ledger::PrepaidTerms;
use datapact_store::{Store, StoreResult, TermsState, ViolationEvent};
use datapact_terms::{Agreement, Plan, RateDecision, RateLimit, RateLimiter, Refusal, RequestFacts, decide};

use crate::AppState;
use crate::auth::Caller;
use crate::client_addr::ClientAddr;
use crate::fingerprint::Marking;
use crate::metering::{CapReset, IdempotencyClaim};
use crate::problem::Problem;

/// What the gateway knows of one licensee's rights.
#[derive(Clone, Debug)]
pub struct LicenseeState {
    pub name: String,
    pub status: LicenseeStatus,
    pub reason: String,
    /// `None`: no agreement in force (never applied, pruned, or unreadable).
    pub agreement: Option<Agreement>,
    /// Days an invoice may be overdue before the licensee is suspended (its billing terms).
    pub grace_days: u32,
    /// Its negotiated prices (billing terms), for prepaid charges.
    pub prices: Vec<PriceOverride>,
}

#[derive(Default, Debug)]
pub struct TermsSnapshot {
    pub licensees: HashMap<i64, LicenseeState>,
    opt_outs: HashMap<UserId, Vec<Purpose>>,
    /// Every invoice with its payments, by licensee id: what the 402 step decides from.
    accounts: HashMap<i64, Vec<InvoiceAccount>>,
    /// The price books in force.
    price_books: Vec<PriceBook>,
    /// Why the stored price books do not read, if they do not (prepaid licensees are then refused
    /// rather than served uncharged).
    price_books_unreadable: Option<String>,
    /// Every prepaid credit added, by licensee id (one currency per licensee; the store checks).
    credits: HashMap<i64, Money>,
}

impl TermsSnapshot {
    /// Builds the snapshot from the store's terms and opt-outs. A stored record that no longer
    /// reads leaves its licensee without an agreement (refused), never with a looser one.
    pub fn build(state: &TermsState, opt_outs: &[(UserId, String)]) -> TermsSnapshot {
        let plans: HashMap<&str, Plan> = state
            .plans
            .iter()
            .filter_map(|(name, body)| match serde_json::from_value::<Plan>(body.clone()) {
                Ok(plan) => Some((name.as_str(), plan)),
                Err(error) => {
                    tracing::error!(plan = %name, %error, "stored plan is unreadable; its licensees are refused");
                    None
                }
            })
            .collect();
        let licensees = state
            .licensees
            .iter()
            .map(|stored| {
                let terms = stored
                    .terms
                    .as_ref()
                    .and_then(|body| serde_json::from_value::<datapact_terms::LicenseeTerms>(body.clone()).ok());
                let agreement = terms.as_ref().and_then(|terms| {
                    let plan = plans.get(terms.plan.as_str())?;
                    Agreement::resolve(plan, terms)
                        .inspect_err(
                            |error| tracing::error!(licensee = %stored.name, %error, "agreement does not resolve"),
                        )
                        .ok()
                });
                let state = LicenseeState {
                    name: stored.name.clone(),
                    status: stored.status,
                    reason: stored.reason.clone(),
                    agreement,
                    grace_days: terms.as_ref().map_or(DEFAULT_GRACE_DAYS, |t| t.billing.grace_days),
                    prices: terms.map(|t| t.billing.prices).unwrap_or_default(),
                };
                (stored.id, state)
            })
            .collect();
        let mut by_author: HashMap<UserId, Vec<Purpose>> = HashMap::new();
        for (author, purpose) in opt_outs {
            if let Some(purpose) = Purpose::parse(purpose) {
                by_author.entry(*author).or_default().push(purpose);
            }
        }
        let (price_books, price_books_unreadable) = match crate::billing::price_books(state) {
            Ok(books) => (books, None),
            Err(problem) => (Vec::new(), Some(problem.detail)),
        };
        TermsSnapshot {
            licensees,
            opt_outs: by_author,
            accounts: HashMap::new(),
            price_books,
            price_books_unreadable,
            credits: HashMap::new(),
        }
    }

    /// Adds the prepaid credits the ledger charges against.
    pub fn with_credits(mut self, credits: Vec<datapact_store::StoredCredit>) -> TermsSnapshot {
        self.credits.clear();
        for credit in credits {
            let total = self.credits.entry(credit.licensee_id).or_insert(Money::zero(credit.amount.currency));
            // One currency per licensee (the store refuses another); a sum past i64 is not money.
            *total = total.checked_add(credit.amount).unwrap_or(*total);
        }
        self
    }

    /// A prepaid licensee's terms at `now`, for the ledger's reservation: the per-record price in
    /// force that day, the records its fee includes, and its credits. `None` when the licensee is
    /// not prepaid or nothing prices its records that day (they are then not charged: the invoice
    /// shows them as such). An error when the stored price books do not read: refuse, never serve
    /// a prepaid licensee uncharged.
    pub fn prepaid(&self, licensee_id: i64, now: Timestamp) -> Result<Option<PrepaidTerms>, Problem> {
        let Some(licensee) = self.licensees.get(&licensee_id) else { return Ok(None) };
        let Some(agreement) = licensee.agreement.as_ref().filter(|agreement| agreement.prepaid) else {
            return Ok(None);
        };
        if let Some(error) = &self.price_books_unreadable {
            return Err(Problem::unavailable(error.clone()));
        }
        let day = now.to_datetime().date_naive();
        let price = datapact_billing::price_on(&self.price_books, &licensee.prices, &agreement.plan, day)
            .map_err(|error| Problem::unavailable(format!("the prepaid price does not resolve: {error}")))?;
        let Some((price, rate)) = price.and_then(|price| Some((price, price.per_record?))) else { return Ok(None) };
        let credited = self.credits.get(&licensee_id).filter(|credit| credit.currency == price.currency());
        Ok(Some(PrepaidTerms {
            per_record_micros: rate.micro() as u64,
            included_records: price.included_records,
            credited_micros: credited.and_then(Money::micro).unwrap_or(0),
        }))
    }

    /// The currency of a prepaid licensee's price at `now`, if it is prepaid and priced.
    pub fn prepaid_currency(&self, licensee_id: i64, now: Timestamp) -> Option<datapact_billing::Currency> {
        let licensee = self.licensees.get(&licensee_id)?;
        let agreement = licensee.agreement.as_ref()?;
        let day = now.to_datetime().date_naive();
        Some(datapact_billing::price_on(&self.price_books, &licensee.prices, &agreement.plan, day).ok()??.currency())
    }

    /// Adds the invoices and payments the 402 step decides from.
    pub fn with_accounts(mut self, accounts: Vec<datapact_store::LicenseeAccount>) -> TermsSnapshot {
        self.accounts.clear();
        for account in accounts {
            self.accounts.entry(account.licensee_id).or_default().push(account.account);
        }
        self
    }

    /// Whether the licensee is suspended for non-payment at `now` (an invoice unpaid past its due
    /// date and grace days), and which invoices it owes. Evaluated per request from the instant it
    /// arrives, so a suspension begins on time without anything being written.
    pub fn suspension(&self, licensee_id: i64, now: Timestamp) -> Option<Suspension> {
        let accounts = self.accounts.get(&licensee_id)?;
        let grace = self.licensees.get(&licensee_id).map_or(DEFAULT_GRACE_DAYS, |l| l.grace_days);
        datapact_billing::suspension(accounts, grace, now)
    }

    /// Whether `author`'s posts are withheld from a key with `purpose` (they opted out of a use it covers).
    pub fn withheld(&self, author: UserId, purpose: Purpose) -> bool {
        self.opt_outs.get(&author).is_some_and(|opted| opted.iter().any(|opt_out| opt_out.overlaps(purpose)))
    }

    pub fn has_opt_outs(&self) -> bool {
        !self.opt_outs.is_empty()
    }
}

/// The agreements in force and the state that must survive their reloads (rate counters).
pub struct TermsCache {
    snapshot: ArcSwap<TermsSnapshot>,
    /// Outside the snapshot: reloading terms never resets a counter.
    limiter: RateLimiter<i64>,
    /// Rate limits shared with other gateway nodes through Redis (`None`: `limiter` decides).
    shared: Option<SharedRates>,
    violations: Mutex<Vec<ViolationEvent>>,
}

/// Rate limits counted in Redis, for every node at once.
pub struct SharedRates {
    pub limiter: datapact_limiter::RedisLimiter,
    /// Serve on (uncounted) when Redis cannot answer, rather than 503: rate limits only. Caps and
    /// credits are decided by the ledger's reservations, which always fail closed.
    pub fail_open: bool,
}

impl TermsCache {
    pub async fn load(store: &dyn Store) -> StoreResult<Self> {
        let cache = TermsCache {
            snapshot: ArcSwap::from_pointee(TermsSnapshot::default()),
            limiter: RateLimiter::new(),
            shared: None,
            violations: Mutex::new(Vec::new()),
        };
        cache.reload(store).await?;
        Ok(cache)
    }

    pub async fn reload(&self, store: &dyn Store) -> StoreResult<()> {
        let state = store.terms_state().await?;
        let opt_outs = store.opt_outs().await?;
        // Invoices and payments bump the store's change counter, so a payment recorded anywhere is
        // seen here within a poll (200 ms) and lifts a suspension within a second.
        let accounts = store.invoice_accounts(None).await?;
        let credits = store.credits(None).await?;
        let snapshot = TermsSnapshot::build(&state, &opt_outs).with_accounts(accounts).with_credits(credits);
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
    }

    pub fn snapshot(&self) -> Arc<TermsSnapshot> {
        self.snapshot.load_full()
    }

    /// Counts rate limits in Redis, shared by every gateway node, instead of in this process.
    pub fn with_shared_rates(mut self, shared: SharedRates) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Counts a request against its window: in Redis when shared, else in this process. `None`
    /// when Redis cannot answer and the gateway fails open (the request is let through uncounted).
    async fn check(
        &self,
        licensee_id: i64,
        endpoint: Endpoint,
        rate: RateLimit,
        now: Timestamp,
    ) -> Result<Option<RateDecision>, Problem> {
        let Some(shared) = &self.shared else { return Ok(Some(self.limiter.check(&licensee_id, endpoint, rate, now))) };
        match shared.limiter.check_rate(licensee_id, endpoint, rate, now).await {
            Ok(decision) => Ok(Some(decision)),
            Err(error) if shared.fail_open => {
                tracing::warn!(%error, "the shared rate limiter cannot answer; serving uncounted (limiter_fail_open)");
                metrics::counter!("datapact_rate_limiter_fail_open_total").increment(1);
                Ok(None)
            }
            Err(error) => {
                tracing::warn!(%error, "the shared rate limiter cannot answer; refusing (fail closed)");
                Err(Problem::unavailable("the rate limiter cannot answer right now; nothing was served, retry"))
            }
        }
    }

    /// The window's state without counting, for the headers of a refused request (none when the
    /// shared limiter cannot answer).
    async fn peek(
        &self,
        licensee_id: i64,
        endpoint: Endpoint,
        rate: RateLimit,
        now: Timestamp,
    ) -> Option<RateDecision> {
        match &self.shared {
            None => Some(self.limiter.peek(&licensee_id, endpoint, rate, now)),
            Some(shared) => shared.limiter.peek_rate(licensee_id, endpoint, rate, now).await.ok(),
        }
    }

    fn record(&self, licensee_id: i64, refusal: &Refusal, at: Timestamp, request_id: &str, client: IpAddr) {
        self.record_kind(licensee_id, refusal.kind.as_str(), at, request_id, client);
    }

    fn record_kind(&self, licensee_id: i64, kind: &str, at: Timestamp, request_id: &str, client: IpAddr) {
        if let Ok(mut pending) = self.violations.lock() {
            pending.push(ViolationEvent {
                licensee_id,
                kind: kind.to_owned(),
                at,
                request_id: request_id.to_owned(),
                client: client.to_string(),
            });
        }
    }

    /// Violations seen since the last call, for the store.
    pub fn take_violations(&self) -> Vec<ViolationEvent> {
        self.violations.lock().map(|mut pending| std::mem::take(&mut *pending)).unwrap_or_default()
    }
}

/// The violation kind a 402 records.
pub const PAYMENT_REQUIRED_KIND: &str = "payment_required";

/// The endpoint family of a route template.
pub fn endpoint_of(route: &str) -> Option<Endpoint> {
    Some(match route {
        "/2/tweets/search/recent" => Endpoint::Search,
        "/2/tweets/sample/stream" => Endpoint::Stream,
        "/2/tweets" | "/2/tweets/{id}" => Endpoint::Lookup,
        "/2/users/{id}/tweets" => Endpoint::Timeline,
        "/2/users" | "/2/users/{id}" | "/2/users/by" | "/2/users/by/username/{username}" => Endpoint::Users,
        "/2/usage/tweets" => Endpoint::Usage,
        _ => return None,
    })
}

/// Set by [`enforce`] for the handler: the right to be served, once the rate limit agrees.
#[derive(Clone)]
pub struct Admission {
    terms: Arc<TermsCache>,
    licensee_id: i64,
    /// For metrics of what was served.
    licensee: String,
    pub endpoint: Endpoint,
    pub purpose: Purpose,
    /// `None` only when enforcement is off (benchmarks): admitted without counting.
    rate: Option<RateLimit>,
    now: Timestamp,
    request_id: String,
    client: IpAddr,
    key_prefix: KeyPrefix,
    /// The fresh `Idempotency-Key` this request holds, if it sent one.
    idempotency: Option<IdempotencyClaim>,
    /// Whose copy of the posts' text this request receives.
    marking: Marking,
    /// Canaries per million result slots (the agreement's `canary_rate`).
    canary_ppm: u32,
    /// The counted decision, for the response headers.
    decision: Arc<Mutex<Option<RateDecision>>>,
}

impl Admission {
    /// Counts the request against its rate limit: the last step of the decision order.
    pub async fn admit(&self) -> Result<(), Problem> {
        let Some(rate) = self.rate else { return Ok(()) };
        let Some(decision) = self.terms.check(self.licensee_id, self.endpoint, rate, self.now).await? else {
            return Ok(());
        };
        if let Ok(mut slot) = self.decision.lock() {
            *slot = Some(decision);
        }
        if decision.allowed {
            return Ok(());
        }
        let refusal = Refusal::rate_limited(self.endpoint, &decision);
        self.terms.record(self.licensee_id, &refusal, self.now, &self.request_id, self.client);
        Err(Problem::from_refusal(&refusal))
    }

    pub fn licensee_id(&self) -> i64 {
        self.licensee_id
    }

    /// Whose copy of the posts' text this request receives: the licensee's own, unless its
    /// agreement sets `fingerprint = false` or the gateway has no fingerprint secret.
    pub fn marking(&self) -> Marking {
        self.marking
    }

    /// Canaries per million result slots for this request (0 without a fingerprint secret).
    pub fn canary_ppm(&self) -> u32 {
        self.canary_ppm
    }

    /// When the request arrived (what it is metered at).
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Burst `n` (from 1) of a stream admitted as this request, sent at `now`. It is metered when
    /// it is sent (its month's cap, its day's dedup, the prices then in force), not when the stream
    /// opened, and as a request of its own, `<request id>.<n>`: the ledger names each reservation
    /// by its request, so a shared limiter settles or releases each burst by itself (one burst's
    /// failed commit must not pass for committed because an earlier burst's did).
    pub fn burst(&self, n: u64, now: Timestamp) -> Admission {
        Admission { now, request_id: format!("{}.{n}", self.request_id), ..self.clone() }
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    pub fn key_prefix(&self) -> &KeyPrefix {
        &self.key_prefix
    }

    pub fn idempotency(&self) -> Option<&IdempotencyClaim> {
        self.idempotency.as_ref()
    }

    pub fn set_idempotency(&mut self, claim: IdempotencyClaim) {
        self.idempotency = Some(claim);
    }

    /// Records that `count` posts were delivered on this request's endpoint.
    pub fn served(&self, count: usize) {
        crate::metrics::records_served(&self.licensee, self.endpoint, count);
    }

    /// Whether posts by `author` are withheld from this request (author opt-out).
    pub fn withholds(&self, snapshot: &TermsSnapshot, author: UserId) -> bool {
        snapshot.withheld(author, self.purpose)
    }
}

/// Middleware after [`crate::auth::require_licensee`]: the 403 steps, then the handler, then the
/// rate-limit headers on whatever the handler answered.
pub async fn enforce(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return Problem::unauthorized("no licensee key").into_response();
    };
    let Some(endpoint) = request.extensions().get::<MatchedPath>().and_then(|path| endpoint_of(path.as_str())) else {
        return next.run(request).await;
    };
    let client = request.extensions().get::<ClientAddr>().map(|c| c.0).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let now = state.clock.now();
    // Copies are marked unless the agreement turns fingerprints off (or there is no secret).
    let marks = state.feed.post_cache().fingerprint_secret().is_some();
    let marking = |fingerprint: bool| match marks && fingerprint {
        true => Marking::Licensee(caller.licensee_id as u64),
        false => Marking::Public,
    };
    let admission = |purpose, rate, marking, canary_ppm| Admission {
        terms: state.terms.clone(),
        licensee_id: caller.licensee_id,
        licensee: caller.licensee.clone(),
        endpoint,
        purpose,
        rate,
        now,
        request_id: request_id.clone(),
        client,
        key_prefix: caller.key_prefix.clone(),
        idempotency: None,
        marking,
        canary_ppm: if marks { canary_ppm } else { 0 },
        decision: Arc::new(Mutex::new(None)),
    };
    if !state.enforce_terms {
        let unenforced = admission(Purpose::parse(&caller.purpose).unwrap_or(Purpose::All), None, marking(true), 0);
        request.extensions_mut().insert(unenforced);
        return next.run(request).await;
    }
    let snapshot = state.terms.snapshot();
    let licensee = snapshot.licensees.get(&caller.licensee_id);
    // A key whose purpose no longer parses is refused like one the agreement does not allow.
    let purpose = Purpose::parse(&caller.purpose);
    let verdict = match (licensee.and_then(|l| l.agreement.as_ref()), purpose) {
        (None, _) => Err(Refusal::no_agreement(&caller.licensee)),
        (Some(agreement), purpose) => {
            let facts = RequestFacts {
                status: licensee.map_or(LicenseeStatus::Blocked, |l| l.status),
                reason: licensee.map_or("", |l| l.reason.as_str()),
                purpose: purpose.unwrap_or(Purpose::All),
                endpoint,
                client_ip: client,
                now,
            };
            let verdict = decide(agreement, &facts);
            match (verdict, purpose, agreement.rate_limit(endpoint)) {
                (Err(refusal), _, _) => Err(refusal),
                (Ok(()), Some(purpose), Some(rate)) => Ok((purpose, rate)),
                (Ok(()), _, _) => Err(Refusal::no_agreement(&caller.licensee)),
            }
        }
    };
    let peek_rate = licensee.and_then(|l| l.agreement.as_ref()).and_then(|a| a.rate_limit(endpoint));
    let agreement = licensee.and_then(|l| l.agreement.as_ref());
    let (fingerprint, canary_ppm) = agreement.map_or((true, 0), |a| (a.fingerprint, a.canary_ppm));
    let (purpose, rate) = match verdict {
        Ok(admitted) => admitted,
        Err(refusal) => {
            state.terms.record(caller.licensee_id, &refusal, now, &request_id, client);
            let mut response = Problem::from_refusal(&refusal).into_response();
            if let Some(rate) = peek_rate
                && let Some(decision) = state.terms.peek(caller.licensee_id, endpoint, rate, now).await
            {
                add_rate_headers(&mut response, &decision, endpoint);
            }
            return response;
        }
    };
    // Step 3, after the 403s and before parameters and the rate limit: like a block, a suspension
    // for non-payment refuses every request without counting it against the window.
    if let Some(suspension) = snapshot.suspension(caller.licensee_id, now) {
        state.terms.record_kind(caller.licensee_id, PAYMENT_REQUIRED_KIND, now, &request_id, client);
        let mut response = crate::billing::payment_required(&caller.licensee, &suspension).into_response();
        if let Some(decision) = state.terms.peek(caller.licensee_id, endpoint, rate, now).await {
            add_rate_headers(&mut response, &decision, endpoint);
        }
        return response;
    }
    let admission = admission(purpose, Some(rate), marking(fingerprint), canary_ppm);
    let slot = admission.decision.clone();
    request.extensions_mut().insert(admission);
    let mut response = next.run(request).await;
    // Refusals decided past this layer (a hard cap, a spent prepaid credit) are violations too.
    if let Some(crate::problem::Violation(kind)) = response.extensions().get().copied() {
        state.terms.record_kind(caller.licensee_id, kind, now, &request_id, client);
    }
    let counted = slot.lock().ok().and_then(|mut slot| slot.take());
    let decision = match counted {
        Some(decision) => Some(decision),
        None => state.terms.peek(caller.licensee_id, endpoint, rate, now).await,
    };
    if let Some(decision) = decision {
        add_rate_headers(&mut response, &decision, endpoint);
    }
    if let Some(CapReset(reset)) = response.extensions().get::<CapReset>().copied() {
        // At a hard usage cap the wait is until the cap resets, whatever the rate window says.
        let seconds = ((reset.millis() - now.millis()).max(0) as u64).div_ceil(1000);
        let headers = response.headers_mut();
        for (name, value) in [
            ("x-rate-limit-reset", (reset.millis() / 1000).to_string()),
            ("x-rate-limit-remaining", "0".to_owned()),
            ("retry-after", seconds.to_string()),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
    } else if response.status() == StatusCode::TOO_MANY_REQUESTS
        && let Some(decision) = decision
        && let Ok(value) = HeaderValue::from_str(&decision.reset_after_s.to_string())
    {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
    }
    response
}

fn add_rate_headers(response: &mut Response, decision: &RateDecision, endpoint: Endpoint) {
    for (name, value) in decision.headers(endpoint) {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(&value)) {
            response.headers_mut().insert(name, value);
        }
    }
}

/// The terms as stored, read back into the terms model (licensees without an agreement left out).
pub async fn current_terms(store: &dyn Store) -> Result<datapact_terms::Terms, Problem> {
    let state = store.terms_state().await?;
    let licensees = state
        .licensees
        .iter()
        .filter_map(|l| l.terms.clone().map(|terms| (l.status, l.reason.clone(), terms)))
        .collect::<Vec<_>>();
    datapact_terms::Terms::from_stored(&state.plans, licensees)
        .map_err(|error| Problem::unavailable(format!("the stored terms do not read back: {error}")))
}

/// Every agreement in force, by licensee, for `terms show`.
pub async fn agreements(store: &dyn Store) -> Result<Vec<Agreement>, Problem> {
    let terms = current_terms(store).await?;
    Ok(terms
        .licensees
        .iter()
        .filter_map(|licensee| Agreement::resolve(terms.plan(&licensee.terms.plan)?, &licensee.terms).ok())
        .collect())
}

/// What an apply does to the stored price books.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PriceBooksChange {
    /// Versions in the file (0: the file has no `[[price_book]]`, and the stored ones stay).
    pub versions: usize,
    /// Whether the stored versions are replaced by the file's.
    pub changed: bool,
    /// Versions changed sooner than the notice period, let through because the apply was forced.
    pub forced: usize,
}

/// `datapact apply` and `POST /admin/terms`: parses `text`, compares it with the store, and
/// unless `dry_run`, writes the changes (each audited) in one transaction. The file's price book
/// versions, when it has any, replace the stored ones whole (a version is whole, and the file
/// lists every version); a file without `[[price_book]]` leaves them alone.
pub async fn apply_terms_file(
    store: &dyn Store,
    text: &str,
    prune: bool,
    dry_run: bool,
    force: bool,
    change: &datapact_store::Change,
) -> Result<(datapact_terms::TermsDiff, PriceBooksChange), Problem> {
    use datapact_store::TermsChange;
    use datapact_terms::Change as Diff;
    let file = datapact_terms::parse_terms(text)
        .map_err(|error| Problem::invalid_request(format!("the terms file is invalid: {error}")))?;
    let current = current_terms(store).await?;
    let diff = datapact_terms::diff_terms(&current, &file, prune)
        .map_err(|error| Problem::invalid_request(format!("the terms cannot be applied: {error}")))?;
    let stored_books = crate::billing::price_books(&store.terms_state().await?)?;
    let changed = !file.price_books.is_empty() && file.price_books != stored_books;
    // Licensees get the notice period before a price changes. The first price books set prices
    // where there were none: nothing changes for anyone, so they need no notice.
    let forced = match changed && !stored_books.is_empty() {
        true => datapact_billing::check_notice(
            &stored_books,
            &file.price_books,
            change.at,
            datapact_billing::DEFAULT_NOTICE_DAYS,
            force,
        )
        .map_err(|error| {
            Problem::invalid_request(format!(
                "{error} (`datapact apply --force`, or `force=true` on POST /admin/terms), only if the \
                 licensees agreed to it"
            ))
        })?
        .len(),
        false => 0,
    };
    let books = PriceBooksChange { versions: file.price_books.len(), changed, forced };
    if dry_run || (diff.is_empty() && !books.changed) {
        return Ok((diff, books));
    }
    let status_changed: Vec<String> = diff.status_changes().into_iter().map(|s| s.licensee).collect();
    let mut puts = Vec::new();
    let mut licensee_puts = Vec::new();
    let mut clears = Vec::new();
    let mut deletes = Vec::new();
    for item in &diff.plans {
        match item {
            Diff::Create { after } | Diff::Update { after, .. } => {
                puts.push(TermsChange::PutPlan { name: after.name.clone(), body: to_json(after) })
            }
            Diff::Remove { before } => deletes.push(TermsChange::DeletePlan { name: before.name.clone() }),
        }
    }
    for item in &diff.licensees {
        match item {
            Diff::Create { after } | Diff::Update { after, .. } => {
                let name = after.terms.name.clone();
                let status = status_changed.contains(&name).then(|| (after.status, after.reason.clone()));
                licensee_puts.push(TermsChange::PutLicensee { name, terms: to_json(&after.terms), status });
            }
            Diff::Remove { before } => clears.push(TermsChange::ClearLicensee { name: before.terms.name.clone() }),
        }
    }
    // Plans first (licensees refer to them), plan deletions last (nothing refers to them then).
    let mut changes: Vec<TermsChange> = puts.into_iter().chain(licensee_puts).chain(clears).chain(deletes).collect();
    if books.changed {
        changes.push(TermsChange::PutPriceBooks { body: to_json(&file.price_books) });
    }
    store.apply_terms(changes, change).await?;
    Ok((diff, books))
}

fn to_json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// The purpose a new key gets: the one asked for, if the agreement allows it; without one, the
/// agreement's only purpose. Refused when the licensee has no agreement in force.
pub async fn key_purpose(store: &dyn Store, licensee: &str, requested: Option<&str>) -> Result<Purpose, Problem> {
    let agreements = agreements(store).await?;
    let Some(agreement) = agreements.iter().find(|a| a.licensee == licensee) else {
        if store.licensee(licensee).await?.is_none() {
            return Err(Problem::not_found(format!("no licensee named {licensee:?}")));
        }
        return Err(Problem::conflict(format!(
            "licensee {licensee:?} has no agreement in force: apply a terms file that names it first"
        )));
    };
    let granted: Vec<&str> = agreement.purposes.iter().map(|p| p.as_str()).collect();
    let purpose = match requested {
        Some(name) => Purpose::parse(name)
            .ok_or_else(|| Problem::invalid_request(format!("purpose {name:?} is not one of {}", Purpose::names())))?,
        None if agreement.purposes.len() == 1 => *agreement.purposes.iter().next().unwrap_or(&Purpose::Search),
        None => {
            return Err(Problem::invalid_request(format!(
                "choose the key's purpose: the agreement of {licensee} grants {}",
                granted.join(", ")
            )));
        }
    };
    if !datapact_terms::purpose_allowed(agreement, purpose) {
        return Err(Problem::plain(
            StatusCode::FORBIDDEN,
            datapact_terms::CLIENT_FORBIDDEN,
            "Client Forbidden",
            format!("the agreement of {licensee} does not allow purpose {purpose}; it grants {}", granted.join(", ")),
        ));
    }
    Ok(purpose)
}

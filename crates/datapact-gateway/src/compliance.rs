//! Deletion compliance for licensees (issue 10), in X's shapes:
//!
//! * batch compliance jobs: `POST /2/compliance/jobs` `{type, name, resumable}` answers the job
//!   with an `upload_url` (15 minutes) and a `download_url` (7 days); the licensee `PUT`s a list
//!   of post ids (one per line) to the first, and reads from the second, as JSON lines, those of
//!   its ids that it received and that were deleted (`action: delete`) or corrected since
//!   (`action: edit`). `GET /2/compliance/jobs/:id` and `GET /2/compliance/jobs?type=` report
//!   status (created, in_progress, complete, failed, expired). One job per type at a time.
//! * the event feed: `GET /2/compliance/events?since=` streams, as JSON lines, the deletions of
//!   posts this licensee actually received (from the delivery ledger) and the corrections of
//!   those it holds an older revision of, each line with its `cursor`; `since=<cursor>` resumes
//!   after it, without duplicates or gaps.
//!
//! The upload and download URLs are the gateway's own, signed (HMAC-SHA256 over the action, the
//! licensee, the job and the expiry, with a key derived from the fingerprint secret) and
//! expiring: they are the only licensee routes served without a bearer key. Compliance routes
//! are never refused by the agreement (a blocked or suspended licensee must still delete what
//! it holds), so they are not an endpoint family: the key alone admits them.
//!
//! A licensee is *notified* of a deletion when a feed response or a job result carrying it is
//! produced: the first such instant per (licensee, post) is recorded in the store
//! (`deletion_notices`) before the body is sent.

use std::collections::{HashMap, HashSet};

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use datapact_core::{PostId, Timestamp};
use datapact_store::compliance::{ComplianceJob, JOB_TYPES, JobStatus, MAX_JOB_NAME, NewComplianceJob};
use datapact_store::ledger::Received;
use datapact_store::{MAX_LOOKUP_IDS, PostEventKind};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::AppState;
use crate::auth::Caller;
use crate::extract::BodyBytes;
use crate::params::QueryParams;
use crate::problem::{ABOUT_BLANK, Problem};

type ApiResult = Result<Response, Problem>;

/// The most ids one upload may list (X allows millions; the result is kept in the store).
pub const MAX_UPLOAD_IDS: usize = 1_000_000;
/// The largest upload body: a million ids of 19 digits with CR LF.
pub const UPLOAD_BODY_LIMIT: usize = 22 * 1024 * 1024;
/// Events scanned per feed request at most; the `x-compliance-cursor` header says how far it got.
const FEED_SCAN_LIMIT: usize = 100_000;
/// Events read from the store per page while scanning the feed.
const FEED_PAGE: usize = 1_000;
const NDJSON: &str = "application/x-ndjson";
/// The header carrying the cursor a feed response scanned up to (resume from it).
pub const CURSOR_HEADER: &str = "x-compliance-cursor";

/// The scheme licensees reach this gateway with (`http` or `https`), set by the server, for the
/// absolute URLs it hands out.
#[derive(Clone, Copy, Debug)]
pub struct PublicScheme(pub &'static str);

/// Signs and checks upload and download URLs.
#[derive(Clone)]
pub struct UrlSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner(..)")
    }
}

impl UrlSigner {
    /// A signer whose key is derived from `secret` (the fingerprint secret's current key), so
    /// every gateway sharing the ring signs alike and nothing new is stored.
    pub fn derived_from(secret: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"datapact compliance URL key v1");
        UrlSigner { key: mac.finalize().into_bytes().into() }
    }

    fn mac(&self, action: &str, licensee_id: i64, job: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("{action}\n{licensee_id}\n{job}\n{expires}").as_bytes());
        mac
    }

    /// The signature of one URL, base64url.
    pub fn sign(&self, action: &str, licensee_id: i64, job: &str, expires: i64) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(action, licensee_id, job, expires).finalize().into_bytes())
    }

    /// Whether `signature` is this URL's (in constant time).
    pub fn verify(&self, action: &str, licensee_id: i64, job: &str, expires: i64, signature: &str) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(signature) else { return false };
        self.mac(action, licensee_id, job, expires).verify_slice(&bytes).is_ok()
    }
}

/// `scheme://host` of this request, for absolute URLs.
fn base_url(headers: &HeaderMap, scheme: Option<&PublicScheme>) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("{}://{host}", scheme.map_or("http", |s| s.0))
}

fn signed_url(state: &AppState, base: &str, action: &str, job: &ComplianceJob, expires: Timestamp) -> String {
    let signature = state.url_signer.sign(action, job.licensee_id, &job.id, expires.0);
    format!(
        "{base}/2/compliance/{action}/{}?licensee={}&expires={}&signature={signature}",
        job.id, job.licensee_id, expires.0
    )
}

/// A job in X's shape.
fn job_json(state: &AppState, base: &str, job: &ComplianceJob, now: Timestamp) -> Value {
    let mut body = json!({
        "id": job.id,
        "type": job.job_type,
        "resumable": job.resumable,
        "upload_url": signed_url(state, base, "upload", job, job.upload_expires_at),
        "upload_expires_at": job.upload_expires_at.to_string(),
        "download_url": signed_url(state, base, "download", job, job.download_expires_at),
        "download_expires_at": job.download_expires_at.to_string(),
        "status": job.status_at(now).as_str(),
        "created_at": job.created_at.to_string(),
    });
    if let Some(name) = &job.name {
        body["name"] = json!(name);
    }
    if let (JobStatus::Failed, Some(error)) = (job.status_at(now), &job.error) {
        body["error"] = json!(error);
    }
    body
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// `POST /2/compliance/jobs`: creates a job (one per type at a time).
#[utoipa::path(
    post, path = "/2/compliance/jobs", tag = "compliance",
    request_body(content = String, description = "JSON: `type` (`tweets`), optional `name` (at most 256 characters) and `resumable` (boolean)", content_type = "application/json"),
    responses(
        (status = 200, description = "`data`: the job: id, type, name, resumable, upload_url, upload_expires_at, download_url, download_expires_at, status, created_at", content_type = "application/json"),
        (status = 409, description = "Another job of this type is still created or in progress", content_type = "application/problem+json"),
        crate::openapi::LicenseeProblems,
    )
)]
pub async fn create_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    scheme: Option<Extension<PublicScheme>>,
    headers: HeaderMap,
    BodyBytes(body): BodyBytes,
) -> ApiResult {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| Problem::invalid_request(format!("the body must be a JSON object ({e})")))?;
    let Some(fields) = request.as_object() else {
        return Err(Problem::invalid_request("the body must be a JSON object such as {\"type\": \"tweets\"}"));
    };
    let job_type = match fields.get("type") {
        Some(Value::String(t)) if JOB_TYPES.contains(&t.as_str()) => t.clone(),
        Some(Value::String(t)) => {
            return Err(Problem::invalid_parameter(
                "type",
                t,
                format!("The `type` value [{t}] is not one of [{}]", JOB_TYPES.join(",")),
            ));
        }
        Some(other) => {
            return Err(Problem::invalid_parameter("type", &other.to_string(), "The `type` field must be a string"));
        }
        None => return Err(Problem::invalid_parameter("type", "", "The `type` field is required (use \"tweets\")")),
    };
    let name = match fields.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) if n.chars().count() <= MAX_JOB_NAME => Some(n.clone()),
        Some(Value::String(n)) => {
            return Err(Problem::invalid_parameter(
                "name",
                n,
                format!("The `name` field is at most {MAX_JOB_NAME} characters"),
            ));
        }
        Some(other) => {
            return Err(Problem::invalid_parameter("name", &other.to_string(), "The `name` field must be a string"));
        }
    };
    let resumable = match fields.get("resumable") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(Problem::invalid_parameter(
                "resumable",
                &other.to_string(),
                "The `resumable` field must be true or false",
            ));
        }
    };
    let now = state.clock.now();
    // X's job ids are decimal numbers as strings; 62 random bits keep them unique.
    let id = (rand::random::<u64>() >> 2).max(1).to_string();
    let new = NewComplianceJob { id, licensee_id: caller.licensee_id, job_type, name, resumable, created_at: now };
    let job = state.store.create_compliance_job(new).await?;
    let base = base_url(&headers, scheme.as_deref());
    Ok(json_response(StatusCode::OK, &json!({ "data": job_json(&state, &base, &job, now) })))
}

fn job_id(value: &str) -> Result<String, Problem> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::invalid_parameter(
            "id",
            value,
            format!("The `id` query parameter value [{value}] is not a valid compliance job id"),
        ));
    }
    Ok(value.to_owned())
}

fn no_such_job(id: &str) -> Problem {
    Problem::not_found(format!("Could not find compliance job with id: [{id}]."))
}

/// `GET /2/compliance/jobs/:id`: one of the caller's jobs.
#[utoipa::path(
    get, path = "/2/compliance/jobs/{id}", tag = "compliance",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "`data`: the job", content_type = "application/json"),
        (status = 404, description = "No such job for this licensee (another licensee's job is not found either)", content_type = "application/problem+json"),
        crate::openapi::LicenseeProblems,
    )
)]
pub async fn get_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    scheme: Option<Extension<PublicScheme>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let id = job_id(&id)?;
    let job = state.store.compliance_job(caller.licensee_id, &id).await?.ok_or_else(|| no_such_job(&id))?;
    let base = base_url(&headers, scheme.as_deref());
    Ok(json_response(StatusCode::OK, &json!({ "data": job_json(&state, &base, &job, state.clock.now()) })))
}

/// `GET /2/compliance/jobs?type=tweets[&status=]`: the caller's jobs, newest first.
#[utoipa::path(
    get, path = "/2/compliance/jobs", tag = "compliance",
    params(
        ("type" = String, Query, description = "`tweets` (required)"),
        ("status" = Option<String>, Query, description = "Only jobs with this status: created, in_progress, complete, failed or expired"),
    ),
    responses(
        (status = 200, description = "`data`: the jobs (an empty array when there are none); `meta.result_count`", content_type = "application/json"),
        crate::openapi::LicenseeProblems,
    )
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    scheme: Option<Extension<PublicScheme>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let params = QueryParams::parse(query.as_deref())?;
    let job_type = match params.get("type") {
        Some(t) if JOB_TYPES.contains(&t) => t.to_owned(),
        Some(t) => {
            return Err(Problem::invalid_parameter(
                "type",
                t,
                format!("The `type` query parameter value [{t}] is not one of [{}]", JOB_TYPES.join(",")),
            ));
        }
        None => return Err(Problem::invalid_parameter("type", "", "The `type` query parameter can not be empty")),
    };
    let status = match params.get("status") {
        None => None,
        Some(s) => Some(JobStatus::parse(s).ok_or_else(|| {
            Problem::invalid_parameter(
                "status",
                s,
                format!(
                    "The `status` query parameter value [{s}] is not one of [created,in_progress,complete,failed,expired]"
                ),
            )
        })?),
    };
    let now = state.clock.now();
    let base = base_url(&headers, scheme.as_deref());
    let jobs: Vec<Value> = state
        .store
        .compliance_jobs(caller.licensee_id, Some(&job_type))
        .await?
        .iter()
        .filter(|job| status.is_none_or(|s| job.status_at(now) == s))
        .map(|job| job_json(&state, &base, job, now))
        .collect();
    // `data` even when empty: twarc takes a body with `meta` but no `data` for an unknown response.
    let body = json!({ "data": jobs, "meta": { "result_count": jobs.len() } });
    Ok(json_response(StatusCode::OK, &body))
}

/// The signed URL's query, checked: the licensee it is for. Bad or missing parameters are 400;
/// a signature that is not this URL's, or an expired one, 403.
fn check_signed(state: &AppState, action: &str, id: &str, query: Option<&str>) -> Result<i64, Problem> {
    let params = QueryParams::parse(query)?;
    let number = |name: &str| -> Result<i64, Problem> {
        let value = params.get(name).ok_or_else(|| {
            Problem::invalid_parameter(name, "", format!("The `{name}` query parameter of a signed URL is missing"))
        })?;
        value.parse::<i64>().map_err(|_| {
            Problem::invalid_parameter(name, value, format!("The `{name}` query parameter [{value}] is not a number"))
        })
    };
    let licensee_id = number("licensee")?;
    let expires = number("expires")?;
    let signature = params.get("signature").ok_or_else(|| {
        Problem::invalid_parameter("signature", "", "The `signature` query parameter of a signed URL is missing")
    })?;
    if !state.url_signer.verify(action, licensee_id, id, expires, signature) {
        return Err(Problem::plain(
            StatusCode::FORBIDDEN,
            ABOUT_BLANK,
            "Forbidden",
            format!("the signature does not match this {action} URL: use the URL the job gave, unchanged"),
        ));
    }
    let now = state.clock.now();
    if now.0 > expires {
        return Err(Problem::plain(
            StatusCode::FORBIDDEN,
            ABOUT_BLANK,
            "Forbidden",
            format!("this {action} URL expired at {}; create a new compliance job", Timestamp(expires)),
        ));
    }
    Ok(licensee_id)
}

/// What a licensee received, from the delivery ledger.
async fn received(state: &AppState, licensee_id: i64) -> Result<HashMap<i64, Received>, Problem> {
    let Some(ledger) = state.ledger.clone() else {
        return Err(Problem::unavailable(
            "compliance needs the delivery ledger, and this gateway runs without one (--unmetered)",
        ));
    };
    ledger.received(licensee_id).await.map_err(Problem::from)
}

/// The ids of an upload: one decimal post id per line (blank lines and CR ignored).
pub fn parse_upload(body: &[u8]) -> Result<Vec<i64>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the upload is not UTF-8 text".to_owned())?;
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.parse::<i64>() {
            Ok(id) if id > 0 => ids.push(id),
            _ => {
                let shown: String = line.chars().take(40).collect();
                return Err(format!("line {} ({shown:?}) is not a post id: upload one id per line", n + 1));
            }
        }
        if ids.len() > MAX_UPLOAD_IDS {
            return Err(format!("the upload lists more than {MAX_UPLOAD_IDS} ids: split it across jobs"));
        }
    }
    Ok(ids)
}

/// The result of a job: of the uploaded ids the licensee received, those deleted and those
/// corrected past the oldest revision it received, in upload order, one JSON line each.
async fn job_result(state: &AppState, licensee_id: i64, ids: Vec<i64>) -> Result<(String, u64), Problem> {
    let received = received(state, licensee_id).await?;
    let mut seen = HashSet::new();
    let ids: Vec<i64> = ids.into_iter().filter(|id| received.contains_key(id) && seen.insert(*id)).collect();
    let mut posts = HashMap::new();
    for chunk in ids.chunks(MAX_LOOKUP_IDS) {
        let chunk: Vec<PostId> = chunk.iter().map(|&id| PostId::new(id)).collect();
        for post in state.store.posts_by_ids(&chunk).await? {
            posts.insert(post.id.get(), post);
        }
    }
    let mut out = String::new();
    let mut lines = 0;
    for id in ids {
        let Some(post) = posts.get(&id) else { continue };
        let line = if let Some(deleted_at) = post.deleted_at {
            json!({
                "id": id.to_string(),
                "action": "delete",
                "created_at": post.created_at.to_string(),
                "redacted_at": deleted_at.to_string(),
                "reason": "deleted",
            })
        } else if received.get(&id).is_some_and(|r| post.revision > r.oldest_revision) {
            json!({
                "id": id.to_string(),
                "action": "edit",
                "created_at": post.created_at.to_string(),
                "revision": post.revision,
                "reason": "corrected",
            })
        } else {
            continue;
        };
        out.push_str(&line.to_string());
        out.push('\n');
        lines += 1;
    }
    Ok((out, lines))
}

/// `PUT /2/compliance/upload/:id?licensee=&expires=&signature=`: the job's id list.
#[utoipa::path(
    put, path = "/2/compliance/upload/{id}", tag = "compliance",
    params(
        ("id" = String, Path, description = "The job id"),
        ("licensee" = i64, Query, description = "Part of the signed URL"),
        ("expires" = i64, Query, description = "Part of the signed URL: when it expires (ms since the epoch)"),
        ("signature" = String, Query, description = "Part of the signed URL"),
    ),
    request_body(content = String, description = "Post ids, one per line", content_type = "text/plain"),
    responses(
        (status = 200, description = "`data`: the job, complete (or failed, with `error`)", content_type = "application/json"),
        (status = 400, description = "A parameter is missing or malformed, or the upload is not one post id per line (the job then fails)", content_type = "application/problem+json"),
        (status = 403, description = "The signature is not this URL's, or the URL expired", content_type = "application/problem+json"),
        (status = 404, description = "No such job", content_type = "application/problem+json"),
        (status = 409, description = "The job already took an upload, or expired", content_type = "application/problem+json"),
        (status = 503, description = "The store or the delivery ledger is unavailable", content_type = "application/problem+json"),
    ),
    security(())
)]
pub async fn upload(
    State(state): State<AppState>,
    scheme: Option<Extension<PublicScheme>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    BodyBytes(body): BodyBytes,
) -> ApiResult {
    let id = job_id(&id)?;
    let licensee_id = check_signed(&state, "upload", &id, query.as_deref())?;
    let now = state.clock.now();
    if state.store.compliance_job(licensee_id, &id).await?.is_none() {
        return Err(no_such_job(&id));
    }
    state.store.start_compliance_job(licensee_id, &id, now).await?;
    // Processed in a task of its own, so a client that disconnects (or a request timeout) cannot
    // leave the job in progress: it completes or fails either way.
    let task = tokio::spawn(process_upload(state.clone(), licensee_id, id.clone(), body));
    let job =
        task.await.map_err(|_| Problem::unavailable("the job could not be processed; retry with a new job"))??;
    let base = base_url(&headers, scheme.as_deref());
    Ok(json_response(StatusCode::OK, &json!({ "data": job_json(&state, &base, &job, state.clock.now()) })))
}

/// Ends a job taken `in_progress`: complete with its result, or failed. A malformed upload
/// fails the job (as X's does) and is answered 400; a job that could not be processed (store or
/// ledger unavailable) fails too, answered as that problem.
async fn process_upload(
    state: AppState,
    licensee_id: i64,
    id: String,
    body: axum::body::Bytes,
) -> Result<ComplianceJob, Problem> {
    let outcome: Result<(String, u64), Result<String, Problem>> = match parse_upload(&body) {
        Ok(ids) => job_result(&state, licensee_id, ids).await.map_err(Err),
        Err(why) => Err(Ok(why)),
    };
    match outcome {
        Ok(result) => Ok(state.store.finish_compliance_job(licensee_id, &id, Ok(result), state.clock.now()).await?),
        Err(failure) => {
            let why = match &failure {
                Ok(why) => why.clone(),
                Err(problem) => problem.detail.clone(),
            };
            if let Err(error) = state.store.finish_compliance_job(licensee_id, &id, Err(why), state.clock.now()).await {
                tracing::warn!(%error, job = %id, "could not mark a compliance job failed");
            }
            Err(failure.map_or_else(|problem| problem, Problem::invalid_request))
        }
    }
}

/// The deletions of a job result (its `action: delete` lines): `(post, deleted at)`.
fn deletions_in(result: &str) -> Vec<(PostId, Timestamp)> {
    result
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["action"] == "delete")
        .filter_map(|line| {
            let id = line["id"].as_str()?.parse().ok()?;
            let at = Timestamp::parse_rfc3339(line["redacted_at"].as_str()?).ok()?;
            Some((PostId::new(id), at))
        })
        .collect()
}

/// `GET /2/compliance/download/:id?licensee=&expires=&signature=`: a complete job's result.
#[utoipa::path(
    get, path = "/2/compliance/download/{id}", tag = "compliance",
    params(
        ("id" = String, Path, description = "The job id"),
        ("licensee" = i64, Query, description = "Part of the signed URL"),
        ("expires" = i64, Query, description = "Part of the signed URL: when it expires (ms since the epoch)"),
        ("signature" = String, Query, description = "Part of the signed URL"),
    ),
    responses(
        (status = 200, description = "JSON lines: {id, action (delete or edit), created_at, redacted_at (deletions), revision (corrections), reason}", content_type = "application/x-ndjson"),
        (status = 400, description = "A parameter is missing or malformed", content_type = "application/problem+json"),
        (status = 403, description = "The signature is not this URL's, or the URL expired", content_type = "application/problem+json"),
        (status = 404, description = "No such job", content_type = "application/problem+json"),
        (status = 409, description = "The job is not complete", content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", content_type = "application/problem+json"),
    ),
    security(())
)]
pub async fn download(State(state): State<AppState>, Path(id): Path<String>, RawQuery(query): RawQuery) -> ApiResult {
    let id = job_id(&id)?;
    let licensee_id = check_signed(&state, "download", &id, query.as_deref())?;
    let now = state.clock.now();
    let job = state.store.compliance_job(licensee_id, &id).await?.ok_or_else(|| no_such_job(&id))?;
    let status = job.status_at(now);
    if status != JobStatus::Complete {
        return Err(Problem::conflict(format!(
            "compliance job {id} is {}: only a complete job has a result to download",
            status.as_str()
        )));
    }
    let result = state.store.compliance_job_result(licensee_id, &id).await?.unwrap_or_default();
    let deletions = deletions_in(&result);
    if !deletions.is_empty() {
        state.store.record_deletion_notices(licensee_id, deletions, &format!("job:{id}"), now).await?;
    }
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, NDJSON)], result).into_response())
}

/// Where a feed request starts: after an event `seq` (a cursor), or at a time.
enum Since {
    After(i64),
    At(Timestamp),
}

fn since_param(params: &QueryParams) -> Result<Since, Problem> {
    let Some(value) = params.get("since") else { return Ok(Since::After(0)) };
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().map(Since::After).map_err(|_| {
            Problem::invalid_parameter("since", value, format!("The `since` cursor [{value}] is out of range"))
        });
    }
    Timestamp::parse_rfc3339(value).map(Since::At).map_err(|_| {
        Problem::invalid_parameter(
            "since",
            value,
            format!(
                "The `since` query parameter value [{value}] is neither a cursor from this feed nor a time (YYYY-MM-DDTHH:mm:ssZ)"
            ),
        )
    })
}

/// `GET /2/compliance/events?since=&max_results=`: deletions and corrections of the posts this
/// licensee received, as JSON lines.
#[utoipa::path(
    get, path = "/2/compliance/events", tag = "compliance",
    params(
        ("since" = Option<String>, Query, description = "A `cursor` from an earlier line or the `x-compliance-cursor` header (resume after it), or an RFC 3339 time (events at or after it); default: from the beginning"),
        ("max_results" = Option<u32>, Query, description = "1-1000 events (default 1000)"),
    ),
    responses(
        (status = 200, description = "JSON lines: {\"data\": {\"delete\": {\"tweet\": {id, author_id}, \"event_at\"}}, \"cursor\"} or {\"data\": {\"tweet_edit\": {\"tweet\": {id, author_id}, \"revision\", \"event_at\"}}, \"cursor\"}; the `x-compliance-cursor` header is where the next request resumes", content_type = "application/x-ndjson"),
        crate::openapi::LicenseeProblems,
    )
)]
pub async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let params = QueryParams::parse(query.as_deref())?;
    let since = since_param(&params)?;
    let max = params.bounded("max_results", 1, 1000, 1000)?;
    let received = received(&state, caller.licensee_id).await?;
    let (mut after, from) = match since {
        Since::After(seq) => (seq, None),
        Since::At(at) => (0, Some(at)),
    };
    let mut chosen = Vec::new();
    let mut scanned = 0;
    'scan: while scanned < FEED_SCAN_LIMIT {
        let page = state.store.events_after(after, FEED_PAGE).await?;
        if page.is_empty() {
            break;
        }
        for event in page {
            scanned += 1;
            after = event.seq;
            // A correction matters only to a licensee holding an older revision (as in job results).
            let holds = match (received.get(&event.post_id.get()), event.kind) {
                (Some(r), PostEventKind::Corrected { revision }) => r.oldest_revision < revision,
                (Some(_), PostEventKind::Deleted) => true,
                (None, _) => false,
            };
            if holds && from.is_none_or(|at| event.at >= at) {
                chosen.push(event);
                if chosen.len() == max {
                    break 'scan;
                }
            }
        }
    }
    let mut authors = HashMap::new();
    let ids: Vec<PostId> = {
        let mut ids: Vec<PostId> = chosen.iter().map(|e| e.post_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    for chunk in ids.chunks(MAX_LOOKUP_IDS) {
        for post in state.store.posts_by_ids(chunk).await? {
            authors.insert(post.id, post.author_id);
        }
    }
    let mut body = String::new();
    let mut deletions = Vec::new();
    for event in &chosen {
        let tweet = json!({
            "id": event.post_id.get().to_string(),
            "author_id": authors.get(&event.post_id).map(|a| a.get().to_string()),
        });
        let data = match event.kind {
            PostEventKind::Deleted => {
                deletions.push((event.post_id, event.at));
                json!({ "delete": { "tweet": tweet, "event_at": event.at.to_string() } })
            }
            PostEventKind::Corrected { revision } => {
                json!({ "tweet_edit": { "tweet": tweet, "revision": revision, "event_at": event.at.to_string() } })
            }
        };
        body.push_str(&json!({ "data": data, "cursor": event.seq.to_string() }).to_string());
        body.push_str("\r\n");
    }
    if !deletions.is_empty() {
        state.store.record_deletion_notices(caller.licensee_id, deletions, "feed", state.clock.now()).await?;
    }
    let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, NDJSON)], body).into_response();
    if let Ok(value) = HeaderValue::from_str(&after.to_string()) {
        response.headers_mut().insert(CURSOR_HEADER, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_every_part_of_the_url() {
        let signer = UrlSigner::derived_from(&[7; 32]);
        let sig = signer.sign("upload", 3, "123", 1000);
        assert!(signer.verify("upload", 3, "123", 1000, &sig));
        assert!(!signer.verify("download", 3, "123", 1000, &sig));
        assert!(!signer.verify("upload", 4, "123", 1000, &sig));
        assert!(!signer.verify("upload", 3, "124", 1000, &sig));
        assert!(!signer.verify("upload", 3, "123", 1001, &sig));
        assert!(!signer.verify("upload", 3, "123", 1000, "not base64!"));
        assert!(!signer.verify("upload", 3, "123", 1000, ""));
        assert!(!UrlSigner::derived_from(&[8; 32]).verify("upload", 3, "123", 1000, &sig));
    }

    #[test]
    fn uploads_are_one_id_per_line() {
        assert_eq!(parse_upload(b"1\r\n2\n\n 3 \n").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_upload(b"").unwrap(), Vec::<i64>::new());
        assert!(parse_upload(b"1\nabc\n").unwrap_err().contains("line 2"));
        assert!(parse_upload(b"-5").is_err());
        assert!(parse_upload(&[0xff, 0xfe]).is_err());
        assert!(parse_upload(b"99999999999999999999999").is_err());
    }
}

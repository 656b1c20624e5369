//! The admin API: what the CLI offers, over HTTP, behind the admin token.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use datapact_core::ingest::MAX_LINE_BYTES;
use datapact_core::{KeyPrefix, PostId, Timestamp};
use datapact_store::ops::{IngestBatcher, LineRejection, issue_key};
use datapact_store::{Change, IngestEffect};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::extract::{JsonBody, TypedQuery};
use crate::params::parse_id;
use crate::problem::Problem;

type AdminResult = Result<Response, Problem>;

/// Changes made through the admin API are audited under this actor.
pub(crate) fn admin_change(state: &AppState) -> Change {
    Change::new("admin-api", state.clock.now())
}

/// At most this many rejections are listed in one ingest response (all are counted).
const MAX_LISTED_REJECTIONS: usize = 1_000;

/// `POST /admin/posts`: an NDJSON body of ingest lines, streamed into the store in batches.
#[utoipa::path(
    post, path = "/admin/posts", tag = "admin",
    request_body(content = String, content_type = "application/x-ndjson", description = "Ingest lines (see README: posts, X envelopes, deletions)"),
    responses((status = 200, description = "Counts and rejected lines (line number and reason)"), (status = 400, description = "Invalid parameters", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong admin token", body = crate::openapi::Problem, content_type = "application/problem+json"),)
)]
pub async fn ingest(State(state): State<AppState>, body: Body) -> AdminResult {
    let mut batcher = IngestBatcher::new(state.store.as_ref());
    let mut rejected: Vec<LineRejection> = Vec::new();
    let mut buffer: Vec<u8> = Vec::new();
    let mut line_number = 0u64;
    // Past the line limit we stop buffering and only look for the line's end.
    let mut overlong = false;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Problem::invalid_request(format!("could not read the request body: {e}")))?;
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    line_number += 1;
                    if overlong {
                        rejected.push(overlong_line(line_number));
                        overlong = false;
                    } else {
                        buffer.extend_from_slice(&rest[..end]);
                        if buffer.last() == Some(&b'\r') {
                            buffer.pop();
                        }
                        batcher.push(line_number, &buffer, state.clock.now()).await?;
                    }
                    buffer.clear();
                    rest = &rest[end + 1..];
                }
                None => {
                    if !overlong && buffer.len() + rest.len() > MAX_LINE_BYTES {
                        overlong = true;
                        buffer.clear();
                    }
                    if !overlong {
                        buffer.extend_from_slice(rest);
                    }
                    rest = &[];
                }
            }
        }
        rejected.extend(batcher.take_rejections());
    }
    if overlong {
        rejected.push(overlong_line(line_number + 1));
    } else if !buffer.is_empty() {
        batcher.push(line_number + 1, &buffer, state.clock.now()).await?;
    }
    batcher.flush(state.clock.now()).await?;
    rejected.extend(batcher.take_rejections());
    rejected.sort_by_key(|rejection| rejection.line);
    let counts = batcher.counts();
    let listed: Vec<&LineRejection> = rejected.iter().take(MAX_LISTED_REJECTIONS).collect();
    tracing::info!(?counts, rejected = rejected.len(), "ingested posts through the admin API");
    Ok(Json(json!({
        "lines": batcher.lines(),
        "counts": counts,
        "rejected_count": rejected.len(),
        "rejected": listed,
    }))
    .into_response())
}

fn overlong_line(line: u64) -> LineRejection {
    LineRejection { line, reason: format!("line is longer than {MAX_LINE_BYTES} bytes"), raw: Vec::new() }
}

#[derive(Deserialize)]
pub struct DeleteRequest {
    ids: Vec<String>,
    deleted_at: Option<String>,
}

/// `POST /admin/posts/delete` `{"ids": ["1", "2"]}`: deletions, with their effect per id.
#[utoipa::path(
    post, path = "/admin/posts/delete", tag = "admin",
    request_body(content = serde_json::Value, description = "{\"ids\": [\"1\"], \"deleted_at\"?: RFC 3339}"),
    responses((status = 200, description = "Per id: deleted, already_deleted or not_found"), (status = 400, description = "Invalid parameters", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong admin token", body = crate::openapi::Problem, content_type = "application/problem+json"),)
)]
pub async fn delete_posts(State(state): State<AppState>, JsonBody(request): JsonBody<DeleteRequest>) -> AdminResult {
    let deleted_at = match &request.deleted_at {
        Some(text) => {
            Some(Timestamp::parse_rfc3339(text).map_err(|e| Problem::invalid_request(format!("`deleted_at`: {e}")))?)
        }
        None => None,
    };
    let ids: Vec<PostId> = request.ids.iter().map(|id| parse_id("ids", id)).collect::<Result<_, _>>()?;
    let effects = delete(&state, &ids, deleted_at).await?;
    Ok(Json(json!({ "results": effects })).into_response())
}

/// `DELETE /admin/posts/:id`
#[utoipa::path(
    delete, path = "/admin/posts/{id}", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 200, description = "Deleted"), (status = 404, description = "No such post", body = crate::openapi::Problem), (status = 400, description = "Invalid parameters", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong admin token", body = crate::openapi::Problem, content_type = "application/problem+json"),)
)]
pub async fn delete_post(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    let id: PostId = parse_id("id", &id)?;
    let effects = delete(&state, &[id], None).await?;
    if effects[0]["result"] == "not_found" {
        return Err(Problem::not_found(format!("no post with id {id}")));
    }
    Ok(Json(effects[0].clone()).into_response())
}

async fn delete(state: &AppState, ids: &[PostId], deleted_at: Option<Timestamp>) -> Result<Vec<Value>, Problem> {
    let records = ids.iter().map(|&id| datapact_core::ingest::IngestRecord::Delete { id, deleted_at }).collect();
    let effects = state.store.ingest(records, state.clock.now()).await?;
    Ok(ids
        .iter()
        .zip(effects)
        .map(|(id, effect)| {
            let result = match effect {
                IngestEffect::Deleted => "deleted",
                IngestEffect::AlreadyDeleted => "already_deleted",
                _ => "not_found",
            };
            json!({ "id": id, "result": result })
        })
        .collect())
}

#[derive(Deserialize)]
pub struct CreateLicensee {
    name: String,
}

#[utoipa::path(
    post, path = "/admin/licensees", tag = "admin",
    request_body(content = serde_json::Value, description = "{\"name\": \"acme\"}"),
    responses((status = 201, description = "Created"), (status = 409, description = "Exists", body = crate::openapi::Problem), (status = 400, description = "Invalid parameters", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong admin token", body = crate::openapi::Problem, content_type = "application/problem+json"),)
)]
pub async fn create_licensee(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateLicensee>,
) -> AdminResult {
    let licensee = state.store.create_licensee(&request.name, &admin_change(&state)).await?;
    Ok((StatusCode::CREATED, Json(licensee)).into_response())
}

#[utoipa::path(
    get, path = "/admin/licensees", tag = "admin", responses((status = 200, description = "Licensees"), (status = 401, description = "Missing or wrong admin token", body = crate::openapi::Problem, content_type = "application/problem+json"))
)]
pub async fn list_licensees(State(state): State<AppState>) -> AdminResult {
    Ok(Json(json!({ "licensees": state.store.licensees().await? })).into_response())
}

#[utoipa::path(
    get, path = "/admin/licensees/{name}", tag = "admin", params(("name" = String, Path)),
    responses((status = 200, description = "The licensee and its keys (never secrets)"), (status = 404, description = "No such licensee", body = crate::openapi::Problem), (status = 401, description = "Missing or wrong admin token", body = crate::openapi::Problem, content_type = "application/problem+json"))
)]
pub async fn show_licensee(State(state): State<AppState>, Path(name): Path<String>) -> AdminResult {
    let licensee =
        state.store.licensee(&name).await?.ok_or_else(|| Problem::not_found(format!("no licensee named {name:?}")))?;
    let keys = state.store.keys(Some(&name)).await?;
    Ok(Json(json!({ "licensee": licensee, "keys": keys })).into_response())
}

#[derive(Deserialize)]
pub struct IssueKey {
    expires_at: Option<String>,
    purpose: Option<String>,
}

/// `POST /admin/licensees/:name/keys`: the key is in this response and nowhere else, ever.
#[utoipa::path(
    post, path = "/admin/licensees/{name}/keys", tag = "admin", params(("name" = String, Path)),
    request_body(content = serde_json::Value, description = "Optional {\"expires_at\": RFC 3339}"),
    responses((status = 201, description = "`key` (shown once) and its record"), (status = 404, description = "No such licensee", body = crate::openapi::Problem), (status = 400, description = "Invalid parameters", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong admin token", body = crate::openapi::Problem, content_type = "application/problem+json"),)
)]
pub async fn issue_licensee_key(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> AdminResult {
    // The body is optional: no body means a key that never expires.
    let request: IssueKey = if body.iter().all(u8::is_ascii_whitespace) {
        IssueKey { expires_at: None, purpose: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| Problem::invalid_request(format!("invalid JSON body: {e}")))?
    };
    let expires_at = match request.expires_at.as_deref() {
        Some(text) => {
            Some(Timestamp::parse_rfc3339(text).map_err(|e| Problem::invalid_request(format!("`expires_at`: {e}")))?)
        }
        None => None,
    };
    let purpose = crate::terms::key_purpose(state.store.as_ref(), &name, request.purpose.as_deref()).await?;
    let (key, record) =
        issue_key(state.store.as_ref(), &name, purpose.as_str(), expires_at, &admin_change(&state)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "key": key.as_str(), "record": record }))).into_response())
}

#[derive(Deserialize)]
pub struct KeyFilter {
    licensee: Option<String>,
}

#[utoipa::path(
    get, path = "/admin/keys", tag = "admin", params(("licensee" = Option<String>, Query)),
    responses((status = 200, description = "Keys: prefix, created, last used, expiry"), (status = 400, description = "Invalid parameters", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong admin token", body = crate::openapi::Problem, content_type = "application/problem+json"),)
)]
pub async fn list_keys(State(state): State<AppState>, TypedQuery(filter): TypedQuery<KeyFilter>) -> AdminResult {
    Ok(Json(json!({ "keys": state.store.keys(filter.licensee.as_deref()).await? })).into_response())
}

#[utoipa::path(
    post, path = "/admin/keys/{prefix}/revoke", tag = "admin", params(("prefix" = String, Path)),
    responses((status = 200, description = "The revoked key's record"), (status = 404, description = "No such key", body = crate::openapi::Problem), (status = 401, description = "Missing or wrong admin token", body = crate::openapi::Problem, content_type = "application/problem+json"))
)]
pub async fn revoke_key(State(state): State<AppState>, Path(prefix): Path<String>) -> AdminResult {
    let record = state.store.revoke_key(&KeyPrefix(prefix), &admin_change(&state)).await?;
    Ok(Json(record).into_response())
}

#[derive(Deserialize)]
pub struct BackupRequest {
    out: String,
}

/// `POST /admin/backup` `{"out": "/path/to/new/dir"}`: a consistent copy, written on the server.
#[utoipa::path(
    post, path = "/admin/backup", tag = "admin",
    request_body(content = serde_json::Value, description = "{\"out\": \"/new/directory\"}"),
    responses((status = 200, description = "Written"), (status = 409, description = "The directory exists", body = crate::openapi::Problem), (status = 400, description = "Invalid parameters", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong admin token", body = crate::openapi::Problem, content_type = "application/problem+json"),)
)]
pub async fn backup(State(state): State<AppState>, JsonBody(request): JsonBody<BackupRequest>) -> AdminResult {
    let out = std::path::PathBuf::from(&request.out);
    datapact_store::ops::backup_data_dir(state.store.as_ref(), &state.data_dir, &out).await?;
    Ok(Json(json!({ "out": out })).into_response())
}

#[utoipa::path(
    get, path = "/admin/stats", tag = "admin", responses((status = 200, description = "Counts of posts, authors, licensees, keys"), (status = 401, description = "Missing or wrong admin token", body = crate::openapi::Problem, content_type = "application/problem+json"))
)]
pub async fn stats(State(state): State<AppState>) -> AdminResult {
    Ok(Json(state.store.stats().await?).into_response())
}

#[derive(Deserialize)]
pub struct MoveClock {
    now: Option<String>,
    advance_ms: Option<i64>,
}

/// `POST /admin/test/clock` `{"now": "..."}` or `{"advance_ms": N}`: only with `serve --test-clock`.
#[utoipa::path(
    post, path = "/admin/test/clock", tag = "admin",
    request_body(content = serde_json::Value, description = "{\"now\": RFC 3339} or {\"advance_ms\": N}"),
    responses((status = 200, description = "The new time"), (status = 404, description = "Not started with --test-clock", body = crate::openapi::Problem), (status = 400, description = "Invalid parameters", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong admin token", body = crate::openapi::Problem, content_type = "application/problem+json"),)
)]
pub async fn move_test_clock(State(state): State<AppState>, JsonBody(request): JsonBody<MoveClock>) -> AdminResult {
    let Some(clock) = &state.test_clock else {
        return Err(Problem::not_found("the clock can only be moved on a gateway started with --test-clock"));
    };
    match (request.now.as_deref(), request.advance_ms) {
        (Some(now), None) => {
            clock.set(Timestamp::parse_rfc3339(now).map_err(|e| Problem::invalid_request(format!("`now`: {e}")))?)
        }
        (None, Some(ms)) if ms >= 0 => clock.advance_millis(ms),
        _ => {
            return Err(Problem::invalid_request(
                "send either {\"now\": RFC 3339 time} or {\"advance_ms\": non-negative integer}",
            ));
        }
    }
    Ok(Json(json!({ "now": state.clock.now() })).into_response())
}

#[derive(Deserialize)]
pub struct BlockRequest {
    reason: String,
}

#[utoipa::path(
    post, path = "/admin/licensees/{name}/block", tag = "admin", params(("name" = String, Path)),
    request_body(content = serde_json::Value, description = "{\"reason\": \"shown to the licensee\"}"),
    responses((status = 200, description = "Blocked; every gateway refuses its requests within a second"), (status = 404, description = "No such licensee", body = crate::openapi::Problem))
)]
pub async fn block_licensee(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<BlockRequest>,
) -> AdminResult {
    let licensee = state
        .store
        .set_licensee_status(&name, datapact_core::LicenseeStatus::Blocked, &request.reason, &admin_change(&state))
        .await?;
    Ok(Json(licensee).into_response())
}

#[utoipa::path(
    post, path = "/admin/licensees/{name}/unblock", tag = "admin", params(("name" = String, Path)),
    responses((status = 200, description = "Served again"), (status = 404, description = "No such licensee", body = crate::openapi::Problem))
)]
pub async fn unblock_licensee(State(state): State<AppState>, Path(name): Path<String>) -> AdminResult {
    let licensee = state
        .store
        .set_licensee_status(&name, datapact_core::LicenseeStatus::Active, "", &admin_change(&state))
        .await?;
    Ok(Json(licensee).into_response())
}

#[derive(Deserialize)]
pub struct OptOutRequest {
    purpose: String,
}

async fn set_opt_out(state: &AppState, username: &str, purpose: &str, opted_out: bool) -> AdminResult {
    let user = datapact_store::ops::set_opt_out_by_username(
        state.store.as_ref(),
        username,
        purpose,
        opted_out,
        &admin_change(state),
    )
    .await?;
    Ok(Json(json!({ "author": user.author.id, "username": user.author.username, "purpose": purpose, "opted_out": opted_out })).into_response())
}

#[utoipa::path(
    post, path = "/admin/authors/{username}/opt-outs", tag = "admin", params(("username" = String, Path)),
    request_body(content = serde_json::Value, description = "{\"purpose\": \"ai-train\"}"),
    responses((status = 200, description = "The author's posts are never served to keys with that purpose"), (status = 404, description = "No such author", body = crate::openapi::Problem))
)]
pub async fn add_opt_out(
    State(state): State<AppState>,
    Path(username): Path<String>,
    JsonBody(request): JsonBody<OptOutRequest>,
) -> AdminResult {
    set_opt_out(&state, &username, &request.purpose, true).await
}

#[utoipa::path(
    delete, path = "/admin/authors/{username}/opt-outs/{purpose}", tag = "admin",
    params(("username" = String, Path), ("purpose" = String, Path)),
    responses((status = 200, description = "Opt-out withdrawn"), (status = 404, description = "No such author", body = crate::openapi::Problem))
)]
pub async fn remove_opt_out(
    State(state): State<AppState>,
    Path((username, purpose)): Path<(String, String)>,
) -> AdminResult {
    set_opt_out(&state, &username, &purpose, false).await
}

#[utoipa::path(
    get, path = "/admin/violations", tag = "admin", params(("licensee" = Option<String>, Query)),
    responses((status = 200, description = "Violations by licensee and kind: counts, first and last time, samples"))
)]
pub async fn list_violations(State(state): State<AppState>, TypedQuery(filter): TypedQuery<KeyFilter>) -> AdminResult {
    Ok(Json(json!({ "violations": state.store.violations(filter.licensee.as_deref()).await? })).into_response())
}

/// A licensee named in a query: its id, or a 404 problem.
async fn licensee_filter(state: &AppState, name: Option<&str>) -> Result<Option<i64>, Problem> {
    match name {
        None => Ok(None),
        Some(name) => match state.store.licensee(name).await? {
            Some(licensee) => Ok(Some(licensee.id)),
            None => Err(Problem::not_found(format!("no licensee {name:?}"))),
        },
    }
}

#[utoipa::path(
    get, path = "/admin/compliance/violations", tag = "admin", params(("licensee" = Option<String>, Query)),
    responses((status = 200, description = "Deletion-compliance violations proved from leaks (`datapact trace --record`), oldest first, with their evidence"),
        (status = 404, description = "No such licensee", body = crate::openapi::Problem, content_type = "application/problem+json"))
)]
pub async fn compliance_violations(
    State(state): State<AppState>,
    TypedQuery(filter): TypedQuery<KeyFilter>,
) -> AdminResult {
    let licensee = licensee_filter(&state, filter.licensee.as_deref()).await?;
    Ok(Json(json!({ "violations": state.store.deletion_violations(licensee).await? })).into_response())
}

#[utoipa::path(
    get, path = "/admin/compliance/notices", tag = "admin", params(("licensee" = Option<String>, Query)),
    responses((status = 200, description = "When each licensee was first told of each deletion (compliance feed or job download), and how"),
        (status = 404, description = "No such licensee", body = crate::openapi::Problem, content_type = "application/problem+json"))
)]
pub async fn compliance_notices(
    State(state): State<AppState>,
    TypedQuery(filter): TypedQuery<KeyFilter>,
) -> AdminResult {
    let licensee = licensee_filter(&state, filter.licensee.as_deref()).await?;
    Ok(Json(json!({ "notices": state.store.deletion_notices(licensee).await? })).into_response())
}

#[derive(Deserialize)]
pub struct AuditQuery {
    limit: Option<usize>,
}

#[utoipa::path(
    get, path = "/admin/audit", tag = "admin", params(("limit" = Option<usize>, Query, description = "Default 100, at most 10,000")),
    responses((status = 200, description = "Audit entries, newest first"))
)]
pub async fn audit_log(State(state): State<AppState>, TypedQuery(query): TypedQuery<AuditQuery>) -> AdminResult {
    let limit = query.limit.unwrap_or(100).min(10_000);
    Ok(Json(json!({ "entries": state.store.audit_log(limit).await? })).into_response())
}

#[derive(Deserialize)]
pub struct ApplyQuery {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    prune: bool,
    /// Apply price book changes sooner than the notice period (the licensees agreed).
    #[serde(default)]
    force: bool,
}

#[utoipa::path(
    post, path = "/admin/terms", tag = "admin",
    params(("dry_run" = Option<bool>, Query), ("prune" = Option<bool>, Query), ("force" = Option<bool>, Query, description = "Apply price book changes sooner than the notice period")),
    request_body(content = String, content_type = "application/toml", description = "A terms file, as `datapact apply` takes"),
    responses((status = 200, description = "The changes (applied unless dry_run)"), (status = 400, description = "Invalid terms", body = crate::openapi::Problem))
)]
pub async fn apply_terms(
    State(state): State<AppState>,
    TypedQuery(query): TypedQuery<ApplyQuery>,
    body: axum::body::Bytes,
) -> AdminResult {
    let text = std::str::from_utf8(&body).map_err(|_| Problem::invalid_request("the terms file must be UTF-8"))?;
    let change = admin_change(&state);
    let (diff, _) =
        crate::terms::apply_terms_file(state.store.as_ref(), text, query.prune, query.dry_run, query.force, &change)
            .await?;
    Ok(Json(json!({ "dry_run": query.dry_run, "changes": diff, "summary": diff.render() })).into_response())
}

#[utoipa::path(
    get, path = "/admin/terms", tag = "admin",
    responses((status = 200, description = "Every agreement in force, and the terms as a file"))
)]
pub async fn show_terms(State(state): State<AppState>) -> AdminResult {
    let agreements = crate::terms::agreements(state.store.as_ref()).await?;
    let file = crate::terms::current_terms(state.store.as_ref()).await?.to_toml();
    Ok(Json(json!({ "agreements": agreements, "terms_file": file })).into_response())
}

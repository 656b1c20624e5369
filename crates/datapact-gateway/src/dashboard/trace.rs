//! The trace page: upload a leak, watch its status, read the verdict.
//!
//! The trace itself (`datapact trace`: the corpus, the secret ring, canaries, the ledger's
//! deliveries) lives in the binary crate, which the gateway cannot depend on: the binary hands
//! the gateway a [`TraceRunner`] when it serves. Jobs run in a background task and are kept in
//! this gateway's memory (the newest [`KEPT_JOBS`]); each finished trace is recorded in the
//! store as `trace --record` does, under the dashboard user's name, and the upload is audited
//! (`trace.run`).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use datapact_core::Timestamp;
use datapact_store::LeakFile;
use datapact_store::admin_users::AdminRole;
use maud::{Markup, html};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::layout::{csrf, page};
use super::pages::path_segment;
use super::{authorize, change, error_page, forbidden, hex, page_response, viewer};
use crate::AppState;
use crate::problem::Problem;

/// Jobs kept in memory (older ones are in the store as findings).
pub const KEPT_JOBS: usize = 50;

/// Where a running trace is, as the runner tells it: shown on the trace's page.
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

/// What a trace run gives: the report and the recorded finding's id, or why it failed.
pub type Traced = Pin<Box<dyn Future<Output = Result<(Value, i64), String>> + Send>>;

/// Runs `datapact trace` on one file; supplied by the binary.
pub trait TraceRunner: Send + Sync + 'static {
    /// Traces the leak at `path` (its format sniffed; `file` names it as uploaded), saying
    /// through `progress` what it is doing, and records the finding and the deletion violations
    /// it proves under `actor`, as `datapact trace --record` does. The report as `datapact trace
    /// --json` prints it (with `deletion_compliance`) and the finding's id, or why it could not
    /// be made.
    fn trace(&self, path: PathBuf, file: LeakFile, actor: String, progress: Progress) -> Traced;
}

#[derive(Clone, Debug)]
enum JobState {
    /// With what the runner last said it was doing.
    Running(String),
    Done {
        report: Value,
        finding: Option<i64>,
    },
    Failed(String),
}

#[derive(Clone, Debug)]
struct Job {
    file: LeakFile,
    by: String,
    started: Timestamp,
    finished: Option<Timestamp>,
    state: JobState,
}

/// The trace jobs of this gateway, and the runner that does them.
#[derive(Default)]
pub struct TraceJobs {
    runner: Option<Arc<dyn TraceRunner>>,
    jobs: Mutex<BTreeMap<u64, Job>>,
    next: AtomicU64,
}

impl TraceJobs {
    pub fn new(runner: Option<Arc<dyn TraceRunner>>) -> TraceJobs {
        TraceJobs { runner, jobs: Mutex::new(BTreeMap::new()), next: AtomicU64::new(1) }
    }

    fn job(&self, id: u64) -> Option<Job> {
        self.jobs.lock().ok()?.get(&id).cloned()
    }

    fn set(&self, id: u64, job: Job) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.insert(id, job);
            while jobs.len() > KEPT_JOBS {
                jobs.pop_first();
            }
        }
    }

    fn recent(&self) -> Vec<(u64, Job)> {
        self.jobs.lock().map(|jobs| jobs.iter().rev().map(|(id, job)| (*id, job.clone())).collect()).unwrap_or_default()
    }
}

fn time(at: Timestamp) -> String {
    at.to_datetime().format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

async fn render_index(state: &AppState, headers: &HeaderMap) -> Response {
    let session = match viewer(state, headers).await {
        Ok(session) => session,
        Err(to_login) => return to_login,
    };
    let jobs = state.trace_jobs.recent();
    let body = html! {
        section aria-labelledby="upload-heading" {
            h2 #upload-heading { "Upload a leak" }
            @if state.trace_jobs.runner.is_none() {
                p.note { "Tracing is not available on this gateway (it runs unmetered)." }
            } @else if session.role < AdminRole::Operator {
                p.note { "Your role (" (session.role.as_str()) ") can read traces; running one needs the operator role." }
            } @else {
                form method="post" action="/dashboard/trace" enctype="multipart/form-data" {
                    (csrf(&session))
                    label for="leak" { "Leaked file (JSON Lines, CSV with a text column, or one post per line)" }
                    input #leak type="file" name="leak" required;
                    button type="submit" { "Trace" }
                }
            }
        }
        section aria-labelledby="jobs-heading" {
            h2 #jobs-heading { "Traces on this gateway" }
            @if jobs.is_empty() { p { "None yet." } } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "File" } th scope="col" { "By" } th scope="col" { "Started" } th scope="col" { "State" } } }
                    tbody { @for (id, job) in &jobs { tr {
                        td { a href={"/dashboard/trace/" (id)} { (job.file.name) } }
                        td { (job.by) } td { (time(job.started)) } td { (state_text(&job.state)) }
                    } } }
                } }
            }
        }
    };
    page_response(StatusCode::OK, page("Trace a leak", Some(&session), "trace", body))
}

/// `GET /dashboard/trace`.
pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    render_index(&state, &headers).await
}

fn state_text(state: &JobState) -> String {
    match state {
        JobState::Running(_) => "running".into(),
        JobState::Done { report, .. } => format!("done: {}", outcome(report)),
        JobState::Failed(_) => "failed".into(),
    }
}

fn outcome(report: &Value) -> &str {
    match report["outcome"].as_str() {
        Some("Accused") => "licensee(s) accused",
        Some("InsufficientEvidence") => "insufficient evidence",
        Some("MatchesPublicText") => "matches the public text",
        Some("NoSitesRead") => "no fingerprint site read",
        Some(other) => other,
        None => "unknown",
    }
}

/// The largest form field other than the file (the CSRF token is 64 characters).
const MAX_FORM_FIELD: usize = 1_024;

/// `POST /dashboard/trace` (multipart: `csrf`, then `leak`). Nothing is read before the session
/// checks out, the file not before the CSRF token and the role do; the file streams into a
/// private temporary file (hashed as it comes), which the trace reads and then removes.
pub async fn upload(State(state): State<AppState>, headers: HeaderMap, mut multipart: Multipart) -> Response {
    match super::session(&state, &headers).await {
        Ok(Some(_)) => {}
        Ok(None) => return forbidden(None, "You are not logged in, or your session has ended. Log in again."),
        Err(problem) => return error_page(None, &problem),
    }
    let bad_upload = |why: String| error_page(None, &Problem::invalid_request(why));
    let mut fields = std::collections::HashMap::new();
    let mut leak: Option<(String, tempfile::NamedTempFile, u64, Sha256)> = None;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => return bad_upload(format!("cannot read the upload: {error}")),
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name == "leak" {
            // Only once the form's CSRF token (sent before the file) checks out.
            if let Err(refused) = authorize(&state, &headers, &fields, AdminRole::Operator).await {
                return refused;
            }
            let file_name = field.file_name().unwrap_or("leak").to_owned();
            let mut kept = match tempfile::Builder::new().prefix("datapact-leak-").tempfile() {
                Ok(kept) => kept,
                Err(error) => {
                    return error_page(None, &Problem::unavailable(format!("cannot keep the upload: {error}")));
                }
            };
            let (mut bytes, mut hash) = (0u64, Sha256::new());
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        hash.update(&chunk);
                        bytes += chunk.len() as u64;
                        if let Err(error) = std::io::Write::write_all(&mut kept, &chunk) {
                            let problem = Problem::unavailable(format!("cannot keep the upload: {error}"));
                            return error_page(None, &problem);
                        }
                    }
                    Ok(None) => break,
                    Err(error) => return bad_upload(format!("cannot read the file: {error}")),
                }
            }
            leak = Some((file_name, kept, bytes, hash));
        } else {
            let mut text = Vec::new();
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) if text.len() + chunk.len() <= MAX_FORM_FIELD => text.extend_from_slice(&chunk),
                    Ok(Some(_)) => return bad_upload(format!("the form field {name:?} is too long")),
                    Ok(None) => break,
                    Err(error) => return bad_upload(format!("cannot read the upload: {error}")),
                }
            }
            fields.insert(name, String::from_utf8_lossy(&text).into_owned());
        }
    }
    let session = match authorize(&state, &headers, &fields, AdminRole::Operator).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let Some((file_name, kept, bytes, hash)) = leak.filter(|(_, _, bytes, _)| *bytes > 0) else {
        return error_page(Some(&session), &Problem::invalid_request("Choose a non-empty file to trace."));
    };
    let Some(runner) = state.trace_jobs.runner.clone() else {
        return forbidden(Some(&session), "Tracing is not available on this gateway.");
    };
    let file = LeakFile { name: file_name, bytes, sha256: hex(&hash.finalize()) };
    let change = change(&state, &session);
    let audited = state
        .store
        .record_audit(&change, "trace.run", &file.name, Some(json!({ "sha256": file.sha256, "bytes": file.bytes })))
        .await;
    if let Err(error) = audited {
        return error_page(Some(&session), &Problem::from(error));
    }
    let id = state.trace_jobs.next.fetch_add(1, Ordering::Relaxed);
    let job = Job {
        file: file.clone(),
        by: session.user.clone(),
        started: change.at,
        finished: None,
        state: JobState::Running("queued".into()),
    };
    state.trace_jobs.set(id, job.clone());
    // Removed when the trace is done with it (dropped at the end of the task).
    let kept = kept.into_temp_path();
    let path = kept.to_path_buf();
    let background = state.clone();
    tokio::spawn(async move {
        let jobs = background.clone();
        let progress: Progress = Arc::new(move |stage: &str| {
            if let Ok(mut all) = jobs.trace_jobs.jobs.lock()
                && let Some(job) = all.get_mut(&id)
                && matches!(job.state, JobState::Running(_))
            {
                job.state = JobState::Running(stage.to_owned());
            }
        });
        let outcome = runner.trace(path, job.file.clone(), job.by.clone(), progress).await;
        drop(kept);
        let finished = background.clock.now();
        let state = match outcome {
            Ok((report, id)) => JobState::Done { report, finding: Some(id) },
            Err(error) => JobState::Failed(error),
        };
        background.trace_jobs.set(id, Job { finished: Some(finished), state, ..job });
    });
    Redirect::to(&format!("/dashboard/trace/{id}")).into_response()
}

/// `GET /dashboard/trace/{id}/status`: `{state, elapsed_ms}` for the page's script to poll.
pub async fn job_status(State(state): State<AppState>, Path(id): Path<u64>, headers: HeaderMap) -> Response {
    if viewer(&state, &headers).await.is_err() {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "log in again" }))).into_response();
    }
    let Some(job) = state.trace_jobs.job(id) else {
        return (StatusCode::NOT_FOUND, Json(json!({ "error": "no such trace" }))).into_response();
    };
    let now = job.finished.unwrap_or_else(|| state.clock.now());
    let (name, stage) = match &job.state {
        JobState::Running(stage) => ("running", stage.as_str()),
        JobState::Done { .. } => ("done", ""),
        JobState::Failed(_) => ("failed", ""),
    };
    Json(json!({ "state": name, "stage": stage, "elapsed_ms": now.0 - job.started.0 })).into_response()
}

/// `GET /dashboard/trace/{id}`: the status while it runs, then the verdict.
pub async fn job_page(State(state): State<AppState>, Path(id): Path<u64>, headers: HeaderMap) -> Response {
    let session = match viewer(&state, &headers).await {
        Ok(session) => session,
        Err(to_login) => return to_login,
    };
    let Some(job) = state.trace_jobs.job(id) else {
        return error_page(
            Some(&session),
            &Problem::not_found("No such trace on this gateway (it may have restarted)."),
        );
    };
    let body = html! {
        dl.facts {
            dt { "File" } dd { (job.file.name) " (" (job.file.bytes) " bytes, SHA-256 " code { (job.file.sha256) } ")" }
            dt { "Started by" } dd { (job.by) " at " (time(job.started)) }
        }
        div #trace-status role="status" aria-live="polite" data-poll={"/dashboard/trace/" (id) "/status"} data-state=(match job.state { JobState::Running(_) => "running", JobState::Done { .. } => "done", JobState::Failed(_) => "failed" }) {
            @match &job.state {
                JobState::Running(stage) => p { "Tracing: " span data-stage { (stage) } ". This page updates by itself (or " a href={"/dashboard/trace/" (id)} { "reload" } ")." },
                JobState::Failed(why) => p.error { "The trace failed: " (why) },
                JobState::Done { report, finding } => (verdict(report, *finding)),
            }
        }
    };
    page_response(StatusCode::OK, page("Trace", Some(&session), "trace", body))
}

fn float(value: &Value) -> String {
    value.as_f64().map_or("—".into(), |v| format!("{v:.1}"))
}

fn verdict(report: &Value, finding: Option<i64>) -> Markup {
    let accused = report["accused"].as_array().cloned().unwrap_or_default();
    let scores = report["licensees"].as_array().cloned().unwrap_or_default();
    let canaries = report["canary_hits"].as_array().cloned().unwrap_or_default();
    html! {
        p.verdict { strong { "Verdict: " (outcome(report)) } }
        dl.facts {
            dt { "Posts matched" } dd { (report["posts_matched"]) }
            dt { "Bound on accusing an innocent (ε)" } dd { (report["epsilon"]) }
            @if let Some(id) = finding { dt { "Recorded as finding" } dd { (id) } }
        }
        h2 { "Accused" }
        @if accused.is_empty() { p { "Nobody: the evidence does not prove anything at this ε." } } @else {
            div.scroll { table #verdict {
                caption.visually-hidden { "Accused licensees" }
                thead { tr { th scope="col" { "Licensee" } th scope="col" class="num" { "Score" } th scope="col" class="num" { "Threshold" } th scope="col" class="num" { "Chance an innocent scores this high" } th scope="col" class="num" { "Leaked posts it received" } } }
                tbody { @for a in &accused {
                    @let name = a["name"].as_str().map(str::to_owned).unwrap_or_else(|| a["licensee"].to_string());
                    tr {
                        th scope="row" { a href={"/dashboard/licensees/" (path_segment(&name))} { (name) } }
                        td.num { (float(&a["score"])) }
                        td.num { (float(&a["threshold"])) }
                        td.num {
                            @match a["log10_bound_all"].as_f64() {
                                Some(l) => { "≤ 10" sup { (format!("{l:.1}").replace('-', "−")) } }
                                None => { "—" }
                            }
                        }
                        td.num { (a["delivered_share"].as_f64().map_or("—".into(), |s| format!("{:.0} %", s * 100.0))) }
                    }
                } }
            } }
        }
        @if !canaries.is_empty() {
            h2 { "Canaries found" }
            ul { @for c in &canaries { li { (c["name"].as_str().unwrap_or("?")) ": canary " (c["canary_id"]) } } }
        }
        details {
            summary { "Every licensee's score" }
            div.scroll { table {
                thead { tr { th scope="col" { "Licensee" } th scope="col" class="num" { "Score" } th scope="col" class="num" { "Threshold" } th scope="col" { "Accused" } } }
                tbody { @for s in &scores { tr {
                    td { (s["name"].as_str().unwrap_or("?")) } td.num { (float(&s["score"])) } td.num { (float(&s["threshold"])) } td { (if s["accused"].as_bool() == Some(true) { "yes" } else { "no" }) }
                } } }
            } }
        }
    }
}

//! Usage views: `GET /2/usage/tweets` for a licensee (X's shape), and the admin API's usage,
//! deliveries and ledger verification.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use datapact_ledger::usage::{DEFAULT_USAGE_DAYS, MAX_USAGE_DAYS};
use datapact_ledger::{DayKey, MonthKey, usage_view};
use datapact_store::ledger::{Ledger, UsageBy};
use serde_json::json;

use crate::AppState;
use crate::params::QueryParams;
use crate::problem::Problem;
use crate::terms::Admission;

/// The `usage.fields` X defines; datapact always sends the project fields and has no client apps.
const USAGE_FIELDS: &[&str] =
    &["cap_reset_day", "daily_client_app_usage", "daily_project_usage", "project_cap", "project_id", "project_usage"];

fn ledger(state: &AppState) -> Result<&Ledger, Problem> {
    state.ledger.as_ref().ok_or_else(|| Problem::unavailable("this gateway runs without metering (--unmetered)"))
}

/// `GET /2/usage/tweets`: the calling licensee's counted records this month and per day.
#[utoipa::path(
    get, path = "/2/usage/tweets", tag = "usage",
    params(
        ("days" = Option<u32>, Query, description = "Days of daily usage, 1-90 (default 7)"),
        ("usage.fields" = Option<String>, Query, description = "Accepted for X compatibility; every project field is always sent"),
    ),
    responses(
        (status = 200, description = "`data`: cap_reset_day, project_cap, project_id, project_usage (counts as strings), daily_project_usage", content_type = "application/json"),
        crate::openapi::LicenseeProblems,
    )
)]
pub async fn usage_tweets(
    State(state): State<AppState>,
    Extension(admission): Extension<Admission>,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let params = QueryParams::parse(query.as_deref())?;
    let days = params.bounded("days", 1, MAX_USAGE_DAYS as usize, DEFAULT_USAGE_DAYS as usize)? as u32;
    for field in params.names(&["usage.fields"])?.iter() {
        if !USAGE_FIELDS.contains(&field) {
            return Err(Problem::invalid_parameter(
                "usage.fields",
                field,
                format!("The `usage.fields` value [{field}] is not one of [{}]", USAGE_FIELDS.join(",")),
            ));
        }
    }
    admission.admit().await?;
    let ledger = ledger(&state)?;
    let now = admission.now();
    let today = DayKey::of(now);
    let licensee_id = admission.licensee_id();
    let (cap, _) = crate::metering::agreement_cap(&state.terms.snapshot(), admission.licensee_id());
    let month_counted = ledger.month_counted(licensee_id, MonthKey::of(now)).await?;
    let daily = ledger.daily_counts(licensee_id, today.minus_days(days - 1), today).await?;
    let view = usage_view(licensee_id, cap.monthly_records, month_counted, today, days, &daily)
        .map_err(|error| Problem::invalid_parameter("days", &days.to_string(), error.to_string()))?;
    Ok(Json(json!({ "data": view })).into_response())
}

fn month_param(params: &QueryParams, now: datapact_core::Timestamp) -> Result<MonthKey, Problem> {
    match params.get("month") {
        None => Ok(MonthKey::of(now)),
        Some(text) => MonthKey::parse(text).ok_or_else(|| {
            Problem::invalid_parameter("month", text, format!("The `month` value [{text}] is not a month (YYYY-MM)"))
        }),
    }
}

async fn licensee_id(state: &AppState, name: &str) -> Result<i64, Problem> {
    state
        .store
        .licensee(name)
        .await?
        .map(|licensee| licensee.id)
        .ok_or_else(|| Problem::not_found(format!("no licensee named {name:?}")))
}

/// `GET /admin/usage?licensee=&month=&by=`: usage totals per licensee for a month.
#[utoipa::path(
    get, path = "/admin/usage", tag = "admin",
    params(
        ("licensee" = Option<String>, Query, description = "One licensee (default: all)"),
        ("month" = Option<String>, Query, description = "YYYY-MM (default: this month, UTC)"),
        ("by" = Option<String>, Query, description = "month (default), day, endpoint or purpose"),
    ),
    responses((status = 200, description = "`data`: usage lines {licensee, group, responses, delivered, counted, overage, user_reads, bytes}"))
)]
pub async fn admin_usage(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Response, Problem> {
    let params = QueryParams::parse(query.as_deref())?;
    let month = month_param(&params, state.clock.now())?;
    let by = match params.get("by") {
        None => UsageBy::Month,
        Some(text) => UsageBy::parse(text).ok_or_else(|| {
            Problem::invalid_parameter("by", text, "The `by` value is not one of [month,day,endpoint,purpose]")
        })?,
    };
    let licensee = match params.get("licensee") {
        Some(name) => Some(licensee_id(&state, name).await?),
        None => None,
    };
    let names: std::collections::HashMap<i64, String> =
        state.store.licensees().await?.into_iter().map(|l| (l.id, l.name)).collect();
    let lines = ledger(&state)?.usage(licensee, month, by).await?;
    let data: Vec<_> = lines
        .into_iter()
        .map(|line| {
            let mut value = serde_json::to_value(&line).unwrap_or_default();
            value["licensee"] = json!(names.get(&line.licensee_id).cloned().unwrap_or_default());
            value
        })
        .collect();
    Ok(Json(json!({ "data": data })).into_response())
}

/// `GET /admin/licensees/{name}/deliveries?month=`: every delivery of a month, as JSON lines.
#[utoipa::path(
    get, path = "/admin/licensees/{name}/deliveries", tag = "admin",
    params(("name" = String, Path, description = "Licensee"), ("month" = Option<String>, Query, description = "YYYY-MM (default: this month)")),
    responses((status = 200, description = "One JSON object per line: at, post_id, revision, request_id, counted", content_type = "application/x-ndjson"))
)]
pub async fn admin_deliveries(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let params = QueryParams::parse(query.as_deref())?;
    let month = month_param(&params, state.clock.now())?;
    let licensee_id = licensee_id(&state, &name).await?;
    let mut body = Vec::new();
    ledger(&state)?
        .deliveries(licensee_id, month, |record| {
            serde_json::to_writer(&mut body, &record)?;
            body.push(b'\n');
            Ok(())
        })
        .await?;
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    Ok(response)
}

/// `POST /admin/ledger/verify`: recomputes the ledger's hash chain and names the first break.
#[utoipa::path(
    post, path = "/admin/ledger/verify", tag = "admin",
    responses((status = 200, description = "`{ok, chains: [{chain, batches, pruned_batches, rows, head}], batches, rows, daily_totals_checked}` (with `chain` and `head` when the ledger has one chain) or `{ok: false, break}`"))
)]
pub async fn admin_verify(State(state): State<AppState>) -> Result<Response, Problem> {
    let outcome = ledger(&state)?.verify(&[]).await?;
    Ok(Json(datapact_store::ledger::verify_json(&outcome)).into_response())
}

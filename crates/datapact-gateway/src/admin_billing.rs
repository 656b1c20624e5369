//! The admin API's billing routes: invoices (as JSON views, printable HTML or CSV lines), the
//! invoice run, the month's summary, prepaid credits and webhooks. Each does what its `datapact`
//! command does, through the same functions (`billing`, `statements`, `webhooks`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use datapact_billing::Month;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::admin::admin_change;
use crate::extract::{JsonBody, TypedQuery};
use crate::problem::Problem;
use crate::statements;

type AdminResult = Result<Response, Problem>;

fn month_param(text: &str) -> Result<Month, Problem> {
    Month::parse(text).ok_or_else(|| Problem::invalid_parameter("month", text, "`month` must be YYYY-MM"))
}

/// `GET /admin/invoices` filters.
#[derive(Deserialize)]
pub struct InvoiceQuery {
    licensee: Option<String>,
    /// `YYYY-MM`.
    month: Option<String>,
}

/// Every invoice (of a licensee, of a month) as it stands now: status, paid, outstanding, lines.
#[utoipa::path(
    get, path = "/admin/invoices", tag = "admin",
    params(("licensee" = Option<String>, Query), ("month" = Option<String>, Query, description = "YYYY-MM")),
    responses((status = 200, description = "`invoices`: as `datapact invoice list --format json`: `status` (open, paid, overdue, void), `total`, `paid`, `outstanding` (decimals and `_minor`), `lines`"),
              (status = 400, description = "A bad month", body = crate::openapi::Problem))
)]
pub async fn list_invoices(State(state): State<AppState>, TypedQuery(query): TypedQuery<InvoiceQuery>) -> AdminResult {
    let month = query.month.as_deref().map(month_param).transpose()?;
    if let Some(name) = &query.licensee {
        state.store.licensee(name).await?.ok_or_else(|| Problem::not_found(format!("no licensee named {name:?}")))?;
    }
    let invoices = state.store.invoices(query.licensee.as_deref(), month).await?;
    let views = statements::views(state.store.as_ref(), &invoices, state.clock.now()).await?;
    Ok(Json(json!({ "invoices": views })).into_response())
}

/// `GET /admin/invoices/{number}` format.
#[derive(Deserialize)]
pub struct DocumentQuery {
    /// `json` (default), `html` or `csv`.
    format: Option<String>,
}

/// One invoice: its JSON view, a printable self-contained HTML page, or its lines as CSV.
#[utoipa::path(
    get, path = "/admin/invoices/{number}", tag = "admin",
    params(("number" = String, Path, description = "DP-000001"), ("format" = Option<String>, Query, description = "json (default), html or csv")),
    responses((status = 200, description = "The invoice"), (status = 404, description = "No such invoice", body = crate::openapi::Problem),
              (status = 400, description = "A bad format", body = crate::openapi::Problem))
)]
pub async fn show_invoice(
    State(state): State<AppState>,
    Path(number): Path<String>,
    TypedQuery(query): TypedQuery<DocumentQuery>,
) -> AdminResult {
    let invoice = state
        .store
        .invoice(&number)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no invoice numbered {number:?}")))?;
    let view = statements::views(state.store.as_ref(), std::slice::from_ref(&invoice), state.clock.now())
        .await?
        .pop()
        .ok_or_else(|| Problem::unavailable("the invoice's view"))?;
    let document = |content_type: &'static str, body: String| {
        let mut response = body.into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    Ok(match query.format.as_deref().unwrap_or("json") {
        "json" => Json(view).into_response(),
        "html" => document("text/html; charset=utf-8", statements::invoice_html(&view, "datapact")),
        "csv" => document("text/csv; charset=utf-8", statements::invoice_lines_csv(&view)),
        other => return Err(Problem::invalid_parameter("format", other, "`format` is json, html or csv")),
    })
}

/// `POST /admin/invoices/{number}/credit-notes` body.
#[derive(Deserialize)]
pub struct CreditNoteRequest {
    /// A decimal in the invoice's currency: `"25.00"`.
    amount: String,
    reason: String,
}

/// Issues a credit note against an invoice, as `datapact invoice credit-note`: the note, and the
/// invoice as it stands after it.
#[utoipa::path(
    post, path = "/admin/invoices/{number}/credit-notes", tag = "admin", params(("number" = String, Path)),
    request_body(content = serde_json::Value, description = "{\"amount\": \"25.00\", \"reason\": \"overage miscounted\"}"),
    responses((status = 201, description = "`credit_note` and the `invoice` after it"),
              (status = 400, description = "A bad amount or reason, or more than is outstanding", body = crate::openapi::Problem),
              (status = 404, description = "No such invoice", body = crate::openapi::Problem))
)]
pub async fn issue_credit_note(
    State(state): State<AppState>,
    Path(number): Path<String>,
    JsonBody(request): JsonBody<CreditNoteRequest>,
) -> AdminResult {
    let change = admin_change(&state);
    let (issued, view) =
        crate::billing::issue_credit_note(state.store.as_ref(), &number, &request.amount, &request.reason, &change)
            .await?;
    Ok((StatusCode::CREATED, Json(json!({ "credit_note": issued, "invoice": view }))).into_response())
}

/// `POST /admin/invoices/{number}/void` body.
#[derive(Deserialize)]
pub struct VoidRequest {
    reason: String,
}

/// Voids an invoice issued in error with nothing paid or credited on it, as `datapact invoice void`.
#[utoipa::path(
    post, path = "/admin/invoices/{number}/void", tag = "admin", params(("number" = String, Path)),
    request_body(content = serde_json::Value, description = "{\"reason\": \"issued in error\"}"),
    responses((status = 200, description = "The invoice as it stands now (status void)"),
              (status = 404, description = "No such invoice", body = crate::openapi::Problem),
              (status = 409, description = "Already void, or something paid or credited on it", body = crate::openapi::Problem))
)]
pub async fn void_invoice(
    State(state): State<AppState>,
    Path(number): Path<String>,
    JsonBody(request): JsonBody<VoidRequest>,
) -> AdminResult {
    let voided = state.store.void_invoice(&number, &request.reason, &admin_change(&state)).await?;
    let view = statements::views(state.store.as_ref(), std::slice::from_ref(&voided), state.clock.now()).await?;
    Ok(Json(view.first()).into_response())
}

/// `POST /admin/invoices/run` parameters.
#[derive(Deserialize)]
pub struct RunQuery {
    /// `YYYY-MM`, a month that is over.
    month: String,
}

/// The invoice run of `datapact invoice run`, through the admin API: idempotent.
#[utoipa::path(
    post, path = "/admin/invoices/run", tag = "admin",
    params(("month" = String, Query, description = "YYYY-MM, a month that is over")),
    responses((status = 200, description = "`issued`, `existing` and `not_billed`, as `datapact invoice run --json`"),
              (status = 400, description = "A bad month, or one not over yet", body = crate::openapi::Problem),
              (status = 409, description = "No price book applied", body = crate::openapi::Problem))
)]
pub async fn run_invoices(State(state): State<AppState>, TypedQuery(query): TypedQuery<RunQuery>) -> AdminResult {
    let month = month_param(&query.month)?;
    let Some(ledger) = &state.ledger else {
        return Err(Problem::unavailable("this gateway runs without a ledger (--unmetered): nothing to invoice"));
    };
    let run = crate::billing::run_invoices(state.store.as_ref(), ledger, month, &admin_change(&state)).await?;
    Ok(Json(run).into_response())
}

/// `GET /admin/billing/summary` parameters.
#[derive(Deserialize)]
pub struct SummaryQuery {
    /// `YYYY-MM`.
    month: String,
}

/// A month's revenue, as `datapact billing summary --json`.
#[utoipa::path(
    get, path = "/admin/billing/summary", tag = "admin",
    params(("month" = String, Query, description = "YYYY-MM")),
    responses((status = 200, description = "`invoices` of the month as they stand now, and `totals` per currency (invoiced, paid, outstanding, overdue)"),
              (status = 400, description = "A bad month", body = crate::openapi::Problem))
)]
pub async fn billing_summary(
    State(state): State<AppState>,
    TypedQuery(query): TypedQuery<SummaryQuery>,
) -> AdminResult {
    let month = month_param(&query.month)?;
    Ok(Json(statements::summary(state.store.as_ref(), month, state.clock.now()).await?).into_response())
}

/// `GET /admin/credits` filters.
#[derive(Deserialize)]
pub struct CreditQuery {
    licensee: Option<String>,
}

/// Prepaid credit balances: added, charged by the ledger, left.
#[utoipa::path(
    get, path = "/admin/credits", tag = "admin", params(("licensee" = Option<String>, Query)),
    responses((status = 200, description = "`balances`, as `datapact credit balance --json`"))
)]
pub async fn list_credits(State(state): State<AppState>, TypedQuery(query): TypedQuery<CreditQuery>) -> AdminResult {
    let Some(ledger) = &state.ledger else {
        return Err(Problem::unavailable("this gateway runs without a ledger (--unmetered): no charges to show"));
    };
    let balances = crate::billing::credit_balances(state.store.as_ref(), ledger, query.licensee.as_deref()).await?;
    Ok(Json(json!({ "balances": balances })).into_response())
}

/// `POST /admin/credits` body.
#[derive(Deserialize)]
pub struct AddCredit {
    licensee: String,
    /// A decimal in the currency of the licensee's price: `"500.00"`.
    amount: String,
    reference: String,
}

/// Adds prepaid credit, idempotent by reference, as `datapact credit add`.
#[utoipa::path(
    post, path = "/admin/credits", tag = "admin",
    request_body(content = serde_json::Value, description = "{\"licensee\": \"acme\", \"amount\": \"500.00\", \"reference\": \"WIRE-1\"}"),
    responses((status = 201, description = "`credit` and `new` (false: the same credit was recorded before)"),
              (status = 400, description = "A bad amount or reference", body = crate::openapi::Problem),
              (status = 404, description = "No such licensee", body = crate::openapi::Problem),
              (status = 409, description = "Not prepaid, no price, or the reference used for another amount", body = crate::openapi::Problem))
)]
pub async fn add_credit(State(state): State<AppState>, JsonBody(request): JsonBody<AddCredit>) -> AdminResult {
    let change = admin_change(&state);
    let added = crate::billing::add_credit(
        state.store.as_ref(),
        &request.licensee,
        &request.amount,
        &request.reference,
        &change,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(added)).into_response())
}

/// Every webhook (never their secrets).
#[utoipa::path(get, path = "/admin/webhooks", tag = "admin", responses((status = 200, description = "`webhooks`")))]
pub async fn list_webhooks(State(state): State<AppState>) -> AdminResult {
    Ok(Json(json!({ "webhooks": state.store.webhooks().await? })).into_response())
}

/// `POST /admin/webhooks` body.
#[derive(Deserialize)]
pub struct AddWebhook {
    url: String,
    /// Absent: platform-wide (every licensee's notifications).
    licensee: Option<String>,
    /// Kinds (absent or empty: all).
    #[serde(default)]
    events: Vec<String>,
}

/// Adds a webhook, as `datapact webhook add`; its signing secret is in this response only.
#[utoipa::path(
    post, path = "/admin/webhooks", tag = "admin",
    request_body(content = serde_json::Value, description = "{\"url\": \"https://…\", \"licensee\": \"acme\", \"events\": [\"cap.80\"]}"),
    responses((status = 201, description = "The webhook and its `secret` (shown once)"),
              (status = 400, description = "A bad URL or event kind", body = crate::openapi::Problem),
              (status = 404, description = "No such licensee", body = crate::openapi::Problem))
)]
pub async fn add_webhook(State(state): State<AppState>, JsonBody(request): JsonBody<AddWebhook>) -> AdminResult {
    let change = admin_change(&state);
    let added = crate::webhooks::add_webhook(
        state.store.as_ref(),
        request.licensee.as_deref(),
        &request.url,
        &request.events,
        &change,
    )
    .await?;
    let mut body = json!(added);
    body["secret"] = json!(added.secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Stops sending to a webhook; its delivery log stays.
#[utoipa::path(
    delete, path = "/admin/webhooks/{id}", tag = "admin", params(("id" = i64, Path)),
    responses((status = 200, description = "The removed webhook"), (status = 404, description = "No such webhook", body = crate::openapi::Problem))
)]
pub async fn remove_webhook(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    let id: i64 = id.parse().map_err(|_| Problem::invalid_parameter("id", &id, "a webhook id is a number"))?;
    Ok(Json(state.store.remove_webhook(id, &admin_change(&state)).await?).into_response())
}

/// `GET /admin/webhooks/deliveries` parameters.
#[derive(Deserialize)]
pub struct DeliveriesQuery {
    limit: Option<usize>,
}

/// The delivery log, newest first, as `datapact webhook deliveries --json`.
#[utoipa::path(
    get, path = "/admin/webhooks/deliveries", tag = "admin", params(("limit" = Option<usize>, Query, description = "1 to 1000, default 50")),
    responses((status = 200, description = "`deliveries`"), (status = 400, description = "A bad limit", body = crate::openapi::Problem))
)]
pub async fn webhook_deliveries(
    State(state): State<AppState>,
    TypedQuery(query): TypedQuery<DeliveriesQuery>,
) -> AdminResult {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1_000).contains(&limit) {
        return Err(Problem::invalid_parameter("limit", &limit.to_string(), "`limit` is 1 to 1000"));
    }
    Ok(Json(json!({ "deliveries": state.store.webhook_deliveries(limit).await? })).into_response())
}

//! Billing at the edge: the invoice run (the stored terms and price books plus the ledger's counts,
//! priced by `datapact-billing`, issued through the store) and the 402 `payment-required` problem.
//! The CLI and the gateway's own schedule ([`spawn_schedule`]) run invoice runs through
//! [`run_invoices`]; the admin API is meant to call the same function.

use axum::http::StatusCode;
use chrono::NaiveDate;
use datapact_billing::{Currency, Money, Month, PriceBook, Suspension, Term, compute_invoice, due_date, format_micro};
use datapact_ledger::DayKey;
use datapact_store::ledger::Ledger;
use datapact_store::{Change, CreditAdded, NewCredit, NewInvoice, Store, StoredInvoice, TermsState};
use serde::Serialize;
use serde_json::json;

use crate::problem::Problem;

/// The problem type of a licensee suspended for non-payment, in X's namespace like the other
/// problems this gateway answers with (X itself answers 402 to accounts without credits).
pub const PAYMENT_REQUIRED: &str = "https://api.twitter.com/2/problems/payment-required";

/// The stored price book versions (none before a terms file with `[[price_book]]` is applied).
pub fn price_books(state: &TermsState) -> Result<Vec<PriceBook>, Problem> {
    match &state.price_books {
        None => Ok(Vec::new()),
        Some(body) => serde_json::from_value(body.clone())
            .map_err(|error| Problem::unavailable(format!("the stored price books do not read back: {error}"))),
    }
}

/// A licensee the run issued nothing for, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotBilled {
    pub licensee: String,
    pub reason: String,
}

/// What an invoice run did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvoiceRun {
    pub month: Month,
    /// Invoices issued by this run.
    pub issued: Vec<StoredInvoice>,
    /// Invoices issued by an earlier run for the same licensee and month (left as they were).
    pub existing: Vec<StoredInvoice>,
    /// Licensees with an agreement but nothing to bill this month.
    pub not_billed: Vec<NotBilled>,
}

/// Issues the invoices of `month`: one per licensee with an agreement and something to bill
/// (a day of its term in the month with a price, or counted records on a priced day). The base fee
/// is prorated by the term's days; the ledger's counted records per delivery day, in day order,
/// are priced by the price in force on their day (`datapact_billing::compute_invoice`). Issued at
/// `change.at`, due `payment_terms_days` later. Idempotent: a licensee that already has an
/// invoice for the month gets nothing new. If any licensee's invoice cannot be computed, nothing
/// is issued and the problem names each one.
///
/// The agreement and billing terms used are those stored when the run happens (the store keeps no
/// history of agreements): run a month's invoices before changing its terms.
pub async fn run_invoices(
    store: &dyn Store,
    ledger: &Ledger,
    month: Month,
    change: &Change,
) -> Result<InvoiceRun, Problem> {
    let today = change.at.to_datetime().date_naive();
    // Invoicing a month before it ends would bill part of it, and the run being idempotent, the
    // rest would never be billed.
    if today < month.end() {
        return Err(Problem::invalid_request(format!(
            "{month} is not over until {}T00:00:00Z: invoice a month once it has ended",
            month.end()
        )));
    }
    let (invoices, not_billed) = price_month(store, ledger, month, today).await?;
    let outcome = store.issue_invoices(invoices, change).await?;
    Ok(InvoiceRun { month, issued: outcome.issued, existing: outcome.existing, not_billed })
}

/// Prices every licensee's `month` from the ledger as the invoice run does, issuing nothing:
/// the invoices it would issue (due `payment_terms_days` after `today`) and who would not be
/// billed. The dashboard shows the current month priced so far as revenue accrued to date.
pub async fn price_month(
    store: &dyn Store,
    ledger: &Ledger,
    month: Month,
    today: NaiveDate,
) -> Result<(Vec<NewInvoice>, Vec<NotBilled>), Problem> {
    let books = price_books(&store.terms_state().await?)?;
    if books.is_empty() {
        return Err(Problem::conflict(
            "no price book is applied: add [[price_book]] tables to the terms file and `datapact apply` it",
        ));
    }
    let terms = crate::terms::current_terms(store).await?;
    let (first, last) = (DayKey::from_date(month.first_day()), DayKey::from_date(month.last_day()));
    let mut invoices = Vec::new();
    let mut not_billed = Vec::new();
    let mut errors = Vec::new();
    let mut licensees: Vec<_> = terms.licensees.iter().collect();
    licensees.sort_by(|a, b| a.terms.name.cmp(&b.terms.name));
    for record in licensees {
        let agreement = &record.terms;
        let Some(licensee) = store.licensee(&agreement.name).await? else { continue };
        let deliveries: Vec<(NaiveDate, u64)> = ledger
            .daily_counts(licensee.id, first, last)
            .await?
            .into_iter()
            .filter(|count| count.counted > 0)
            .map(|count| (count.day.date(), count.counted))
            .collect();
        let input = datapact_billing::InvoiceInput {
            plan: &agreement.plan,
            term: Term { starts: agreement.starts, ends: agreement.ends },
            month,
            books: &books,
            prices: &agreement.billing.prices,
            prepaid: prepaid(&terms, agreement),
            deliveries: &deliveries,
        };
        match compute_invoice(&input) {
            Ok(Some(invoice)) => invoices.push(NewInvoice {
                licensee: agreement.name.clone(),
                month,
                plan: invoice.plan,
                lines: invoice.lines,
                total: invoice.total,
                records: invoice.records,
                due: due_date(today, agreement.billing.payment_terms_days),
            }),
            Ok(None) => not_billed.push(NotBilled {
                licensee: agreement.name.clone(),
                reason: format!(
                    "no day of its term in {month} is priced for plan {:?} and it has no counted record on a priced day",
                    agreement.plan
                ),
            }),
            Err(error) => errors.push(format!("{}: {error}", agreement.name)),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid_request(format!(
            "no invoice was issued for {month}: {}; fix the terms (`datapact apply`) and run again",
            errors.join("; ")
        )));
    }
    Ok((invoices, not_billed))
}

/// A prepaid licensee's credit: what was added, what the ledger charged, what is left, in
/// micro-units of its currency (as charges are kept) and written out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CreditBalance {
    pub licensee: String,
    pub currency: Currency,
    pub credits: usize,
    pub credited: String,
    pub charged: String,
    pub balance: String,
    pub credited_micro: i64,
    pub charged_micro: i64,
    pub balance_micro: i64,
}

/// The credit balance of one licensee (or of every licensee with a credit): the store's credits
/// minus the ledger's committed charges.
pub async fn credit_balances(
    store: &dyn Store,
    ledger: &Ledger,
    licensee: Option<&str>,
) -> Result<Vec<CreditBalance>, Problem> {
    let mut by_licensee: std::collections::BTreeMap<String, (i64, Money, usize)> = Default::default();
    for credit in store.credits(licensee).await? {
        let entry =
            by_licensee.entry(credit.licensee).or_insert((credit.licensee_id, Money::zero(credit.amount.currency), 0));
        entry.1 = entry.1.checked_add(credit.amount).ok_or_else(|| Problem::unavailable("credits overflow"))?;
        entry.2 += 1;
    }
    let mut balances = Vec::with_capacity(by_licensee.len());
    for (name, (id, credited, credits)) in by_licensee {
        let currency = credited.currency;
        let credited_micro = credited.micro().ok_or_else(|| Problem::unavailable("credits overflow"))?;
        let charged_micro = i64::try_from(ledger.charged(id).await?).unwrap_or(i64::MAX);
        let balance_micro = credited_micro.saturating_sub(charged_micro);
        balances.push(CreditBalance {
            licensee: name,
            currency,
            credits,
            credited: format_micro(currency, credited_micro),
            charged: format_micro(currency, charged_micro),
            balance: format_micro(currency, balance_micro),
            credited_micro,
            charged_micro,
            balance_micro,
        });
    }
    Ok(balances)
}

/// Adds a prepaid credit to a licensee on a prepaid plan, in the currency of its price today
/// (the ledger charges its records in that currency). Idempotent by reference.
pub async fn add_credit(
    store: &dyn Store,
    licensee: &str,
    amount: &str,
    reference: &str,
    change: &Change,
) -> Result<CreditAdded, Problem> {
    let terms = crate::terms::current_terms(store).await?;
    let Some(record) = terms.licensees.iter().find(|record| record.terms.name == licensee) else {
        return Err(match store.licensee(licensee).await? {
            Some(_) => {
                Problem::conflict(format!("{licensee} has no agreement: apply terms that give it a prepaid plan"))
            }
            None => Problem::not_found(format!("no licensee named {licensee:?}")),
        });
    };
    if !prepaid(&terms, &record.terms) {
        return Err(Problem::conflict(format!(
            "{licensee} is billed in arrears, not prepaid: set `prepaid = true` on its plan or licensee entry in the \
             terms file and `datapact apply` it before adding credit"
        )));
    }
    let books = price_books(&store.terms_state().await?)?;
    let today = change.at.to_datetime().date_naive();
    let price = datapact_billing::price_on(&books, &record.terms.billing.prices, &record.terms.plan, today)
        .map_err(|error| Problem::conflict(format!("{licensee}'s price does not resolve: {error}")))?;
    let Some(price) = price else {
        return Err(Problem::conflict(format!(
            "nothing prices plan {:?} for {licensee} on {today}: add a [[price_book]] (or a negotiated price) first, \
             so the credit has a currency",
            record.terms.plan
        )));
    };
    let currency = price.currency();
    let amount = Money::parse(currency, amount).map_err(|error| {
        Problem::invalid_request(format!("AMOUNT {amount:?}: {error} ({licensee} pays in {currency})"))
    })?;
    let credit = NewCredit { licensee: licensee.to_owned(), amount, reference: reference.to_owned() };
    Ok(store.add_credit(credit, change).await?)
}

/// Issues a credit note of `amount` (a decimal in the invoice's currency) against invoice `number`:
/// the note, and the invoice as it stands at `change.at` after it. The CLI and the admin API both.
pub async fn issue_credit_note(
    store: &dyn Store,
    number: &str,
    amount: &str,
    reason: &str,
    change: &Change,
) -> Result<(datapact_store::StoredCreditNote, crate::statements::InvoiceView), Problem> {
    let invoice =
        store.invoice(number).await?.ok_or_else(|| Problem::not_found(format!("no invoice numbered {number:?}")))?;
    let amount = Money::parse(invoice.currency, amount).map_err(|error| {
        Problem::invalid_request(format!("amount {amount:?}: {error} (invoice {number} is in {})", invoice.currency))
    })?;
    let note = datapact_store::NewCreditNote { invoice: number.to_owned(), amount, reason: reason.to_owned() };
    let issued = store.issue_credit_note(note, change).await?;
    let view = crate::statements::views(store, std::slice::from_ref(&invoice), change.at).await?;
    let view = view.into_iter().next().ok_or_else(|| Problem::unavailable("the invoice's view"))?;
    Ok((issued, view))
}

/// Whether a licensee pays from a prepaid credit (its override, else its plan's).
fn prepaid(terms: &datapact_terms::Terms, licensee: &datapact_terms::LicenseeTerms) -> bool {
    let plan = terms.plans.iter().find(|plan| plan.name == licensee.plan);
    licensee.overrides.prepaid.unwrap_or_else(|| plan.is_some_and(|plan| plan.prepaid))
}

/// The 402 answered to every request of a suspended licensee: the overdue invoices by number,
/// with what is outstanding on each, in `detail` and one `errors` entry per invoice.
pub fn payment_required(licensee: &str, suspension: &Suspension) -> Problem {
    let owed: Vec<String> = suspension
        .invoices
        .iter()
        .map(|i| format!("invoice {} (due {}) has {} outstanding", i.number, i.due, i.outstanding))
        .collect();
    let detail = format!(
        "Service to {licensee} is suspended for non-payment: {}. Pay the overdue invoices; service resumes within \
         a second of the payment being recorded.",
        owed.join("; ")
    );
    let mut problem = Problem::plain(StatusCode::PAYMENT_REQUIRED, PAYMENT_REQUIRED, "Payment Required", detail);
    problem.reason = Some("payment_required");
    problem.errors = suspension
        .invoices
        .iter()
        .zip(&owed)
        .map(|(invoice, message)| {
            json!({
                "message": message,
                "invoice": invoice.number,
                "due": invoice.due,
                "outstanding": invoice.outstanding.amount(),
                "currency": invoice.outstanding.currency,
                "suspended_from": invoice.suspended_from,
            })
        })
        .collect();
    problem
}

/// How often the schedule looks (every second under the test clock, so tests can watch it); a
/// failed invoice run (no price book yet, a licensee that cannot be priced) is retried hourly.
const SCHEDULE_TICK: std::time::Duration = std::time::Duration::from_secs(60);
const TEST_CLOCK_TICK: std::time::Duration = std::time::Duration::from_secs(1);
const INVOICE_RETRY: std::time::Duration = std::time::Duration::from_secs(3600);

/// What the gateway does by itself, so nobody has to remember it: once a month is over, its
/// invoices ([`run_invoices`], idempotent, so a restart or a second try issues nothing twice), and
/// the dunning check that writes suspensions begun by time passing (and reinstatements) to the
/// audit log. One gateway writes a data dir's ledger (ARCHITECTURE.md), so one node runs this
/// schedule; with the test clock it follows the test's time.
pub fn spawn_schedule(state: crate::AppState) {
    let Some(ledger) = state.ledger.clone() else { return };
    let tick = if state.test_clock.is_some() { TEST_CLOCK_TICK } else { SCHEDULE_TICK };
    tokio::spawn(async move {
        let mut invoiced: Option<Month> = None;
        let mut retry_after: Option<std::time::Instant> = None;
        loop {
            let now = state.clock.now();
            let change = Change::new("gateway schedule", now);
            let today = now.to_datetime().date_naive();
            let previous = today.checked_sub_months(chrono::Months::new(1)).and_then(Month::of);
            let due = previous.filter(|month| invoiced != Some(*month));
            if let Some(month) = due
                && retry_after.is_none_or(|at| std::time::Instant::now() >= at)
            {
                match run_invoices(state.store.as_ref(), &ledger, month, &change).await {
                    Ok(run) => {
                        if !run.issued.is_empty() {
                            tracing::info!(%month, issued = run.issued.len(), "invoices issued by the schedule");
                        }
                        invoiced = Some(month);
                        retry_after = None;
                    }
                    Err(problem) => {
                        tracing::debug!(%month, detail = %problem.detail, "no scheduled invoice run; retrying in an hour");
                        retry_after = Some(std::time::Instant::now() + INVOICE_RETRY);
                    }
                }
            }
            match state.store.log_dunning_transitions(&change).await {
                Ok(logged) if !logged.is_empty() => tracing::info!(?logged, "dunning transitions logged"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "the dunning check failed; retrying at the next tick"),
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = state.shutdown.cancelled() => return,
            }
        }
    });
}

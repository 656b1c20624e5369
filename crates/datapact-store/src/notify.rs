//! Notifications and the webhooks that carry them: the values every store keeps (the SQL is each
//! store's). A notification is raised once (its dedupe key), fanned out to every webhook
//! subscribed to it when it is raised, and delivered with retries by a gateway.

use datapact_core::Timestamp;
use serde::Serialize;

/// What a notification tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum NotificationKind {
    /// A licensee counted 80 % of its monthly records.
    #[serde(rename = "cap.80")]
    CapWarning,
    /// A licensee counted all of its monthly records (a hard cap refuses from now; a soft cap bills overage).
    #[serde(rename = "cap.100")]
    CapReached,
    /// A prepaid licensee's credit fell below a tenth of what was added.
    #[serde(rename = "credit.low")]
    CreditLow,
    /// An invoice was issued.
    #[serde(rename = "invoice.issued")]
    InvoiceIssued,
    /// An invoice is past its due date and not paid in full.
    #[serde(rename = "invoice.overdue")]
    InvoiceOverdue,
    /// An invoice was paid in full.
    #[serde(rename = "invoice.paid")]
    InvoicePaid,
    /// A licensee is suspended for non-payment (402).
    #[serde(rename = "licensee.suspended")]
    LicenseeSuspended,
    /// A suspended licensee is served again.
    #[serde(rename = "licensee.reinstated")]
    LicenseeReinstated,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 8] = [
        NotificationKind::CapWarning,
        NotificationKind::CapReached,
        NotificationKind::CreditLow,
        NotificationKind::InvoiceIssued,
        NotificationKind::InvoiceOverdue,
        NotificationKind::InvoicePaid,
        NotificationKind::LicenseeSuspended,
        NotificationKind::LicenseeReinstated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::CapWarning => "cap.80",
            NotificationKind::CapReached => "cap.100",
            NotificationKind::CreditLow => "credit.low",
            NotificationKind::InvoiceIssued => "invoice.issued",
            NotificationKind::InvoiceOverdue => "invoice.overdue",
            NotificationKind::InvoicePaid => "invoice.paid",
            NotificationKind::LicenseeSuspended => "licensee.suspended",
            NotificationKind::LicenseeReinstated => "licensee.reinstated",
        }
    }

    pub fn parse(text: &str) -> Option<NotificationKind> {
        NotificationKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Every kind's name, comma-separated (for error messages).
    pub fn names() -> String {
        NotificationKind::ALL.map(NotificationKind::as_str).join(", ")
    }
}

impl std::fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A notification to raise ([`crate::Store::notify`]).
#[derive(Clone, Debug, PartialEq)]
pub struct NewNotification {
    pub kind: NotificationKind,
    /// The licensee it is about (its own webhooks get it, and every platform-wide one).
    pub licensee_id: i64,
    /// Raising a notification with a key already raised does nothing: e.g. `cap.80:7:2026-12`.
    pub dedupe_key: String,
    /// The event's `data`.
    pub payload: serde_json::Value,
    pub at: Timestamp,
}

/// A webhook to add ([`crate::Store::add_webhook`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWebhook {
    /// `None`: platform-wide, every licensee's notifications.
    pub licensee: Option<String>,
    /// `https://…` (or `http://` for a receiver on the same network).
    pub url: String,
    /// The kinds it receives; empty: all.
    pub events: Vec<NotificationKind>,
    /// The signing secret (`whsec_` and base64), made by the caller from the OS random source.
    pub secret: String,
}

/// A webhook as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredWebhook {
    pub id: i64,
    pub licensee: Option<String>,
    pub url: String,
    #[serde(skip)]
    pub secret: String,
    pub events: Vec<NotificationKind>,
    pub created_at: Timestamp,
    pub removed_at: Option<Timestamp>,
}

impl StoredWebhook {
    /// Whether it receives notifications of `kind`.
    pub fn receives(&self, kind: NotificationKind) -> bool {
        self.events.is_empty() || self.events.contains(&kind)
    }
}

/// A delivery a sender claimed ([`crate::Store::claim_webhook_deliveries`]): what to send where.
#[derive(Clone, Debug, PartialEq)]
pub struct DueDelivery {
    pub notification_id: i64,
    pub webhook_id: i64,
    pub url: String,
    pub secret: String,
    pub kind: NotificationKind,
    pub licensee: String,
    pub payload: serde_json::Value,
    pub raised_at: Timestamp,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// The outcome of one attempt ([`crate::Store::record_webhook_attempt`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookAttempt {
    pub notification_id: i64,
    pub webhook_id: i64,
    pub at: Timestamp,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why it failed (none when delivered).
    pub error: Option<String>,
    /// Delivered (a 2xx), or when to try again (`None`: give up, failed).
    pub outcome: AttemptOutcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    RetryAt(Timestamp),
    Failed,
}

/// One row of the delivery log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebhookDeliveryRecord {
    pub notification_id: i64,
    pub kind: NotificationKind,
    pub licensee: String,
    pub webhook_id: i64,
    pub url: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub raised_at: Timestamp,
    pub last_attempt_at: Option<Timestamp>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
}

/// The longest webhook URL accepted.
pub const MAX_WEBHOOK_URL: usize = 2_048;

/// Why a webhook URL is refused, if it is: it must be absolute `https://` or `http://` with a host,
/// printable, at most [`MAX_WEBHOOK_URL`] bytes.
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
    if url.len() > MAX_WEBHOOK_URL
        || url.chars().any(|c| c.is_control() || c.is_whitespace())
        || host.is_none_or(|host| host.is_empty() || host.starts_with(':'))
    {
        return Err(format!(
            "a webhook URL is an absolute https:// (or http://) URL with a host, without spaces, at most \
             {MAX_WEBHOOK_URL} bytes; got {url:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_urls_are_checked() {
        for kind in NotificationKind::ALL {
            assert_eq!(NotificationKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(NotificationKind::parse("cap.90"), None);
        assert!(check_webhook_url("https://hooks.example.com/datapact?x=1").is_ok());
        assert!(check_webhook_url("http://127.0.0.1:9000/hook").is_ok());
        for bad in ["", "ftp://x", "https://", "https:///path", "https://:80/", "https://a b", "example.com/hook"] {
            assert!(check_webhook_url(bad).is_err(), "{bad:?}");
        }
    }
}

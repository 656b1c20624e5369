//! Notifications at the edge: raising the ones metering notices (a licensee crossing 80 % or
//! 100 % of its monthly records, a prepaid credit running low), signing webhook bodies, and the
//! sender that delivers every pending notification with retries and backoff.
//!
//! Bodies are signed as Standard Webhooks specifies (<https://www.standardwebhooks.com>):
//! `webhook-id` (the notification's, the same on every retry, so a receiver can drop
//! duplicates), `webhook-timestamp` (seconds since the epoch) and `webhook-signature`:
//! `v1,` and the base64 HMAC-SHA256, keyed with the secret's base64-decoded bytes, of
//! `{id}.{timestamp}.{body}`. Delivery is at least once: a 2xx ends it; anything else is retried
//! after 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h and 4 h, then given up as failed.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use datapact_core::Timestamp;
use datapact_ledger::MonthKey;
use datapact_store::notify::{AttemptOutcome, DueDelivery, NewNotification, NotificationKind, WebhookAttempt};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::AppState;

/// Delays before each retry; the attempt after the last one is given up.
pub const RETRY_DELAYS: [Duration; 8] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
    Duration::from_secs(1_800),
    Duration::from_secs(3_600),
    Duration::from_secs(7_200),
    Duration::from_secs(14_400),
];
/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery is left to its sender before another may take it (a batch is sent
/// at once, so it takes at most [`ATTEMPT_TIMEOUT`]).
const LEASE: Duration = Duration::from_secs(60);
/// Deliveries claimed per round.
const BATCH: usize = 32;
/// The longest error text kept per attempt.
const MAX_ERROR: usize = 500;

/// A new signing secret from the OS random source: `whsec_` and 32 bytes in base64.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("whsec_{}", BASE64.encode(bytes)))
}

/// Adds a webhook for one licensee's notifications (or, without one, every licensee's) of the named
/// kinds (none: all), with a new secret; the stored webhook carries it (shown to the operator once).
pub async fn add_webhook(
    store: &dyn datapact_store::Store,
    licensee: Option<&str>,
    url: &str,
    events: &[String],
    change: &datapact_store::Change,
) -> Result<datapact_store::notify::StoredWebhook, crate::problem::Problem> {
    let kinds = events
        .iter()
        .map(|name| {
            NotificationKind::parse(name).ok_or_else(|| {
                crate::problem::Problem::invalid_request(format!(
                    "unknown notification {name:?}: use {}",
                    NotificationKind::names()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let secret = new_secret()
        .map_err(|error| crate::problem::Problem::unavailable(format!("no randomness for a secret: {error}")))?;
    let webhook = datapact_store::notify::NewWebhook {
        licensee: licensee.map(str::to_owned),
        url: url.to_owned(),
        events: kinds,
        secret,
    };
    Ok(store.add_webhook(webhook, change).await?)
}

/// `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the secret; `None` when the
/// secret is not `whsec_` and base64.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = BASE64.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

/// The JSON body of a notification: its kind, when it was raised, the licensee and its data.
pub fn body(delivery: &DueDelivery) -> Vec<u8> {
    let event = json!({
        "type": delivery.kind,
        "timestamp": delivery.raised_at.to_x_string(),
        "licensee": delivery.licensee,
        "data": delivery.payload,
    });
    event.to_string().into_bytes()
}

/// What a response's metering crossed, noticed after its commit.
#[derive(Clone, Copy, Debug)]
pub struct Crossing {
    pub licensee_id: i64,
    pub at: Timestamp,
    /// The monthly records limit, if any, and the month's count before and after the response.
    pub cap: Option<(u64, u64, u64)>,
    /// For a prepaid licensee: credits added and the balance before and after, in micro-units.
    pub credit: Option<(i64, i64, i64)>,
}

/// The notifications a response's counts cross into: 80 % and 100 % of the cap, and the credit
/// falling below a tenth of what was added. Pure; each carries its dedupe key (once a month per
/// threshold, once per credit level).
pub fn crossings(crossing: &Crossing) -> Vec<NewNotification> {
    let mut raised = Vec::new();
    let month = MonthKey::of(crossing.at);
    if let Some((limit, before, after)) = crossing.cap {
        // 80 %, rounded up: the first count at or past it.
        let warning = u64::try_from((u128::from(limit) * 8).div_ceil(10)).unwrap_or(u64::MAX);
        for (kind, threshold) in [(NotificationKind::CapWarning, warning), (NotificationKind::CapReached, limit)] {
            if limit > 0 && before < threshold && threshold <= after {
                raised.push(NewNotification {
                    kind,
                    licensee_id: crossing.licensee_id,
                    dedupe_key: format!("{kind}:{}:{month}", crossing.licensee_id),
                    payload: json!({ "month": month.to_string(), "limit": limit, "used": after }),
                    at: crossing.at,
                });
            }
        }
    }
    if let Some((credited, before, after)) = crossing.credit {
        let low = |balance: i64| i128::from(balance) * 10 < i128::from(credited);
        if credited > 0 && !low(before) && low(after) {
            raised.push(NewNotification {
                kind: NotificationKind::CreditLow,
                licensee_id: crossing.licensee_id,
                dedupe_key: format!("credit.low:{}:{credited}", crossing.licensee_id),
                payload: json!({ "credited_micro": credited, "balance_micro": after }),
                at: crossing.at,
            });
        }
    }
    raised
}

/// Raises what a response crossed ([`crossings`]), off the response's path (a store write must
/// not delay it).
pub fn raise(state: &AppState, notifications: Vec<NewNotification>) {
    if notifications.is_empty() {
        return;
    }
    let store = state.store.clone();
    tokio::spawn(async move {
        for notification in notifications {
            if let Err(error) = store.notify(notification).await {
                tracing::error!(%error, "a notification could not be raised");
            }
        }
    });
}

/// The delay before retrying after `attempts` failed attempts, or `None`: give up.
pub fn retry_delay(attempts: u32) -> Option<Duration> {
    RETRY_DELAYS.get(attempts.saturating_sub(1) as usize).copied()
}

/// Delivers pending notifications, forever: each round claims what is due and sends it.
pub fn spawn_sender(state: AppState) {
    let tick = if state.test_clock.is_some() { Duration::from_millis(100) } else { Duration::from_secs(1) };
    let client = match reqwest::Client::builder().timeout(ATTEMPT_TIMEOUT).user_agent("datapact-webhooks").build() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "no HTTP client for webhooks; notifications stay pending");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            let now = state.clock.now();
            match state.store.claim_webhook_deliveries(now, LEASE.as_millis() as i64, BATCH).await {
                // Sent at once, so a batch takes at most one attempt's timeout, well inside its lease:
                // a slow receiver never holds up the others, nor lets the lease lapse mid-batch.
                Ok(due) => {
                    let sends = due.iter().map(|delivery| async {
                        let attempt = send(&client, delivery, &state).await;
                        if let Err(error) = state.store.record_webhook_attempt(attempt).await {
                            tracing::error!(%error, "a webhook attempt could not be recorded");
                        }
                    });
                    futures_util::future::join_all(sends).await;
                }
                Err(error) => tracing::warn!(%error, "cannot claim webhook deliveries"),
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = state.shutdown.cancelled() => return,
            }
        }
    });
}

async fn send(client: &reqwest::Client, delivery: &DueDelivery, state: &AppState) -> WebhookAttempt {
    let id = format!("ntf_{}", delivery.notification_id);
    let body = body(delivery);
    let timestamp = state.clock.now().millis().div_euclid(1_000);
    let outcome = match signature(&delivery.secret, &id, timestamp, &body) {
        None => Err((None, "the webhook's secret is not whsec_ and base64".to_owned())),
        Some(signature) => {
            let request = client
                .post(&delivery.url)
                .header("content-type", "application/json")
                .header("webhook-id", &id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body);
            match request.send().await {
                Ok(response) if response.status().is_success() => Ok(response.status().as_u16()),
                Ok(response) => Err((Some(response.status().as_u16()), format!("answered {}", response.status()))),
                Err(error) => Err((None, error.to_string())),
            }
        }
    };
    let at = state.clock.now();
    let (status, error, outcome) = match outcome {
        Ok(status) => (Some(status), None, AttemptOutcome::Delivered),
        Err((status, error)) => {
            let error: String = error.chars().take(MAX_ERROR).collect();
            let outcome = match retry_delay(delivery.attempts + 1) {
                Some(delay) => AttemptOutcome::RetryAt(at.plus_millis(delay.as_millis() as i64)),
                None => AttemptOutcome::Failed,
            };
            tracing::warn!(notification = delivery.notification_id, url = %delivery.url, %error, "webhook attempt failed");
            (status, Some(error), outcome)
        }
    };
    WebhookAttempt {
        notification_id: delivery.notification_id,
        webhook_id: delivery.webhook_id,
        at,
        status,
        error,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The Standard Webhooks reference example.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert_eq!(signature("not-a-secret", "x", 0, b""), None);
        assert!(new_secret().unwrap().starts_with("whsec_"));
    }

    #[test]
    fn thresholds_are_crossed_once() {
        let at = Timestamp::parse_rfc3339("2026-12-05T12:00:00Z").unwrap();
        let kinds = |cap: Option<(u64, u64, u64)>, credit: Option<(i64, i64, i64)>| -> Vec<NotificationKind> {
            crossings(&Crossing { licensee_id: 7, at, cap, credit }).into_iter().map(|n| n.kind).collect()
        };
        assert_eq!(kinds(Some((1_000, 799, 800)), None), [NotificationKind::CapWarning]);
        assert_eq!(kinds(Some((1_000, 800, 900)), None), []);
        assert_eq!(
            kinds(Some((1_000, 700, 1_000)), None),
            [NotificationKind::CapWarning, NotificationKind::CapReached]
        );
        assert_eq!(kinds(Some((1_000, 999, 1_200)), None), [NotificationKind::CapReached], "a soft cap passed");
        assert_eq!(kinds(Some((5, 3, 4)), None), [NotificationKind::CapWarning], "80 % of 5 is 4");
        assert_eq!(kinds(Some((0, 0, 3)), None), []);
        assert_eq!(kinds(None, Some((1_000_000, 100_000, 99_999))), [NotificationKind::CreditLow]);
        assert_eq!(kinds(None, Some((1_000_000, 99_999, 0))), []);
        let keys: Vec<String> = crossings(&Crossing { licensee_id: 7, at, cap: Some((10, 0, 10)), credit: None })
            .into_iter()
            .map(|n| n.dedupe_key)
            .collect();
        assert_eq!(keys, ["cap.80:7:2026-12", "cap.100:7:2026-12"]);
        assert_eq!(retry_delay(1), Some(Duration::from_secs(5)));
        assert_eq!(retry_delay(8), Some(Duration::from_secs(14_400)));
        assert_eq!(retry_delay(9), None);
    }
}

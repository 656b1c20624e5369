//! What the ledger records: one [`UsageEvent`] per response and one [`Delivery`] per post it carried.

use datapact_core::purpose::Purpose;
use datapact_core::{Endpoint, KeyPrefix, Timestamp};

/// One response to a licensee, as metered: who asked, through which key, endpoint and purpose, and how many records
/// it delivered and counted. Written in the same commit as the response's [`Delivery`] rows, before its body leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageEvent {
    /// The licensee served.
    pub licensee_id: i64,
    /// The display prefix of the key used.
    pub key_prefix: KeyPrefix,
    /// The endpoint family.
    pub endpoint: Endpoint,
    /// The key's purpose.
    pub purpose: Purpose,
    /// The gateway's request id (`x-request-id`); links the event to its deliveries.
    pub request_id: String,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
    /// When the response was metered.
    pub at: Timestamp,
    /// Post records in the response's `data` (every one has a [`Delivery`]).
    pub delivered: u32,
    /// Of those, the ones counted against the monthly cap (see [`crate::meter`]). Never more than `delivered`.
    pub counted: u32,
    /// User objects in the response (reported, not counted against the post cap).
    pub user_reads: u32,
    /// Bytes of the response body.
    pub bytes: u64,
    /// What the counted records cost a prepaid licensee's credit, in micro-units of its currency (0 for every
    /// licensee billed in arrears). Charged in the same commit as the deliveries.
    pub charged: u64,
}

/// One post delivered to one licensee in one response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The licensee served.
    pub licensee_id: i64,
    /// The request that delivered it (the [`UsageEvent::request_id`]), so an idempotent retry can replay the same
    /// posts in the same order.
    pub request_id: String,
    /// The post.
    pub post_id: i64,
    /// The revision of its text that was served.
    pub revision: u32,
    /// When it was metered (the usage event's time).
    pub at: Timestamp,
    /// Whether it counted against the monthly cap (false when daily dedup made it free).
    pub counted: bool,
}

/// A row of the ledger: what a commit batch holds, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Row {
    /// A usage event.
    Usage(UsageEvent),
    /// A delivery.
    Delivery(Delivery),
}

impl UsageEvent {
    /// Whether the event is consistent with itself: it counts no more records than it delivered.
    pub fn is_consistent(&self) -> bool {
        self.counted <= self.delivered
    }
}

/// The revision a canary's delivery row carries (real posts start at revision 1): a canary is a
/// synthetic post made for one licensee, recorded so a trace can name who received it.
pub const CANARY_REVISION: u32 = 0;

/// The rows that record one response: its usage event, then one delivery per post in the order they were sent
/// (which is the order an idempotent replay sends them again). `posts` are the delivered `(post_id, revision)` pairs
/// — the allotted prefix of the page — and `counts` says which of them counted ([`crate::Allotment::counts`]).
///
/// Panics unless the event agrees with them (`delivered` = number of posts, `counted` = number counted), so a usage
/// event never disagrees with its deliveries.
pub fn response_rows(event: UsageEvent, posts: &[(i64, u32)], counts: &[bool], canaries: &[i64]) -> Vec<Row> {
    assert_eq!(posts.len(), counts.len(), "one count per delivered post");
    assert_eq!(event.delivered as usize, posts.len(), "the event's delivered total is its number of deliveries");
    assert_eq!(event.counted as usize, counts.iter().filter(|c| **c).count(), "the event's counted total");
    let deliveries = posts.iter().zip(counts).map(|(&(post_id, revision), &counted)| {
        Row::Delivery(Delivery {
            licensee_id: event.licensee_id,
            request_id: event.request_id.clone(),
            post_id,
            revision,
            at: event.at,
            counted,
        })
    });
    // Canaries are recorded (who received which) but are not records: never counted, not in the
    // event's `delivered`.
    let canaries = canaries.iter().map(|&post_id| {
        Row::Delivery(Delivery {
            licensee_id: event.licensee_id,
            request_id: event.request_id.clone(),
            post_id,
            revision: CANARY_REVISION,
            at: event.at,
            counted: false,
        })
    });
    let mut rows = Vec::with_capacity(posts.len() + canaries.len() + 1);
    rows.push(Row::Usage(event.clone()));
    rows.extend(deliveries);
    rows.extend(canaries);
    rows
}

impl From<UsageEvent> for Row {
    fn from(event: UsageEvent) -> Row {
        Row::Usage(event)
    }
}

impl From<Delivery> for Row {
    fn from(delivery: Delivery) -> Row {
        Row::Delivery(delivery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(delivered: u32, counted: u32) -> UsageEvent {
        UsageEvent {
            licensee_id: 7,
            key_prefix: KeyPrefix("dp_0123456789ab".into()),
            endpoint: Endpoint::Lookup,
            purpose: Purpose::Search,
            request_id: "req-9".into(),
            idempotency_key: Some("k".into()),
            at: Timestamp(5),
            delivered,
            counted,
            user_reads: 0,
            bytes: 10,
            charged: 0,
        }
    }

    #[test]
    fn a_response_is_its_event_then_its_deliveries_in_order() {
        let rows = response_rows(event(2, 1), &[(30, 2), (20, 1)], &[false, true], &[]);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], Row::Usage(event(2, 1)));
        assert_eq!(
            rows[2],
            Row::Delivery(Delivery {
                licensee_id: 7,
                request_id: "req-9".into(),
                post_id: 20,
                revision: 1,
                at: Timestamp(5),
                counted: true
            })
        );
        assert!(matches!(&rows[1], Row::Delivery(d) if d.post_id == 30 && !d.counted));
    }

    #[test]
    fn canaries_follow_the_deliveries_uncounted_and_outside_the_events_totals() {
        let rows = response_rows(event(2, 1), &[(30, 2), (20, 1)], &[false, true], &[25]);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0], Row::Usage(event(2, 1)), "the event still says 2 delivered, 1 counted");
        assert!(matches!(&rows[3], Row::Delivery(d) if d.post_id == 25 && d.revision == CANARY_REVISION && !d.counted));
    }

    #[test]
    #[should_panic(expected = "counted total")]
    fn an_event_that_disagrees_with_its_deliveries_is_refused() {
        response_rows(event(2, 2), &[(30, 2), (20, 1)], &[false, true], &[]);
    }
}

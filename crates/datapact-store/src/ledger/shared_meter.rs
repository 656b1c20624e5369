//! Decisions several gateway nodes share: with a [`RedisLimiter`], [`super::Ledger::reserve`]
//! reserves each page's counts in Redis (one atomic script per page, the same rule as the
//! in-process meter) instead of this process's memory, so a hard cap, a day's dedup and a prepaid
//! credit hold across every node. The PostgreSQL ledger stays the truth:
//!
//! - **Seeding.** What Redis lacks (a month's total, a day's counted posts, a licensee's charges)
//!   is read from the committed ledger and seeded, then the reservation is retried.
//! - **Settling.** A reservation whose rows committed is settled (its counts stay, now in the
//!   ledger too); one that did not commit is released (its counts are given back).
//! - **Reconciling.** A node that died between reserving and settling leaves records in Redis;
//!   when it starts again (it is then the only writer of its chain) [`super::Ledger::reconcile`]
//!   settles those whose request committed on its chain and releases the others: nothing is
//!   lost, nothing counted twice.
//!
//! Redis unavailable: every metered request fails closed (503); the caller never serves a page
//! the limiter did not reserve.

use datapact_limiter::{LimiterError, RedisLimiter, ReservationId, ReserveOutcome, ReserveRequest, Seed, SeedValue};

use datapact_core::Timestamp;
use datapact_ledger::RequestFingerprint;

use super::{Bounds, Claim, HeldKey, Ledger, MeterRequest, Reservation, Reserved, unavailable};
use crate::{StoreError, StoreResult};

/// How long an `Idempotency-Key` stays held for a request in flight if its node dies before
/// letting it go (longer than any request: the gateway abandons one after its request timeout).
const HELD_KEY_TTL: std::time::Duration = std::time::Duration::from_secs(120);

/// How many times a reservation is retried after seeding (each retry follows a seed, so more
/// means Redis keeps forgetting: fail closed).
const SEED_ATTEMPTS: usize = 4;

/// The shared limiter and the node this ledger reserves as.
#[derive(Clone)]
pub(super) struct SharedMeter {
    pub limiter: RedisLimiter,
    pub node: String,
}

/// What a settle or release after the commit needs.
#[derive(Clone)]
pub(super) struct Settle {
    pub limiter: RedisLimiter,
    pub id: ReservationId,
    /// To ask, after a failed commit, whether it committed after all (an answer lost in transit).
    pub ledger: Ledger,
}

impl std::fmt::Debug for Settle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settle").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Settle {
    /// After the commit: its counts stay when it committed; when it did not, they are given back —
    /// or, if the ledger refused it because the shared counts fell behind, those counts are
    /// forgotten, to be re-seeded from the ledger. If Redis fails here, the record stays for the
    /// node's next start to reconcile.
    pub(super) async fn after_commit(self, committed: &StoreResult<()>) {
        let Settle { limiter, id, ledger } = self;
        let outcome = match committed {
            Ok(()) => limiter.settle(&id).await.map(|_| ()),
            Err(StoreError::Conflict(_)) => match limiter.forget_counts(&id).await {
                Ok(()) => limiter.release(&id).await.map(|_| ()),
                Err(error) => Err(error),
            },
            Err(_) => match ledger.committed(&id.request_id).await {
                Ok(true) => limiter.settle(&id).await.map(|_| ()),
                Ok(false) => limiter.release(&id).await.map(|_| ()),
                // Not known: the record stays for the node's next start.
                Err(_) => Ok(()),
            },
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, request = id.request_id, "a shared reservation is left to reconcile");
        }
    }
}

impl std::fmt::Debug for SharedMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMeter").field("node", &self.node).finish_non_exhaustive()
    }
}

/// Every limiter error is the gateway's problem, not the licensee's (its inputs were checked
/// before): 503, fail closed.
pub(super) fn limiter_error(error: LimiterError) -> StoreError {
    unavailable(format!("the shared limiter (Redis) cannot decide: {error}"))
}

/// What [`Ledger::reconcile`] did with a node's reservations left from before a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Reservations whose request committed: settled (counted).
    pub settled: u64,
    /// Reservations whose request never committed: released (given back).
    pub released: u64,
}

impl Ledger {
    pub(super) async fn reserve_shared(&self, meter: &SharedMeter, request: MeterRequest<'_>) -> StoreResult<Reserved> {
        let ids: Vec<i64> = request.page.iter().map(|&(id, _)| id).collect();
        let asked = ReserveRequest {
            node: &meter.node,
            request_id: request.request_id,
            licensee_id: request.licensee_id,
            at: request.at,
            cap: request.cap,
            dedup: request.dedup,
            page: &ids,
            prepaid: request.prepaid.map(|terms| datapact_limiter::PrepaidTerms {
                per_record_micros: terms.per_record_micros,
                included_records: terms.included_records,
                credited_micros: terms.credited_micros,
            }),
        };
        for _ in 0..SEED_ATTEMPTS {
            let outcome = match meter.limiter.reserve(asked).await {
                Ok(outcome) => outcome,
                Err(error @ LimiterError::Unavailable(_)) => {
                    // A script that ran but whose answer was lost (a timeout) left a reservation:
                    // give it back now rather than at the node's next start (unknown ids are no-ops).
                    let id = ReservationId {
                        licensee_id: request.licensee_id,
                        node: meter.node.clone(),
                        request_id: request.request_id.to_owned(),
                        at: request.at,
                    };
                    let limiter = meter.limiter.clone();
                    tokio::spawn(async move {
                        let _ = limiter.release(&id).await;
                    });
                    return Err(limiter_error(error));
                }
                Err(error) => return Err(limiter_error(error)),
            };
            match outcome {
                ReserveOutcome::Refused(capped) => return Ok(Reserved::Refused(capped)),
                ReserveOutcome::NoCredit(exhausted) => return Ok(Reserved::NoCredit(exhausted)),
                ReserveOutcome::Unseeded(missing) => {
                    for seed in missing {
                        let value = self.committed_value(seed).await?;
                        meter.limiter.seed(&value, request.at).await.map_err(limiter_error)?;
                    }
                }
                ReserveOutcome::Serve { id, allotment, balance_before } => {
                    // A page of nothing (a stream checking its cap) holds nothing: settled at once,
                    // so the request's later pages can reserve under the same id.
                    let settle = if ids.is_empty() {
                        meter.limiter.settle(&id).await.map_err(limiter_error)?;
                        None
                    } else {
                        Some(Settle { limiter: meter.limiter.clone(), id, ledger: self.clone() })
                    };
                    return Ok(Reserved::Serve(Reservation {
                        reservation: None,
                        after: Vec::new(),
                        jobs: self.jobs.clone(),
                        shared: std::sync::Arc::clone(&self.shared),
                        licensee_id: request.licensee_id,
                        at: request.at,
                        generation: None,
                        posts: request.page[..allotment.delivered].to_vec(),
                        allotment,
                        balance_before,
                        settle,
                        bounds: Some(Bounds {
                            // A hard cap's limit (`remaining` with nothing used); `None` for soft or none.
                            hard_cap: request.cap.remaining(0),
                            credited_micros: request
                                .prepaid
                                .filter(|terms| terms.per_record_micros > 0)
                                .map(|terms| terms.credited_micros),
                        }),
                        submitted: false,
                        if_dropped: None,
                    }));
                }
            }
        }
        Err(unavailable("the shared limiter (Redis) keeps losing its counts; retry"))
    }

    /// Holds an `Idempotency-Key` in the shared limiter; if another request (on any node) holds
    /// it, what to answer: in progress, or a mismatch when it was sent for another request.
    pub(super) async fn hold_shared(
        &self,
        meter: &SharedMeter,
        licensee_id: i64,
        key: &str,
        fingerprint: RequestFingerprint,
        now: Timestamp,
    ) -> StoreResult<Result<HeldKey, Claim>> {
        let holder = format!("{}|{}|{}", meter.node, fingerprint.0.to_hex(), now.millis());
        match meter.limiter.hold_key(licensee_id, key, &holder, HELD_KEY_TTL).await.map_err(limiter_error)? {
            None => Ok(Ok(HeldKey { limiter: meter.limiter.clone(), holder })),
            Some(current) => {
                let mut parts = current.split('|').skip(1);
                let (held_for, since) = (parts.next(), parts.next().and_then(|ms| ms.parse::<i64>().ok()));
                Ok(Err(match (held_for, since) {
                    (Some(hex), Some(since)) if hex != fingerprint.0.to_hex() => {
                        let first_used_at = Timestamp(since);
                        let reusable_at =
                            first_used_at.plus_millis(datapact_ledger::idempotency::IDEMPOTENCY_WINDOW_MS);
                        Claim::Mismatch { first_used_at, reusable_at }
                    }
                    _ => Claim::InProgress,
                }))
            }
        }
    }

    /// The committed value Redis asked for, read from this ledger.
    async fn committed_value(&self, seed: Seed) -> StoreResult<SeedValue> {
        Ok(match seed {
            Seed::Month { licensee_id, month } => {
                SeedValue::Month { licensee_id, month, total: self.month_counted(licensee_id, month).await? }
            }
            Seed::Day { licensee_id, day } => {
                let mut posts: Vec<i64> = self.counted_on(licensee_id, day).await?.into_iter().collect();
                posts.sort_unstable();
                SeedValue::Day { licensee_id, day, posts }
            }
            Seed::Charged { licensee_id } => {
                SeedValue::Charged { licensee_id, micros: self.charged(licensee_id).await? }
            }
        })
    }

    /// Settles or releases the reservations this node left in the shared limiter before it
    /// stopped (a crash, a kill -9), by whether each request committed on this node's chain. Run
    /// at start-up, before serving: the chain's lock makes this process its only writer, so no
    /// commit of those requests can still be in flight. Nothing to do without a shared limiter.
    pub async fn reconcile(&self) -> StoreResult<Reconciled> {
        let Some(meter) = &self.meter else { return Ok(Reconciled::default()) };
        let mut done = Reconciled::default();
        for record in meter.limiter.outstanding(&meter.node).await.map_err(limiter_error)? {
            if self.committed(&record.id.request_id).await? {
                meter.limiter.settle(&record.id).await.map_err(limiter_error)?;
                done.settled += 1;
            } else {
                meter.limiter.release(&record.id).await.map_err(limiter_error)?;
                done.released += 1;
            }
        }
        Ok(done)
    }
}

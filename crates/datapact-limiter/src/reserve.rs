//! Cap, dedup and prepaid-credit reservations: `datapact_ledger::meter_page_within_credit` in one Lua script per
//! metered response, with records to settle, release and reconcile.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use datapact_core::Timestamp;
use datapact_ledger::{Allotment, Cap, CapMode, Capped, CreditExhausted, DayKey, Dedup, MonthKey, MonthlyRecords};

use crate::keys::{check_name, check_request_id};
use crate::{LimiterError, MAX_EXACT, MAX_PAGE, RedisLimiter, exact, exact_signed, parse_int};

static RESERVE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(concat!(include_str!("lua/prelude.lua"), include_str!("lua/reserve.lua"))));
static RELEASE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(concat!(include_str!("lua/prelude.lua"), include_str!("lua/release.lua"))));
static SEED: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("lua/seed.lua")));

const DAY_MS: i64 = 86_400_000;
/// A month total is kept this long after its month ends (then seeded again from the ledger if ever needed).
const MONTH_KEPT_MS: i64 = 40 * DAY_MS;
/// A day set is kept this long after its day ends.
const DAY_KEPT_MS: i64 = 2 * DAY_MS;
/// The charged total, a node's reservations and its index are kept this long after their last use.
const IDLE_KEPT_MS: i64 = 45 * DAY_MS;
/// The version of the reservation record's encoding.
const RECORD_VERSION: &str = "1";

/// A prepaid licensee's terms as of one request (see [`datapact_ledger::Prepaid`]): the balance is computed in Redis
/// from `credited_micros` minus what is charged there (committed + reserved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrepaidTerms {
    /// The charge per counted record past `included_records` (0: records are not charged), in micro-units.
    pub per_record_micros: u64,
    /// Counted records per month covered by the plan's fee, never charged.
    pub included_records: u64,
    /// Every credit added to the licensee, in micro-units (negative only if credits were withdrawn).
    pub credited_micros: i64,
}

/// One metered response to reserve.
#[derive(Clone, Copy, Debug)]
pub struct ReserveRequest<'a> {
    /// The gateway node serving it (1 to 64 of `A-Z a-z 0-9 _ . -`): its reservations are reconciled by node.
    pub node: &'a str,
    /// The request's id, unique per node (1 to 255 visible ASCII characters other than `|`).
    pub request_id: &'a str,
    /// The licensee.
    pub licensee_id: i64,
    /// The response's instant: its UTC month and day are the ones counted in.
    pub at: Timestamp,
    /// The monthly cap.
    pub cap: Cap,
    /// The dedup rule.
    pub dedup: Dedup,
    /// The candidate page: post ids in response order, at most [`MAX_PAGE`].
    pub page: &'a [i64],
    /// The prepaid credit, for a prepaid licensee.
    pub prepaid: Option<PrepaidTerms>,
}

/// Which reservation: enough to find its record and the keys it counted in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReservationId {
    /// The licensee.
    pub licensee_id: i64,
    /// The node that reserved it.
    pub node: String,
    /// The request's id.
    pub request_id: String,
    /// The response's instant.
    pub at: Timestamp,
}

impl ReservationId {
    /// The month it counted in.
    pub fn month(&self) -> MonthKey {
        MonthKey::of(self.at)
    }

    /// The day it counted in.
    pub fn day(&self) -> DayKey {
        DayKey::of(self.at)
    }
}

/// An unsettled reservation, as [`RedisLimiter::outstanding`] lists it: what a release would give back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservationRecord {
    /// Which reservation.
    pub id: ReservationId,
    /// Records it counted in its month.
    pub counted: u64,
    /// Micro-units it charged.
    pub charge: u64,
    /// The posts it counted in its day's dedup set (under daily dedup; empty otherwise).
    pub posts: Vec<i64>,
}

/// A value Redis lacks and the ledger must supply (see [`RedisLimiter::seed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seed {
    /// The records counted (committed) for the licensee in the month.
    Month {
        /// The licensee.
        licensee_id: i64,
        /// The month.
        month: MonthKey,
    },
    /// The posts counted (committed) for the licensee on the day (UTC).
    Day {
        /// The licensee.
        licensee_id: i64,
        /// The day.
        day: DayKey,
    },
    /// The micro-units charged (committed) to the licensee's prepaid credit, ever.
    Charged {
        /// The licensee.
        licensee_id: i64,
    },
}

/// A committed value read from the ledger, to [`RedisLimiter::seed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeedValue {
    /// The records counted for the licensee in the month.
    Month {
        /// The licensee.
        licensee_id: i64,
        /// The month.
        month: MonthKey,
        /// Records counted (committed).
        total: u64,
    },
    /// The posts counted for the licensee on the day.
    Day {
        /// The licensee.
        licensee_id: i64,
        /// The day.
        day: DayKey,
        /// The posts counted (committed), in any order.
        posts: Vec<i64>,
    },
    /// The micro-units charged to the licensee's prepaid credit.
    Charged {
        /// The licensee.
        licensee_id: i64,
        /// Micro-units charged (committed), ever.
        micros: u64,
    },
}

/// The answer to [`RedisLimiter::reserve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// At or past a hard cap: answer 429 `usage-capped`; nothing was reserved.
    Refused(Capped),
    /// The prepaid credit pays for no record: answer 402 `credits-depleted`; nothing was reserved.
    NoCredit(CreditExhausted),
    /// Deliver the allotted prefix. Its counts are reserved under `id`: settle it once committed, release it if not.
    Serve {
        /// The reservation to settle or release.
        id: ReservationId,
        /// What to deliver and count, as [`datapact_ledger::meter_page_within_credit`] decides it.
        allotment: Allotment,
        /// The prepaid balance before this reservation (credits minus charges committed and reserved), for a
        /// prepaid licensee.
        balance_before: Option<i64>,
    },
    /// Redis lacks these values (never seeded, flushed or expired): seed them from the ledger and retry. Nothing
    /// was reserved.
    Unseeded(Vec<Seed>),
}

impl RedisLimiter {
    /// Meters `request.page` against the licensee's shared counts, atomically, and reserves what it counts.
    ///
    /// The decision is [`datapact_ledger::meter_page_within_credit`]'s, applied to the month's total, the day's dedup
    /// set and the credit's balance as every node sees them: a hard cap is never crossed and a credit never goes
    /// below zero, whatever the number of nodes. One round trip. A request id this node already holds a reservation
    /// for is refused ([`LimiterError::Invalid`]), never counted twice.
    pub async fn reserve(&self, request: ReserveRequest<'_>) -> Result<ReserveOutcome, LimiterError> {
        let ReserveRequest { node, request_id, licensee_id, at, cap, dedup, page, prepaid } = request;
        check_name("node", node)?;
        check_request_id(request_id)?;
        if page.len() > MAX_PAGE {
            return Err(LimiterError::Invalid(format!("a page of {} posts: at most {MAX_PAGE}", page.len())));
        }
        let at_ms = check_instant(at)?;
        let (cap_kind, cap_limit) = match (cap.monthly_records, cap.mode) {
            (MonthlyRecords::Unlimited, _) => ("none", 0),
            (MonthlyRecords::Limit(limit), CapMode::Hard) => ("hard", exact("cap", limit)?),
            (MonthlyRecords::Limit(limit), CapMode::Soft) => ("soft", exact("cap", limit)?),
        };
        let daily = dedup == Dedup::Daily;
        let terms = match prepaid {
            Some(terms) => {
                exact("per-record price", terms.per_record_micros)?;
                exact("included records", terms.included_records)?;
                exact_signed("credits", terms.credited_micros)?;
                Some(terms)
            }
            None => None,
        };
        let month = MonthKey::of(at);
        let day = DayKey::of(at);
        let keys = self.keys();

        let mut invocation = RESERVE.prepare_invoke();
        invocation
            .key(keys.month(licensee_id, month))
            .key(keys.day(licensee_id, day))
            .key(keys.charged(licensee_id))
            .key(keys.pending(licensee_id, node))
            .arg(request_id)
            .arg(at_ms)
            .arg(month.to_string())
            .arg(day.to_string())
            .arg(cap_kind)
            .arg(cap_limit)
            .arg(if daily { "daily" } else { "none" })
            .arg(if terms.is_some() { "1" } else { "0" })
            .arg(terms.map_or(0, |t| t.per_record_micros))
            .arg(terms.map_or(0, |t| t.included_records))
            .arg(terms.map_or(0, |t| t.credited_micros))
            .arg(month_ttl(at_ms, month))
            .arg(day_ttl(at_ms, day))
            .arg(IDLE_KEPT_MS)
            .arg(IDLE_KEPT_MS);
        for post in page {
            invocation.arg(post.to_string());
        }
        // The node's index first, in the same round trip: `outstanding` must find every licensee it holds records
        // for. (It lives outside the licensee's slot, so it cannot be written by the script.)
        let index = keys.node_index(node);
        let mut pipe = redis::pipe();
        pipe.sadd(&index, licensee_id).ignore().pexpire(&index, IDLE_KEPT_MS).ignore().invoke_script(&invocation);
        let reply = self.pipe_with_script("reserve", &pipe, &RESERVE).await?;

        let id = ReservationId { licensee_id, node: node.to_owned(), request_id: request_id.to_owned(), at };
        parse_reserve(&reply, page.len(), terms.is_some(), id)
    }

    /// The reservation's ledger commit succeeded: forget its record, keep its counts (the ledger has them now).
    /// Returns whether it was outstanding; settling an unknown (or already settled or released) one changes nothing.
    pub async fn settle(&self, id: &ReservationId) -> Result<bool, LimiterError> {
        check_name("node", &id.node)?;
        check_request_id(&id.request_id)?;
        let key = self.keys().pending(id.licensee_id, &id.node);
        let mut connection = self.connection();
        let removed: u64 = self
            .bounded("settle", redis::cmd("HDEL").arg(key).arg(&id.request_id).query_async(&mut connection))
            .await?;
        Ok(removed > 0)
    }

    /// The reservation was not committed: give back its records, its posts and its charge, then forget it.
    /// Returns whether it was outstanding; releasing an unknown (or already settled or released) one changes nothing,
    /// so a release never undoes twice.
    pub async fn release(&self, id: &ReservationId) -> Result<bool, LimiterError> {
        check_name("node", &id.node)?;
        check_request_id(&id.request_id)?;
        let keys = self.keys();
        let (month, day) = (id.month(), id.day());
        let mut invocation = RELEASE.prepare_invoke();
        invocation
            .key(keys.pending(id.licensee_id, &id.node))
            .key(keys.month(id.licensee_id, month))
            .key(keys.day(id.licensee_id, day))
            .key(keys.charged(id.licensee_id))
            .arg(&id.request_id)
            .arg(month.to_string())
            .arg(day.to_string());
        let mut connection = self.connection();
        let reply: Vec<String> = self.bounded("release", invocation.invoke_async(&mut connection)).await?;
        match reply.as_slice() {
            [status] if status == "released" => Ok(true),
            [status] if status == "unknown" => Ok(false),
            [status, why] if status == "corrupt" => Err(LimiterError::Corrupt(why.clone())),
            _ => Err(LimiterError::Corrupt(format!("release: unexpected reply {reply:?}"))),
        }
    }

    /// Every unsettled reservation of `node`, ordered by licensee and request id: what a restarted node (or
    /// any node, for one that died) must settle or release after checking the ledger.
    pub async fn outstanding(&self, node: &str) -> Result<Vec<ReservationRecord>, LimiterError> {
        check_name("node", node)?;
        let keys = self.keys();
        let mut connection = self.connection();
        let members: Vec<String> = self
            .bounded("outstanding", redis::cmd("SMEMBERS").arg(keys.node_index(node)).query_async(&mut connection))
            .await?;
        let mut licensees = members
            .iter()
            .map(|member| parse_int::<i64>("node index member", member))
            .collect::<Result<Vec<_>, _>>()?;
        licensees.sort_unstable();
        if licensees.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for licensee_id in &licensees {
            pipe.hgetall(keys.pending(*licensee_id, node));
        }
        let hashes: Vec<BTreeMap<String, String>> =
            self.bounded("outstanding", pipe.query_async(&mut connection)).await?;
        if hashes.len() != licensees.len() {
            return Err(LimiterError::Corrupt("outstanding: one reply per licensee expected".into()));
        }
        let mut records = Vec::new();
        for (licensee_id, hash) in licensees.into_iter().zip(hashes) {
            for (request_id, record) in hash {
                records.push(parse_record(licensee_id, node, request_id, &record)?);
            }
        }
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }

    /// Sets a value Redis lacks from the ledger's committed state, only if it is still missing (so nodes seeding at
    /// once cannot overwrite counts reserved meanwhile). `now` dates the key's expiry. Returns whether it was set.
    pub async fn seed(&self, value: &SeedValue, now: Timestamp) -> Result<bool, LimiterError> {
        let now_ms = check_instant(now)?;
        let keys = self.keys();
        let mut invocation = SEED.prepare_invoke();
        match value {
            SeedValue::Month { licensee_id, month, total } => {
                invocation.key(keys.month(*licensee_id, *month)).arg("total").arg(month_ttl(now_ms, *month));
                invocation.arg(exact("month total", *total)?);
            }
            SeedValue::Day { licensee_id, day, posts } => {
                invocation.key(keys.day(*licensee_id, *day)).arg("day").arg(day_ttl(now_ms, *day));
                for post in posts {
                    invocation.arg(post.to_string());
                }
            }
            SeedValue::Charged { licensee_id, micros } => {
                invocation.key(keys.charged(*licensee_id)).arg("total").arg(IDLE_KEPT_MS);
                invocation.arg(exact("charged total", *micros)?);
            }
        }
        let mut connection = self.connection();
        let reply: Vec<String> = self.bounded("seed", invocation.invoke_async(&mut connection)).await?;
        match reply.as_slice() {
            [status] if status == "seeded" => Ok(true),
            [status] if status == "present" => Ok(false),
            _ => Err(LimiterError::Corrupt(format!("seed: unexpected reply {reply:?}"))),
        }
    }

    /// Runs a pipeline whose last (and only unignored) command invokes `script`, loading the script once if Redis
    /// lacks it (a restarted or flushed server), within one timeout.
    async fn pipe_with_script(
        &self,
        what: &str,
        pipe: &redis::Pipeline,
        script: &redis::Script,
    ) -> Result<Vec<String>, LimiterError> {
        let mut connection = self.connection();
        let call = async move {
            let (reply,): (Vec<String>,) = match pipe.query_async(&mut connection).await {
                Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                    script.load_async(&mut connection).await?;
                    pipe.query_async(&mut connection).await?
                }
                other => other?,
            };
            Ok(reply)
        };
        self.bounded(what, call).await
    }
}

/// The instant's milliseconds, if expiries computed from it stay exact.
fn check_instant(at: Timestamp) -> Result<i64, LimiterError> {
    let ms = at.millis();
    // Year 1970..=9999 (what `MonthKey` covers): far inside the exact range.
    if !(0..=253_402_300_799_999).contains(&ms) {
        return Err(LimiterError::Invalid(format!("instant {ms} ms is outside the years 1970 to 9999")));
    }
    Ok(ms)
}

/// Milliseconds from `now_ms` until a month total is dropped: 40 days after its month ends.
fn month_ttl(now_ms: i64, month: MonthKey) -> i64 {
    (month.next().start().millis() + MONTH_KEPT_MS - now_ms).max(1)
}

/// Milliseconds from `now_ms` until a day set is dropped: 2 days after its day ends.
fn day_ttl(now_ms: i64, day: DayKey) -> i64 {
    (day.start().millis() + DAY_MS + DAY_KEPT_MS - now_ms).max(1)
}

fn parse_reserve(
    reply: &[String],
    page_len: usize,
    prepaid: bool,
    id: ReservationId,
) -> Result<ReserveOutcome, LimiterError> {
    let (licensee_id, month, day) = (id.licensee_id, id.month(), id.day());
    let Some((status, rest)) = reply.split_first() else {
        return Err(LimiterError::Corrupt("reserve: empty reply".into()));
    };
    match (status.as_str(), rest) {
        ("serve", [delivered, counts, counted, cut, overage, used_after, charge, balance]) => {
            let delivered: usize = parse_int("delivered", delivered)?;
            let counted: u32 = parse_int("counted", counted)?;
            let overage: u32 = parse_int("overage", overage)?;
            let counts = counts
                .bytes()
                .map(|b| match b {
                    b'1' => Ok(true),
                    b'0' => Ok(false),
                    _ => Err(LimiterError::Corrupt(format!("reserve: counts {counts:?}"))),
                })
                .collect::<Result<Vec<bool>, _>>()?;
            let cut = match cut.as_str() {
                "1" => true,
                "0" => false,
                _ => return Err(LimiterError::Corrupt(format!("reserve: cut {cut:?}"))),
            };
            let balance_before = match (prepaid, balance.as_str()) {
                (false, "") => None,
                (true, balance) => Some(parse_int("balance", balance)?),
                (false, balance) => return Err(LimiterError::Corrupt(format!("reserve: balance {balance:?}"))),
            };
            let allotment = Allotment {
                delivered,
                counted,
                cut,
                overage,
                used_after: parse_int("used after", used_after)?,
                charge: parse_int("charge", charge)?,
                counts,
            };
            // The script's answer must be an allotment `meter_page_within_credit` could give for this page.
            let ones = allotment.counts.iter().filter(|c| **c).count();
            if allotment.delivered > page_len
                || allotment.counts.len() != allotment.delivered
                || ones != counted as usize
                || allotment.cut != (allotment.delivered < page_len)
                || allotment.overage > allotment.counted
                || allotment.used_after < u64::from(allotment.counted)
                || (!prepaid && allotment.charge != 0)
            {
                return Err(LimiterError::Corrupt(format!("reserve: inconsistent allotment {reply:?}")));
            }
            Ok(ReserveOutcome::Serve { id, allotment, balance_before })
        }
        ("refused", [limit, used]) => {
            Ok(ReserveOutcome::Refused(Capped { limit: parse_int("limit", limit)?, used: parse_int("used", used)? }))
        }
        ("nocredit", [balance, per_record]) => Ok(ReserveOutcome::NoCredit(CreditExhausted {
            balance_micros: parse_int("balance", balance)?,
            per_record_micros: parse_int("per-record price", per_record)?,
        })),
        ("unseeded", missing) if !missing.is_empty() => missing
            .iter()
            .map(|what| match what.as_str() {
                "month" => Ok(Seed::Month { licensee_id, month }),
                "day" => Ok(Seed::Day { licensee_id, day }),
                "charged" => Ok(Seed::Charged { licensee_id }),
                other => Err(LimiterError::Corrupt(format!("reserve: unknown missing value {other:?}"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(ReserveOutcome::Unseeded),
        ("duplicate", []) => Err(LimiterError::Invalid(format!(
            "request id {:?} already holds a reservation on node {:?}",
            id.request_id, id.node
        ))),
        ("corrupt", [why]) => Err(LimiterError::Corrupt(why.clone())),
        ("range", [why]) => Err(LimiterError::Invalid(why.clone())),
        _ => Err(LimiterError::Corrupt(format!("reserve: unexpected reply {reply:?}"))),
    }
}

/// Reads a record `1|at|month|month gen|day|day gen|charged gen|counted|charge|posts` back.
fn parse_record(
    licensee_id: i64,
    node: &str,
    request_id: String,
    record: &str,
) -> Result<ReservationRecord, LimiterError> {
    let corrupt = || LimiterError::Corrupt(format!("reservation {request_id:?} of node {node:?}: {record:?}"));
    let fields: Vec<&str> = record.split('|').collect();
    let [version, at, month, _month_gen, day, _day_gen, _charged_gen, counted, charge, posts] = fields.as_slice()
    else {
        return Err(corrupt());
    };
    if *version != RECORD_VERSION {
        return Err(corrupt());
    }
    let at = Timestamp(at.parse().map_err(|_| corrupt())?);
    check_instant(at).map_err(|_| corrupt())?;
    if *month != MonthKey::of(at).to_string() || !(day.is_empty() || *day == DayKey::of(at).to_string()) {
        return Err(corrupt());
    }
    let posts = if posts.is_empty() {
        Vec::new()
    } else {
        posts.split(',').map(|p| p.parse::<i64>().map_err(|_| corrupt())).collect::<Result<Vec<_>, _>>()?
    };
    let counted: u64 = counted.parse().map_err(|_| corrupt())?;
    let charge: u64 = charge.parse().map_err(|_| corrupt())?;
    if counted > MAX_EXACT || charge > MAX_EXACT {
        return Err(corrupt());
    }
    Ok(ReservationRecord {
        id: ReservationId { licensee_id, node: node.to_owned(), request_id, at },
        counted,
        charge,
        posts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn id() -> ReservationId {
        ReservationId { licensee_id: 1, node: "n".into(), request_id: "r".into(), at: Timestamp(0) }
    }

    #[test]
    fn script_replies_become_outcomes_or_errors_never_panics() {
        let month = MonthKey::of(Timestamp(0));
        let parse = |reply: &[&str], prepaid| parse_reserve(&strings(reply), 3, prepaid, id());
        let served = parse(&["serve", "2", "10", "1", "1", "0", "11", "5", "7"], true).unwrap();
        let ReserveOutcome::Serve { allotment, balance_before, .. } = served else { panic!("{served:?}") };
        assert_eq!(
            (allotment.delivered, allotment.counts, allotment.cut, balance_before),
            (2, vec![true, false], true, Some(7))
        );
        assert_eq!(
            parse(&["unseeded", "month", "charged"], false).unwrap(),
            ReserveOutcome::Unseeded(vec![Seed::Month { licensee_id: 1, month }, Seed::Charged { licensee_id: 1 }])
        );
        assert!(matches!(parse(&["duplicate"], false), Err(LimiterError::Invalid(_))));
        for bad in [
            &["serve", "2", "10", "2", "1", "0", "11", "0", ""][..],
            &["serve", "4", "1011", "3", "0", "0", "11", "0", ""],
            &["serve", "2", "1x", "1", "1", "0", "11", "0", ""],
            &["serve", "2", "10", "1", "0", "0", "11", "0", ""],
            &["serve", "2", "10", "1", "1", "0", "11", "0", "5"],
            &["serve", "2", "10", "1", "1", "0", "-1", "0", ""],
            &["refused", "x", "1"],
            &["unseeded"],
            &["unseeded", "week"],
            &["corrupt", "why"],
            &[],
            &["serve"],
        ] {
            assert!(matches!(parse(bad, false), Err(LimiterError::Corrupt(_))), "{bad:?}");
        }
    }

    #[test]
    fn records_read_back_or_are_reported() {
        let at = Timestamp::parse_rfc3339("2026-11-29T10:00:00Z").unwrap();
        let text = format!("1|{}|2026-11|123|2026-11-29|124||2|0|7,-9", at.millis());
        let record = parse_record(4, "n", "r".into(), &text).unwrap();
        assert_eq!((record.counted, record.charge, record.posts, record.id.at), (2, 0, vec![7, -9], at));
        for bad in [
            "",
            "2|0|1970-01|1||||0|0|",
            "1|0|1970-02|1||||0|0|",
            "1|0|1970-01|1|1970-01-02|||0|0|",
            "1|0|1970-01|1||||x|0|",
            "1|0|1970-01|1||||0|0|1,,2",
            "1|0|1970-01|1||||0|0",
            "1|-1|1969-12|1||||0|0|",
        ] {
            assert!(matches!(parse_record(4, "n", "r".into(), bad), Err(LimiterError::Corrupt(_))), "{bad:?}");
        }
    }

    #[test]
    fn keys_expire_after_their_period_ends() {
        let at = Timestamp::parse_rfc3339("2026-11-30T23:00:00Z").unwrap();
        assert_eq!(month_ttl(at.millis(), MonthKey::of(at)), 3_600_000 + 40 * DAY_MS);
        assert_eq!(day_ttl(at.millis(), DayKey::of(at)), 3_600_000 + 2 * DAY_MS);
        assert_eq!(day_ttl(at.millis() + 10 * DAY_MS, DayKey::of(at)), 1);
    }
}

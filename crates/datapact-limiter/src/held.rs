//! `Idempotency-Key`s held in flight across nodes: a key a request is being served under is held
//! in Redis (`SET NX` with an expiry) until its response is committed, so the same key sent to two
//! gateways at once is served once; the other is told it is in progress, and a retry after the
//! commit finds the committed response in the ledger.

use std::time::Duration;

use redis::Script;

use crate::{LimiterError, RedisLimiter};

/// Deletes a held key only if `holder` still holds it (a key that expired and was taken by another
/// request is not theirs to let go).
const LET_GO: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"#;

impl RedisLimiter {
    /// Holds `key` of `licensee_id` for `holder` (what the caller needs to know about whoever holds
    /// it: node, request fingerprint, time) for `ttl`, unless it is held: `None` when now held for
    /// `holder`, `Some(current holder)` when someone else holds it.
    pub async fn hold_key(
        &self,
        licensee_id: i64,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<String>, LimiterError> {
        check_key(key)?;
        let name = self.keys().held(licensee_id, key);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        for _ in 0..3 {
            let mut connection = self.connection();
            let set: Option<String> = self
                .bounded(
                    "hold key",
                    redis::cmd("SET")
                        .arg(&name)
                        .arg(holder)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut connection),
                )
                .await?;
            if set.is_some() {
                return Ok(None);
            }
            let current: Option<String> =
                self.bounded("read held key", redis::cmd("GET").arg(&name).query_async(&mut connection)).await?;
            // Let go of (or expired) between the two calls: try again.
            if let Some(current) = current {
                return Ok(Some(current));
            }
        }
        Err(LimiterError::Unavailable("a held key kept changing hands; retry".into()))
    }

    /// Forgets the counts a reservation was decided against — its month's total, its day's posts,
    /// its licensee's charges — so the next reservation re-seeds them from the ledger. For when the
    /// ledger refused a commit because these counts had fallen behind it (Redis lost some).
    pub async fn forget_counts(&self, id: &crate::ReservationId) -> Result<(), LimiterError> {
        let keys = self.keys();
        let names =
            [keys.month(id.licensee_id, id.month()), keys.day(id.licensee_id, id.day()), keys.charged(id.licensee_id)];
        let mut connection = self.connection();
        let _: i64 =
            self.bounded("forget counts", redis::cmd("DEL").arg(&names[..]).query_async(&mut connection)).await?;
        Ok(())
    }

    /// Lets `key` go if `holder` still holds it; `true` when it did.
    pub async fn let_go_key(&self, licensee_id: i64, key: &str, holder: &str) -> Result<bool, LimiterError> {
        check_key(key)?;
        let name = self.keys().held(licensee_id, key);
        let mut connection = self.connection();
        let deleted: i64 = self
            .bounded("let go of key", Script::new(LET_GO).key(name).arg(holder).invoke_async(&mut connection))
            .await?;
        Ok(deleted == 1)
    }
}

/// An `Idempotency-Key` as the gateway accepts it: 1 to 255 visible ASCII characters.
fn check_key(key: &str) -> Result<(), LimiterError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(LimiterError::Invalid(format!("Idempotency-Key {key:?}: use 1 to 255 visible ASCII characters")));
    }
    Ok(())
}

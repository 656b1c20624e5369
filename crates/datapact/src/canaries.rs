//! The canaries `datapact trace` looks for: every canary the ledger says was delivered, its
//! text regenerated from the secret ring (nothing else stores it; see `datapact_gateway::canary`).

use std::path::Path;
use std::sync::Arc;

use datapact_core::{Clock, PostId, SystemClock, Timestamp};
use datapact_gateway::canary::canary_post;
use datapact_store::ledger::LEDGER_FILE;

use crate::commands::LedgerPlace;
use datapact_store::secrets::SecretRing;
use datapact_trace::Canary;

/// Every delivered canary under every secret version of the ring (a canary was made under the
/// version current when it was served; the others' texts simply never match). Empty when the
/// data dir has no ledger or no ring: nothing was served, so no canary exists.
pub async fn delivered(data_dir: &Path, place: &LedgerPlace<'_>) -> anyhow::Result<Vec<Canary>> {
    let Some(ring) = SecretRing::load(data_dir)? else { return Ok(Vec::new()) };
    if let LedgerPlace::DataDir(dir) = place
        && !dir.join(LEDGER_FILE).is_file()
    {
        return Ok(Vec::new());
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ledger = place.open_for_reading(clock)?;
    let mut canaries = Vec::new();
    for (licensee, post_id) in ledger.canaries().await? {
        for secret in ring.versions() {
            let canary = canary_post(secret, licensee as u64, PostId::new(post_id), Timestamp::from_millis(0));
            canaries.push(Canary { licensee: licensee as u64, canary_id: post_id.to_string(), text: canary.post.text });
        }
    }
    Ok(canaries)
}

//! Proof from a leak that a deletion was not honoured (issue 10).
//!
//! A leak that holds a post deleted at `D` shows the licensee kept it, but not *when* the copy
//! was made: it may predate the deletion deadline `D + deadline`. It provably postdates that
//! instant when the same leak also holds something nobody could have had before it: a post or
//! revision that became available (was ingested) strictly after `D + deadline`. The leak was
//! then assembled after the deadline, with the deleted post still in it.
//!
//! [`judge_deletions`] decides this for every deleted post of a leak; it is pure (times are
//! milliseconds since the epoch) so it is tested exhaustively.

use serde::Serialize;

/// A post of the leak that was deleted, with the instant it was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DeletedInLeak {
    /// The post id.
    pub post_id: u64,
    /// When it was deleted (ms since the epoch).
    pub deleted_at: i64,
}

/// Something the leak holds, with the first instant anyone could have had it: a post (its first
/// revision's ingest) or a later revision whose exact text the leak holds (that revision's ingest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Witness {
    /// The post id.
    pub post_id: u64,
    /// The revision the leak holds (1 for the post itself).
    pub revision: u32,
    /// When it became available (ms since the epoch).
    pub available_at: i64,
}

/// What a leak proves about one deleted post.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum DeletionVerdict {
    /// The leak holds `witness`, available only after the deadline: it was assembled after the
    /// deadline, and still held the deleted post.
    Violation {
        /// The deleted post.
        post_id: u64,
        /// When it was deleted.
        deleted_at: i64,
        /// `deleted_at` + the deadline.
        deadline_at: i64,
        /// The newest thing the leak holds.
        witness: Witness,
    },
    /// Nothing in the leak is newer than the deadline: the copy may have been made before it.
    MayPredate {
        /// The deleted post.
        post_id: u64,
        /// When it was deleted.
        deleted_at: i64,
        /// `deleted_at` + the deadline.
        deadline_at: i64,
        /// The newest thing the leak holds, if anything.
        newest: Option<Witness>,
    },
}

impl DeletionVerdict {
    /// Whether the leak proves the deletion was not honoured.
    pub fn is_violation(&self) -> bool {
        matches!(self, DeletionVerdict::Violation { .. })
    }
}

/// For each deleted post (in the order given), whether the leak provably postdates its deletion
/// deadline (`deleted_at + deadline_ms`): it does exactly when some witness became available
/// strictly after that instant. The witness named is the newest (latest `available_at`; ties go
/// to the lowest post id, then revision), so the evidence is the strongest the leak holds.
pub fn judge_deletions(deleted: &[DeletedInLeak], deadline_ms: i64, witnesses: &[Witness]) -> Vec<DeletionVerdict> {
    let newest = witnesses.iter().copied().min_by(|a, b| {
        b.available_at.cmp(&a.available_at).then(a.post_id.cmp(&b.post_id)).then(a.revision.cmp(&b.revision))
    });
    deleted
        .iter()
        .map(|d| {
            let deadline_at = d.deleted_at.saturating_add(deadline_ms.max(0));
            match newest {
                Some(witness) if witness.available_at > deadline_at => {
                    DeletionVerdict::Violation { post_id: d.post_id, deleted_at: d.deleted_at, deadline_at, witness }
                }
                _ => DeletionVerdict::MayPredate { post_id: d.post_id, deleted_at: d.deleted_at, deadline_at, newest },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn w(post_id: u64, revision: u32, available_at: i64) -> Witness {
        Witness { post_id, revision, available_at }
    }

    #[test]
    fn a_post_newer_than_the_deadline_proves_it() {
        let deleted = [DeletedInLeak { post_id: 1, deleted_at: 10 * H }];
        let verdicts = judge_deletions(&deleted, 24 * H, &[w(1, 1, 0), w(2, 1, 5 * H), w(3, 1, 34 * H + 1)]);
        assert_eq!(
            verdicts,
            vec![DeletionVerdict::Violation {
                post_id: 1,
                deleted_at: 10 * H,
                deadline_at: 34 * H,
                witness: w(3, 1, 34 * H + 1)
            }]
        );
    }

    #[test]
    fn at_the_deadline_itself_it_may_predate() {
        let deleted = [DeletedInLeak { post_id: 1, deleted_at: 10 * H }];
        let verdicts = judge_deletions(&deleted, 24 * H, &[w(1, 1, 0), w(3, 2, 34 * H)]);
        assert!(!verdicts[0].is_violation());
        assert_eq!(
            verdicts[0],
            DeletionVerdict::MayPredate {
                post_id: 1,
                deleted_at: 10 * H,
                deadline_at: 34 * H,
                newest: Some(w(3, 2, 34 * H))
            }
        );
    }

    #[test]
    fn nothing_but_the_deleted_post_may_predate() {
        let deleted = [DeletedInLeak { post_id: 1, deleted_at: 10 * H }];
        assert!(!judge_deletions(&deleted, H, &[]).iter().any(DeletionVerdict::is_violation));
        assert!(!judge_deletions(&deleted, H, &[w(1, 1, 9 * H)]).iter().any(DeletionVerdict::is_violation));
    }

    proptest::proptest! {
        /// A violation exactly when some witness is strictly newer than the deadline; the witness
        /// named is in the leak and is the newest; a longer deadline never proves more.
        #[test]
        fn violation_iff_a_witness_is_newer_than_the_deadline(
            deleted in proptest::collection::vec((0u64..50, 0i64..1_000), 0..6),
            witnesses in proptest::collection::vec((0u64..50, 1u32..4, 0i64..2_000), 0..12),
            deadline in 0i64..1_000,
            more in 0i64..1_000,
        ) {
            let deleted: Vec<DeletedInLeak> =
                deleted.into_iter().map(|(post_id, deleted_at)| DeletedInLeak { post_id, deleted_at }).collect();
            let witnesses: Vec<Witness> = witnesses.into_iter().map(|(p, r, a)| w(p, r, a)).collect();
            let verdicts = judge_deletions(&deleted, deadline, &witnesses);
            let longer = judge_deletions(&deleted, deadline + more, &witnesses);
            proptest::prop_assert_eq!(verdicts.len(), deleted.len());
            let newest = witnesses.iter().map(|w| w.available_at).max();
            for ((d, v), l) in deleted.iter().zip(&verdicts).zip(&longer) {
                let expected = witnesses.iter().any(|w| w.available_at > d.deleted_at + deadline);
                proptest::prop_assert_eq!(v.is_violation(), expected);
                if let DeletionVerdict::Violation { witness, deadline_at, .. } = v {
                    proptest::prop_assert!(witnesses.contains(witness));
                    proptest::prop_assert!(witness.available_at > *deadline_at);
                    proptest::prop_assert_eq!(Some(witness.available_at), newest);
                }
                proptest::prop_assert!(!l.is_violation() || v.is_violation());
            }
        }
    }
}

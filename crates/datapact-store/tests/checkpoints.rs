//! Signing keys and signed checkpoints in every store (SQLite and PostgreSQL,
//! `stores::store_tests!`): a key is created once, rotation retires the key in use and keeps its
//! public half, checkpoints are numbered without gaps, signed by the key in use, made once per
//! slot, read newest first, and can be neither edited nor deleted.

use datapact_core::Timestamp;
use datapact_ledger::{ChainHead, Digest, PublicKey};
use datapact_store::checkpoints::KeyChange;
use datapact_store::{Change, StoreError};
use stores::TestStore;

mod stores;

const T0: Timestamp = Timestamp(1_790_000_000_000);

fn heads(seq: u64) -> Vec<ChainHead> {
    vec![
        ChainHead { chain: "node-a".into(), seq, hash: Digest([seq as u8; 32]) },
        ChainHead { chain: "node-b".into(), seq: seq + 1, hash: Digest([0xee; 32]) },
    ]
}

fn published(store_keys: &[datapact_store::checkpoints::StoredSigningKey]) -> Vec<PublicKey> {
    store_keys.iter().map(|k| k.public.clone()).collect()
}

async fn a_key_is_created_once_and_rotation_keeps_the_old_public_half(store: &TestStore) {
    assert!(store.signing_keys().await.unwrap().is_empty());
    // Signing before any key exists says what to do.
    let refused = store.record_checkpoint(heads(1), T0, None).await;
    assert!(
        matches!(&refused, Err(StoreError::Invalid(m)) if m.contains("ledger checkpoint rotate-key")),
        "{refused:?}"
    );

    let first = store.add_signing_key([1; 32], KeyChange::CreateIfNone, &Change::new("gateway", T0)).await.unwrap();
    // A second gateway starting later finds it and creates nothing.
    let again = store
        .add_signing_key([2; 32], KeyChange::CreateIfNone, &Change::new("gateway", Timestamp(T0.0 + 5)))
        .await
        .unwrap();
    assert_eq!(again.public, first.public);
    assert_eq!(store.signing_keys().await.unwrap().len(), 1);

    let rotated_at = Timestamp(T0.0 + 1_000);
    let second = store.add_signing_key([3; 32], KeyChange::Rotate, &Change::new("alice", rotated_at)).await.unwrap();
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].public.key_id, first.public.key_id);
    assert_eq!(keys[0].public.retired_at, Some(rotated_at));
    assert_eq!(keys[1].public.key_id, second.public.key_id);
    assert_eq!(keys[1].public.retired_at, None);
    // The retired key's seed is erased: nothing signs with it again.
    assert!(keys[0].signing_key().is_none());
    assert!(keys[1].signing_key().is_some());
    // Debug never shows a seed.
    assert!(!format!("{keys:?}").contains("[3, 3, 3"), "{keys:?}");
    // The changes are audited under their actors, without key material.
    let audit = store.audit_log(10).await.unwrap();
    let actions: Vec<(&str, &str)> = audit.iter().map(|e| (e.action.as_str(), e.actor.as_str())).collect();
    assert!(actions.contains(&("signing_key.created", "gateway")), "{actions:?}");
    assert!(actions.contains(&("signing_key.rotated", "alice")), "{actions:?}");
}

async fn checkpoints_are_numbered_signed_by_the_key_in_use_and_made_once_per_slot(store: &TestStore) {
    let first = store.add_signing_key([1; 32], KeyChange::CreateIfNone, &Change::new("gateway", T0)).await.unwrap();
    let one = store.record_checkpoint(heads(1), Timestamp(T0.0 + 10), Some(7)).await.unwrap().unwrap();
    assert_eq!(one.checkpoint.number, 1);
    assert_eq!(one.checkpoint.key_id, first.public.key_id);
    // The same slot again (another gateway got there second): nothing.
    assert_eq!(store.record_checkpoint(heads(2), Timestamp(T0.0 + 11), Some(7)).await.unwrap(), None);
    let two = store.record_checkpoint(heads(3), Timestamp(T0.0 + 20), None).await.unwrap().unwrap();
    assert_eq!(two.checkpoint.number, 2);

    // After a rotation, new checkpoints are signed by the new key; old ones still verify.
    let rotated_at = Timestamp(T0.0 + 100);
    let second = store.add_signing_key([9; 32], KeyChange::Rotate, &Change::new("alice", rotated_at)).await.unwrap();
    // Heads read before the rotation cannot be signed by the new key: read them again.
    let stale = store.record_checkpoint(heads(4), Timestamp(T0.0 + 99), Some(8)).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let three = store.record_checkpoint(heads(4), Timestamp(T0.0 + 101), Some(8)).await.unwrap().unwrap();
    assert_eq!((three.checkpoint.number, three.checkpoint.key_id.as_str()), (3, second.public.key_id.as_str()));

    let stored = store.checkpoints(None, 10).await.unwrap();
    let numbers: Vec<u64> = stored.iter().map(|c| c.checkpoint.number).collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert_eq!(stored[2], one);
    let keys = published(&store.signing_keys().await.unwrap());
    for checkpoint in &stored {
        checkpoint.verify(&keys).unwrap();
    }
    // Paging: below 3, one at a time.
    let page = store.checkpoints(Some(3), 1).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].checkpoint.number, 2);
    assert!(store.checkpoints(Some(1), 10).await.unwrap().is_empty());
}

async fn checkpoints_can_be_neither_edited_nor_deleted(store: &TestStore) {
    store.add_signing_key([1; 32], KeyChange::CreateIfNone, &Change::new("gateway", T0)).await.unwrap();
    store.record_checkpoint(heads(1), Timestamp(T0.0 + 10), None).await.unwrap().unwrap();
    for statement in ["UPDATE checkpoints SET at = at + 1", "DELETE FROM checkpoints"] {
        let refused = store.execute_raw(statement).await;
        assert!(matches!(&refused, Err(e) if e.contains("append-only")), "{statement}: {refused:?}");
    }
    if store.kind() == "postgres" {
        let refused = store.execute_raw("TRUNCATE checkpoints").await;
        assert!(matches!(&refused, Err(e) if e.contains("append-only")), "{refused:?}");
    }
    assert_eq!(store.checkpoints(None, 10).await.unwrap().len(), 1);
}

async fn concurrent_gateways_make_one_checkpoint_per_slot(store: &TestStore) {
    store.add_signing_key([1; 32], KeyChange::CreateIfNone, &Change::new("gateway", T0)).await.unwrap();
    let attempts = (0..8).map(|i| store.record_checkpoint(heads(1), Timestamp(T0.0 + i), Some(42)));
    let results = futures_util::future::join_all(attempts).await;
    let made = results.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
    assert_eq!(made, 1, "{results:?}");
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(store.checkpoints(None, 10).await.unwrap().len(), 1);
}

async fn a_rotation_never_retires_a_key_before_a_checkpoint_it_signed(store: &TestStore) {
    store.add_signing_key([1; 32], KeyChange::CreateIfNone, &Change::new("gateway", T0)).await.unwrap();
    // A gateway signed at T0 + 200 while a rotation asked for at T0 + 100 (another machine's
    // clock, or a rotation waiting for the writer lock) was on its way.
    let signed = store.record_checkpoint(heads(1), Timestamp(T0.0 + 200), None).await.unwrap().unwrap();
    let rotated =
        store.add_signing_key([2; 32], KeyChange::Rotate, &Change::new("alice", Timestamp(T0.0 + 100))).await.unwrap();
    assert_eq!(rotated.public.created_at, Timestamp(T0.0 + 201));
    let keys = published(&store.signing_keys().await.unwrap());
    assert_eq!(keys[0].retired_at, Some(Timestamp(T0.0 + 201)));
    // The checkpoint already published still verifies.
    signed.verify(&keys).unwrap();
}

store_tests!(
    a_rotation_never_retires_a_key_before_a_checkpoint_it_signed,
    a_key_is_created_once_and_rotation_keeps_the_old_public_half,
    checkpoints_are_numbered_signed_by_the_key_in_use_and_made_once_per_slot,
    checkpoints_can_be_neither_edited_nor_deleted,
    concurrent_gateways_make_one_checkpoint_per_slot,
);

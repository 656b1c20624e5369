//! Deletion compliance in every store (SQLite and PostgreSQL, `stores::store_tests!`): jobs (one
//! active per type per licensee, scoped to their licensee, uploads taken once, expiry), deletion
//! notices (first one kept, append-only) and deletion violations.

use datapact_core::{PostId, Timestamp};
use datapact_store::compliance::{JobStatus, NewComplianceJob, NewDeletionViolation, UPLOAD_WINDOW_MS};
use datapact_store::{Change, StoreError};
use stores::TestStore;

mod stores;

const T0: Timestamp = Timestamp(1_790_000_000_000);

async fn licensees(store: &TestStore) -> (i64, i64) {
    let change = Change::new("test", T0);
    let acme = store.create_licensee("acme", &change).await.unwrap().id;
    let other = store.create_licensee("other", &change).await.unwrap().id;
    (acme, other)
}

fn new_job(id: &str, licensee_id: i64, at: Timestamp) -> NewComplianceJob {
    NewComplianceJob {
        id: id.into(),
        licensee_id,
        job_type: "tweets".into(),
        name: Some("nightly".into()),
        resumable: false,
        created_at: at,
    }
}

async fn one_job_per_type_at_a_time_per_licensee(store: &TestStore) {
    let (acme, other) = licensees(store).await;
    let job = store.create_compliance_job(new_job("101", acme, T0)).await.unwrap();
    assert_eq!(job.stored_status, JobStatus::Created);
    assert_eq!(job.upload_expires_at, Timestamp(T0.0 + UPLOAD_WINDOW_MS));
    assert_eq!(job.name.as_deref(), Some("nightly"));
    // A second job of the type while the first is active: refused.
    let again = store.create_compliance_job(new_job("102", acme, Timestamp(T0.0 + 1000))).await;
    assert!(matches!(&again, Err(StoreError::Conflict(m)) if m.contains("101")), "{again:?}");
    // Another licensee is not held up.
    store.create_compliance_job(new_job("201", other, T0)).await.unwrap();
    // Unknown types and bad ids are refused before anything is stored.
    let mut users = new_job("103", acme, T0);
    users.job_type = "users".into();
    assert!(matches!(store.create_compliance_job(users).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.create_compliance_job(new_job("1x", other, T0)).await, Err(StoreError::Invalid(_))));
    // Once its upload URL has expired, the job is expired and no longer blocks.
    let later = Timestamp(T0.0 + UPLOAD_WINDOW_MS + 1);
    let old = store.compliance_job(acme, "101").await.unwrap().unwrap();
    assert_eq!(old.status_at(later), JobStatus::Expired);
    store.create_compliance_job(new_job("104", acme, later)).await.unwrap();
    let listed: Vec<String> =
        store.compliance_jobs(acme, Some("tweets")).await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(listed, ["104", "101"]);
    assert!(store.compliance_jobs(acme, Some("users")).await.unwrap().is_empty());
}

async fn a_job_is_its_licensees_alone_and_its_upload_is_taken_once(store: &TestStore) {
    let (acme, other) = licensees(store).await;
    store.create_compliance_job(new_job("301", acme, T0)).await.unwrap();
    // Another licensee can neither see nor upload to it.
    assert_eq!(store.compliance_job(other, "301").await.unwrap(), None);
    assert!(matches!(store.start_compliance_job(other, "301", T0).await, Err(StoreError::NotFound(_))));
    assert!(store.compliance_jobs(other, None).await.unwrap().is_empty());
    let started = store.start_compliance_job(acme, "301", Timestamp(T0.0 + 5)).await.unwrap();
    assert_eq!(started.stored_status, JobStatus::InProgress);
    assert_eq!(started.uploaded_at, Some(Timestamp(T0.0 + 5)));
    // A second upload is refused; so is finishing it for another licensee.
    assert!(matches!(store.start_compliance_job(acme, "301", T0).await, Err(StoreError::Conflict(_))));
    let wrong = store.finish_compliance_job(other, "301", Ok(("x".into(), 1)), T0).await;
    assert!(matches!(wrong, Err(StoreError::NotFound(_))), "{wrong:?}");
    assert_eq!(store.compliance_job_result(acme, "301").await.unwrap(), None, "not complete yet");
    let done = store.finish_compliance_job(acme, "301", Ok(("{\"id\":\"1\"}\n".into(), 1)), Timestamp(T0.0 + 9)).await;
    let done = done.unwrap();
    assert_eq!((done.stored_status, done.result_lines), (JobStatus::Complete, Some(1)));
    assert_eq!(store.compliance_job_result(acme, "301").await.unwrap().as_deref(), Some("{\"id\":\"1\"}\n"));
    assert_eq!(store.compliance_job_result(other, "301").await.unwrap(), None);
    // A complete job no longer blocks a new one; a failed upload records why.
    store.create_compliance_job(new_job("302", acme, Timestamp(T0.0 + 10))).await.unwrap();
    store.start_compliance_job(acme, "302", Timestamp(T0.0 + 11)).await.unwrap();
    let failed = store.finish_compliance_job(acme, "302", Err("line 3 is not an id".into()), T0).await.unwrap();
    assert_eq!((failed.stored_status, failed.error.as_deref()), (JobStatus::Failed, Some("line 3 is not an id")));
    // Past its upload window a job cannot be uploaded to.
    store.create_compliance_job(new_job("303", acme, T0)).await.unwrap();
    let late = store.start_compliance_job(acme, "303", Timestamp(T0.0 + UPLOAD_WINDOW_MS + 1)).await;
    assert!(matches!(&late, Err(StoreError::Conflict(m)) if m.contains("expired")), "{late:?}");
}

async fn the_first_deletion_notice_is_kept_and_notices_are_append_only(store: &TestStore) {
    let (acme, other) = licensees(store).await;
    let (p1, p2) = (PostId::new(11), PostId::new(12));
    let deleted = Timestamp(T0.0 - 1000);
    let new = store.record_deletion_notices(acme, vec![(p1, deleted), (p2, deleted)], "feed", T0).await.unwrap();
    assert_eq!(new, 2);
    let again = store.record_deletion_notices(acme, vec![(p1, deleted)], "job:7", Timestamp(T0.0 + 50)).await.unwrap();
    assert_eq!(again, 0);
    store.record_deletion_notices(other, vec![(p1, deleted)], "job:7", Timestamp(T0.0 + 50)).await.unwrap();
    let notices = store.deletion_notices(Some(acme)).await.unwrap();
    assert_eq!(notices.len(), 2);
    assert!(notices.iter().all(|n| n.notified_at == T0 && n.via == "feed" && n.deleted_at == deleted));
    assert_eq!(store.deletion_notices(None).await.unwrap().len(), 3);
    assert!(store.execute_raw("UPDATE deletion_notices SET notified_at = 0").await.is_err());
    assert!(store.execute_raw("DELETE FROM deletion_notices").await.is_err());
    assert_eq!(store.deletion_notices(None).await.unwrap().len(), 3);
}

async fn deletion_violations_keep_their_evidence(store: &TestStore) {
    let (acme, _) = licensees(store).await;
    let violation = NewDeletionViolation {
        licensee_id: acme,
        post_id: PostId::new(42),
        deleted_at: T0,
        deadline_at: Timestamp(T0.0 + 86_400_000),
        notified_at: Some(Timestamp(T0.0 + 10)),
        finding_id: None,
        evidence: serde_json::json!({"witness": {"post_id": 43, "revision": 1}}),
        recorded_at: Timestamp(T0.0 + 99),
    };
    store.record_deletion_violations(vec![violation.clone()]).await.unwrap();
    let stored = store.deletion_violations(Some(acme)).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].licensee, "acme");
    assert_eq!(stored[0].violation, violation);
    assert!(store.deletion_violations(Some(acme + 1000)).await.unwrap().is_empty());
}

async fn concurrent_creations_get_one_job(store: &TestStore) {
    let (acme, _) = licensees(store).await;
    // Eight requests at once (eight pool connections on PostgreSQL): exactly one job, seven refusals.
    let attempts = (0..8).map(|i| store.create_compliance_job(new_job(&format!("50{i}"), acme, T0)));
    let results = futures_util::future::join_all(attempts).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    let refused = results.iter().filter(|r| matches!(r, Err(StoreError::Conflict(_)))).count();
    assert_eq!((created, refused), (1, 7), "{results:?}");
    assert_eq!(store.compliance_jobs(acme, None).await.unwrap().len(), 1);
}

store_tests!(
    concurrent_creations_get_one_job,
    one_job_per_type_at_a_time_per_licensee,
    a_job_is_its_licensees_alone_and_its_upload_is_taken_once,
    the_first_deletion_notice_is_kept_and_notices_are_append_only,
    deletion_violations_keep_their_evidence,
);

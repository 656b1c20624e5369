//! Deletion compliance in PostgreSQL: jobs, deletion notices, deletion violations (the rules and
//! SQL are `crate::compliance`'s, shared with SQLite). Writes run under the writer lock, so the
//! one-active-job rule holds whatever number of processes create jobs.

use datapact_core::{PostId, Timestamp};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{pg, rows};
use crate::compliance::{
    ComplianceJob, DOWNLOAD_WINDOW_MS, DeletionNotice, DeletionViolation, JobStatus, NewComplianceJob,
    NewDeletionViolation, UPLOAD_WINDOW_MS, check_new_job, one_job_at_a_time, sql,
};
use crate::{StoreError, StoreResult};

fn job_at(row: &PgRow) -> StoreResult<ComplianceJob> {
    let status: String = row.try_get(5)?;
    Ok(ComplianceJob {
        id: row.try_get(0)?,
        licensee_id: row.try_get(1)?,
        job_type: row.try_get(2)?,
        name: row.try_get(3)?,
        resumable: row.try_get(4)?,
        stored_status: JobStatus::parse(&status)
            .ok_or_else(|| StoreError::Unavailable(format!("stored job status {status:?} is unknown")))?,
        created_at: Timestamp(row.try_get(6)?),
        upload_expires_at: Timestamp(row.try_get(7)?),
        download_expires_at: Timestamp(row.try_get(8)?),
        uploaded_at: row.try_get::<Option<i64>, _>(9)?.map(Timestamp),
        finished_at: row.try_get::<Option<i64>, _>(10)?.map(Timestamp),
        error: row.try_get(11)?,
        result_lines: row.try_get::<Option<i64>, _>(12)?.map(|n| n.max(0) as u64),
    })
}

pub(super) async fn job(conn: &mut PgConnection, licensee_id: i64, id: &str) -> StoreResult<Option<ComplianceJob>> {
    let row = sqlx::query(pg!(sql::JOB)).bind(licensee_id).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(job_at).transpose()
}

pub(super) async fn jobs(
    conn: &mut PgConnection,
    licensee_id: i64,
    job_type: Option<&str>,
) -> StoreResult<Vec<ComplianceJob>> {
    let found = sqlx::query(pg!(sql::JOBS_OF_TYPE)).bind(licensee_id).bind(job_type).fetch_all(&mut *conn).await?;
    rows(found, job_at)
}

pub(super) async fn create_job(conn: &mut PgConnection, new: NewComplianceJob) -> StoreResult<ComplianceJob> {
    check_new_job(&new).map_err(StoreError::Invalid)?;
    let active = sqlx::query(pg!(sql::ACTIVE_JOBS))
        .bind(new.licensee_id)
        .bind(&new.job_type)
        .bind(new.created_at.0)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(active) = active {
        return Err(StoreError::Conflict(one_job_at_a_time(&job_at(&active)?)));
    }
    sqlx::query(pg!(sql::INSERT_JOB))
        .bind(&new.id)
        .bind(new.licensee_id)
        .bind(&new.job_type)
        .bind(&new.name)
        .bind(new.resumable)
        .bind(new.created_at.0)
        .bind(new.created_at.0 + UPLOAD_WINDOW_MS)
        .bind(new.created_at.0 + DOWNLOAD_WINDOW_MS)
        .execute(&mut *conn)
        .await?;
    job(conn, new.licensee_id, &new.id).await?.ok_or_else(|| StoreError::NotFound("job vanished".into()))
}

async fn refused(conn: &mut PgConnection, licensee_id: i64, id: &str, at: Timestamp) -> StoreError {
    match job(conn, licensee_id, id).await {
        Ok(None) => StoreError::NotFound(format!("no compliance job {id} for this licensee")),
        Ok(Some(job)) => StoreError::Conflict(format!(
            "compliance job {id} is {}: its upload can no longer be taken",
            job.status_at(at).as_str()
        )),
        Err(error) => error,
    }
}

pub(super) async fn start_job(
    conn: &mut PgConnection,
    licensee_id: i64,
    id: &str,
    at: Timestamp,
) -> StoreResult<ComplianceJob> {
    let done = sqlx::query(pg!(sql::START_JOB)).bind(licensee_id).bind(id).bind(at.0).execute(&mut *conn).await?;
    if done.rows_affected() == 0 {
        return Err(refused(conn, licensee_id, id, at).await);
    }
    job(conn, licensee_id, id).await?.ok_or_else(|| StoreError::NotFound(format!("no compliance job {id}")))
}

pub(super) async fn finish_job(
    conn: &mut PgConnection,
    licensee_id: i64,
    id: &str,
    outcome: Result<(String, u64), String>,
    at: Timestamp,
) -> StoreResult<ComplianceJob> {
    let done = match outcome {
        Ok((result, lines)) => {
            sqlx::query(pg!(sql::COMPLETE_JOB))
                .bind(licensee_id)
                .bind(id)
                .bind(at.0)
                .bind(result)
                .bind(lines as i64)
                .execute(&mut *conn)
                .await?
        }
        Err(error) => {
            sqlx::query(pg!(sql::FAIL_JOB))
                .bind(licensee_id)
                .bind(id)
                .bind(at.0)
                .bind(error)
                .execute(&mut *conn)
                .await?
        }
    };
    if done.rows_affected() == 0 {
        return Err(refused(conn, licensee_id, id, at).await);
    }
    job(conn, licensee_id, id).await?.ok_or_else(|| StoreError::NotFound(format!("no compliance job {id}")))
}

pub(super) async fn job_result(conn: &mut PgConnection, licensee_id: i64, id: &str) -> StoreResult<Option<String>> {
    let row = sqlx::query(pg!(sql::JOB_RESULT)).bind(licensee_id).bind(id).fetch_optional(&mut *conn).await?;
    Ok(match row {
        Some(row) => row.try_get(0)?,
        None => None,
    })
}

pub(super) async fn record_notices(
    conn: &mut PgConnection,
    licensee_id: i64,
    notices: &[(PostId, Timestamp)],
    via: &str,
    at: Timestamp,
) -> StoreResult<u64> {
    let mut added = 0;
    for (post, deleted_at) in notices {
        added += sqlx::query(pg!(sql::INSERT_NOTICE))
            .bind(licensee_id)
            .bind(post.get())
            .bind(deleted_at.0)
            .bind(at.0)
            .bind(via)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(added)
}

pub(super) async fn notices(conn: &mut PgConnection, licensee_id: Option<i64>) -> StoreResult<Vec<DeletionNotice>> {
    let found = sqlx::query(pg!(sql::NOTICES)).bind(licensee_id).fetch_all(&mut *conn).await?;
    rows(found, |row| {
        Ok(DeletionNotice {
            licensee_id: row.try_get(0)?,
            post_id: PostId::new(row.try_get(1)?),
            deleted_at: Timestamp(row.try_get(2)?),
            notified_at: Timestamp(row.try_get(3)?),
            via: row.try_get(4)?,
        })
    })
}

pub(super) async fn record_violations(conn: &mut PgConnection, violations: &[NewDeletionViolation]) -> StoreResult<()> {
    for v in violations {
        sqlx::query(pg!(sql::INSERT_VIOLATION))
            .bind(v.licensee_id)
            .bind(v.post_id.get())
            .bind(v.deleted_at.0)
            .bind(v.deadline_at.0)
            .bind(v.notified_at.map(|t| t.0))
            .bind(v.finding_id)
            .bind(v.evidence.to_string())
            .bind(v.recorded_at.0)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub(super) async fn violations(
    conn: &mut PgConnection,
    licensee_id: Option<i64>,
) -> StoreResult<Vec<DeletionViolation>> {
    let found = sqlx::query(pg!(sql::VIOLATIONS)).bind(licensee_id).fetch_all(&mut *conn).await?;
    rows(found, |row| {
        let evidence: String = row.try_get(8)?;
        Ok(DeletionViolation {
            id: row.try_get(0)?,
            licensee: row.try_get(1)?,
            violation: NewDeletionViolation {
                licensee_id: row.try_get(2)?,
                post_id: PostId::new(row.try_get(3)?),
                deleted_at: Timestamp(row.try_get(4)?),
                deadline_at: Timestamp(row.try_get(5)?),
                notified_at: row.try_get::<Option<i64>, _>(6)?.map(Timestamp),
                finding_id: row.try_get(7)?,
                evidence: serde_json::from_str(&evidence).unwrap_or(serde_json::Value::String(evidence)),
                recorded_at: Timestamp(row.try_get(9)?),
            },
        })
    })
}

//! Deletion compliance in SQLite: jobs, deletion notices, deletion violations (the rules and SQL
//! are `crate::compliance`'s, shared with PostgreSQL).

use datapact_core::{PostId, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::compliance::{
    ComplianceJob, DeletionNotice, DeletionViolation, JobStatus, NewComplianceJob, NewDeletionViolation, check_new_job,
    one_job_at_a_time, sql,
};
use crate::compliance::{DOWNLOAD_WINDOW_MS, UPLOAD_WINDOW_MS};
use crate::{StoreError, StoreResult};

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<ComplianceJob> {
    let status: String = row.get(5)?;
    Ok(ComplianceJob {
        id: row.get(0)?,
        licensee_id: row.get(1)?,
        job_type: row.get(2)?,
        name: row.get(3)?,
        resumable: row.get(4)?,
        stored_status: JobStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, status.clone().into())
        })?,
        created_at: Timestamp(row.get(6)?),
        upload_expires_at: Timestamp(row.get(7)?),
        download_expires_at: Timestamp(row.get(8)?),
        uploaded_at: row.get::<_, Option<i64>>(9)?.map(Timestamp),
        finished_at: row.get::<_, Option<i64>>(10)?.map(Timestamp),
        error: row.get(11)?,
        result_lines: row.get::<_, Option<i64>>(12)?.map(|n| n.max(0) as u64),
    })
}

pub(super) fn job(conn: &Connection, licensee_id: i64, id: &str) -> StoreResult<Option<ComplianceJob>> {
    Ok(conn.prepare_cached(&sql::JOB)?.query_row(params![licensee_id, id], job_from_row).optional()?)
}

pub(super) fn jobs(conn: &Connection, licensee_id: i64, job_type: Option<&str>) -> StoreResult<Vec<ComplianceJob>> {
    let mut statement = conn.prepare_cached(&sql::JOBS_OF_TYPE)?;
    let rows = statement.query_map(params![licensee_id, job_type], job_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn create_job(conn: &mut Connection, new: NewComplianceJob) -> StoreResult<ComplianceJob> {
    check_new_job(&new).map_err(StoreError::Invalid)?;
    let tx = conn.transaction()?;
    let active: Option<ComplianceJob> = tx
        .prepare_cached(&sql::ACTIVE_JOBS)?
        .query_row(params![new.licensee_id, new.job_type, new.created_at.0], job_from_row)
        .optional()?;
    if let Some(active) = active {
        return Err(StoreError::Conflict(one_job_at_a_time(&active)));
    }
    tx.prepare_cached(sql::INSERT_JOB)?.execute(params![
        new.id,
        new.licensee_id,
        new.job_type,
        new.name,
        new.resumable,
        new.created_at.0,
        new.created_at.0 + UPLOAD_WINDOW_MS,
        new.created_at.0 + DOWNLOAD_WINDOW_MS
    ])?;
    let created = job(&tx, new.licensee_id, &new.id)?.ok_or_else(|| StoreError::NotFound("job vanished".into()))?;
    tx.commit()?;
    Ok(created)
}

/// The job after a conditional update that changed nothing: why not.
fn refused(conn: &Connection, licensee_id: i64, id: &str, at: Timestamp) -> StoreError {
    match job(conn, licensee_id, id) {
        Ok(None) => StoreError::NotFound(format!("no compliance job {id} for this licensee")),
        Ok(Some(job)) => StoreError::Conflict(format!(
            "compliance job {id} is {}: its upload can no longer be taken",
            job.status_at(at).as_str()
        )),
        Err(error) => error,
    }
}

pub(super) fn start_job(conn: &Connection, licensee_id: i64, id: &str, at: Timestamp) -> StoreResult<ComplianceJob> {
    if conn.prepare_cached(sql::START_JOB)?.execute(params![licensee_id, id, at.0])? == 0 {
        return Err(refused(conn, licensee_id, id, at));
    }
    job(conn, licensee_id, id)?.ok_or_else(|| StoreError::NotFound(format!("no compliance job {id}")))
}

pub(super) fn finish_job(
    conn: &Connection,
    licensee_id: i64,
    id: &str,
    outcome: Result<(String, u64), String>,
    at: Timestamp,
) -> StoreResult<ComplianceJob> {
    let changed = match outcome {
        Ok((result, lines)) => {
            conn.prepare_cached(sql::COMPLETE_JOB)?.execute(params![licensee_id, id, at.0, result, lines as i64])?
        }
        Err(error) => conn.prepare_cached(sql::FAIL_JOB)?.execute(params![licensee_id, id, at.0, error])?,
    };
    if changed == 0 {
        return Err(refused(conn, licensee_id, id, at));
    }
    job(conn, licensee_id, id)?.ok_or_else(|| StoreError::NotFound(format!("no compliance job {id}")))
}

pub(super) fn job_result(conn: &Connection, licensee_id: i64, id: &str) -> StoreResult<Option<String>> {
    Ok(conn.prepare_cached(sql::JOB_RESULT)?.query_row(params![licensee_id, id], |row| row.get(0)).optional()?)
}

pub(super) fn record_notices(
    conn: &mut Connection,
    licensee_id: i64,
    notices: &[(PostId, Timestamp)],
    via: &str,
    at: Timestamp,
) -> StoreResult<u64> {
    let tx = conn.transaction()?;
    let mut added = 0;
    {
        let mut statement = tx.prepare_cached(sql::INSERT_NOTICE)?;
        for (post, deleted_at) in notices {
            added += statement.execute(params![licensee_id, post.get(), deleted_at.0, at.0, via])? as u64;
        }
    }
    tx.commit()?;
    Ok(added)
}

pub(super) fn notices(conn: &Connection, licensee_id: Option<i64>) -> StoreResult<Vec<DeletionNotice>> {
    let mut statement = conn.prepare_cached(sql::NOTICES)?;
    let rows = statement.query_map(params![licensee_id], |row| {
        Ok(DeletionNotice {
            licensee_id: row.get(0)?,
            post_id: PostId::new(row.get(1)?),
            deleted_at: Timestamp(row.get(2)?),
            notified_at: Timestamp(row.get(3)?),
            via: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn record_violations(conn: &mut Connection, violations: &[NewDeletionViolation]) -> StoreResult<()> {
    let tx = conn.transaction()?;
    {
        let mut statement = tx.prepare_cached(sql::INSERT_VIOLATION)?;
        for v in violations {
            statement.execute(params![
                v.licensee_id,
                v.post_id.get(),
                v.deleted_at.0,
                v.deadline_at.0,
                v.notified_at.map(|t| t.0),
                v.finding_id,
                v.evidence.to_string(),
                v.recorded_at.0
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn violations(conn: &Connection, licensee_id: Option<i64>) -> StoreResult<Vec<DeletionViolation>> {
    let mut statement = conn.prepare_cached(sql::VIOLATIONS)?;
    let rows = statement.query_map(params![licensee_id], |row| {
        let evidence: String = row.get(8)?;
        Ok(DeletionViolation {
            id: row.get(0)?,
            licensee: row.get(1)?,
            violation: NewDeletionViolation {
                licensee_id: row.get(2)?,
                post_id: PostId::new(row.get(3)?),
                deleted_at: Timestamp(row.get(4)?),
                deadline_at: Timestamp(row.get(5)?),
                notified_at: row.get::<_, Option<i64>>(6)?.map(Timestamp),
                finding_id: row.get(7)?,
                evidence: serde_json::from_str(&evidence).unwrap_or(serde_json::Value::String(evidence)),
                recorded_at: Timestamp(row.get(9)?),
            },
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

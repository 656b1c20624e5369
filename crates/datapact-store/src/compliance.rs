//! Deletion compliance (issue 10), as stored: X-style batch compliance jobs, the record of when
//! each licensee was told of each deletion (feed read or job result downloaded), and the
//! deletion-compliance violations `datapact trace` proves from a leak.
//!
//! The types and rules here are shared by both stores; each store only moves values in and out
//! (`sqlite/compliance.rs`, `postgres/compliance.rs`, with the SQL in [`sql`]).

use datapact_core::{PostId, Timestamp};
use serde::Serialize;

/// The job types offered. X also has `users`; datapact licenses posts only.
pub const JOB_TYPES: &[&str] = &["tweets"];
/// How long an upload URL stays valid after the job is created (X: about 15 minutes).
pub const UPLOAD_WINDOW_MS: i64 = 15 * 60 * 1000;
/// How long a download URL stays valid after the job is created (X: about 7 days).
pub const DOWNLOAD_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;
/// The longest job name kept.
pub const MAX_JOB_NAME: usize = 256;

/// A job's status, as X reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Created,
    InProgress,
    Complete,
    Failed,
    Expired,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Created => "created",
            JobStatus::InProgress => "in_progress",
            JobStatus::Complete => "complete",
            JobStatus::Failed => "failed",
            JobStatus::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<JobStatus> {
        [JobStatus::Created, JobStatus::InProgress, JobStatus::Complete, JobStatus::Failed, JobStatus::Expired]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A job to create ([`crate::Store::create_compliance_job`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewComplianceJob {
    /// X-style: a decimal number as a string, chosen at random by the caller.
    pub id: String,
    pub licensee_id: i64,
    /// One of [`JOB_TYPES`].
    pub job_type: String,
    pub name: Option<String>,
    pub resumable: bool,
    pub created_at: Timestamp,
}

/// A stored job. `stored_status` is what was written (`created`, `in_progress`, `complete`,
/// `failed`); [`ComplianceJob::status_at`] adds expiry, which only the clock decides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComplianceJob {
    pub id: String,
    pub licensee_id: i64,
    pub job_type: String,
    pub name: Option<String>,
    pub resumable: bool,
    pub stored_status: JobStatus,
    pub created_at: Timestamp,
    pub upload_expires_at: Timestamp,
    pub download_expires_at: Timestamp,
    pub uploaded_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Why a failed job failed.
    pub error: Option<String>,
    /// How many result lines a complete job has.
    pub result_lines: Option<u64>,
}

impl ComplianceJob {
    /// The status at `now`: a job never uploaded expires with its upload URL, a complete job
    /// with its download URL; a job left `in_progress` past its upload window (its gateway
    /// stopped mid-way) has failed.
    pub fn status_at(&self, now: Timestamp) -> JobStatus {
        match self.stored_status {
            JobStatus::Created if now > self.upload_expires_at => JobStatus::Expired,
            JobStatus::InProgress if now > self.upload_expires_at => JobStatus::Failed,
            JobStatus::Complete if now > self.download_expires_at => JobStatus::Expired,
            status => status,
        }
    }

    /// Whether it still blocks another job of its type for its licensee (created or in
    /// progress, and not expired).
    pub fn is_active_at(&self, now: Timestamp) -> bool {
        matches!(self.status_at(now), JobStatus::Created | JobStatus::InProgress)
    }
}

/// Checks a new job before it is stored (both stores).
pub(crate) fn check_new_job(job: &NewComplianceJob) -> Result<(), String> {
    if !JOB_TYPES.contains(&job.job_type.as_str()) {
        return Err(format!(
            "compliance job type {:?} is not offered: use one of {}",
            job.job_type,
            JOB_TYPES.join(", ")
        ));
    }
    if job.id.is_empty() || job.id.len() > 19 || !job.id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("compliance job id {:?} is not a decimal number", job.id));
    }
    if job.name.as_ref().is_some_and(|n| n.chars().count() > MAX_JOB_NAME) {
        return Err(format!("a compliance job name is at most {MAX_JOB_NAME} characters"));
    }
    Ok(())
}

/// The refusal of a second active job of a type.
pub(crate) fn one_job_at_a_time(active: &ComplianceJob) -> String {
    format!(
        "a {} compliance job is already active for this licensee (job {}, {}): one job per type at a time; \
         upload to it or wait until its upload URL expires",
        active.job_type,
        active.id,
        active.stored_status.as_str()
    )
}

/// A fact of a licensee being told of a deletion: the first time counts (later ones are kept
/// out by the key (licensee, post)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeletionNotice {
    pub licensee_id: i64,
    pub post_id: PostId,
    pub deleted_at: Timestamp,
    pub notified_at: Timestamp,
    /// `feed`, or `job:<id>`.
    pub via: String,
}

/// A deletion-compliance violation to record: the licensee held (and leaked) a post after its
/// deletion deadline, with the evidence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NewDeletionViolation {
    pub licensee_id: i64,
    pub post_id: PostId,
    pub deleted_at: Timestamp,
    /// `deleted_at` + the agreement's `deletion_deadline`.
    pub deadline_at: Timestamp,
    /// When the licensee was first told of the deletion, if it was.
    pub notified_at: Option<Timestamp>,
    /// The trace finding this was proved in, if recorded.
    pub finding_id: Option<i64>,
    /// JSON: the witness (a post or revision in the same leak available only after the deadline),
    /// the leak files.
    pub evidence: serde_json::Value,
    pub recorded_at: Timestamp,
}

/// A stored deletion-compliance violation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeletionViolation {
    pub id: i64,
    pub licensee: String,
    #[serde(flatten)]
    pub violation: NewDeletionViolation,
}

/// The SQL both stores run (`?N` parameters; PostgreSQL through `pg!`).
pub(crate) mod sql {
    pub(crate) const JOB_COLUMNS: &str = "id, licensee_id, job_type, name, resumable, status, created_at, \
        upload_expires_at, download_expires_at, uploaded_at, finished_at, error, result_lines";
    pub(crate) const INSERT_JOB: &str = "INSERT INTO compliance_jobs (id, licensee_id, job_type, name, resumable, \
        status, created_at, upload_expires_at, download_expires_at) VALUES (?1, ?2, ?3, ?4, ?5, 'created', ?6, ?7, ?8)";
    pub(crate) static JOBS_OF_TYPE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {JOB_COLUMNS} FROM compliance_jobs WHERE licensee_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR job_type = ?2) \
             ORDER BY created_at DESC, id DESC"
        )
    });
    pub(crate) static JOB: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("SELECT {JOB_COLUMNS} FROM compliance_jobs WHERE licensee_id = ?1 AND id = ?2")
    });
    pub(crate) static ACTIVE_JOBS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {JOB_COLUMNS} FROM compliance_jobs WHERE licensee_id = ?1 AND job_type = ?2 \
             AND status IN ('created', 'in_progress') AND upload_expires_at >= ?3"
        )
    });
    /// Starts processing an upload: only a job still `created` inside its upload window.
    pub(crate) const START_JOB: &str = "UPDATE compliance_jobs SET status = 'in_progress', uploaded_at = ?3 \
        WHERE licensee_id = ?1 AND id = ?2 AND status = 'created' AND upload_expires_at >= ?3";
    pub(crate) const COMPLETE_JOB: &str = "UPDATE compliance_jobs SET status = 'complete', finished_at = ?3, \
        result = ?4, result_lines = ?5 WHERE licensee_id = ?1 AND id = ?2 AND status = 'in_progress'";
    pub(crate) const FAIL_JOB: &str = "UPDATE compliance_jobs SET status = 'failed', finished_at = ?3, error = ?4 \
        WHERE licensee_id = ?1 AND id = ?2 AND status = 'in_progress'";
    pub(crate) const JOB_RESULT: &str =
        "SELECT result FROM compliance_jobs WHERE licensee_id = ?1 AND id = ?2 AND status = 'complete'";
    pub(crate) const INSERT_NOTICE: &str = "INSERT INTO deletion_notices (licensee_id, post_id, deleted_at, \
        notified_at, via) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (licensee_id, post_id) DO NOTHING";
    pub(crate) const NOTICES: &str = "SELECT licensee_id, post_id, deleted_at, notified_at, via FROM deletion_notices \
        WHERE CAST(?1 AS BIGINT) IS NULL OR licensee_id = ?1 ORDER BY licensee_id, notified_at, post_id";
    pub(crate) const INSERT_VIOLATION: &str = "INSERT INTO deletion_violations (licensee_id, post_id, deleted_at, \
        deadline_at, notified_at, finding_id, evidence, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    pub(crate) const VIOLATIONS: &str = "SELECT v.id, l.name, v.licensee_id, v.post_id, v.deleted_at, v.deadline_at, \
        v.notified_at, v.finding_id, v.evidence, v.recorded_at FROM deletion_violations v \
        JOIN licensees l ON l.id = v.licensee_id WHERE CAST(?1 AS BIGINT) IS NULL OR v.licensee_id = ?1 ORDER BY v.id";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: JobStatus) -> ComplianceJob {
        ComplianceJob {
            id: "1".into(),
            licensee_id: 1,
            job_type: "tweets".into(),
            name: None,
            resumable: false,
            stored_status: status,
            created_at: Timestamp(0),
            upload_expires_at: Timestamp(UPLOAD_WINDOW_MS),
            download_expires_at: Timestamp(DOWNLOAD_WINDOW_MS),
            uploaded_at: None,
            finished_at: None,
            error: None,
            result_lines: None,
        }
    }

    #[test]
    fn expiry_is_decided_by_the_clock() {
        let up = Timestamp(UPLOAD_WINDOW_MS);
        let down = Timestamp(DOWNLOAD_WINDOW_MS);
        assert_eq!(job(JobStatus::Created).status_at(up), JobStatus::Created);
        assert_eq!(job(JobStatus::Created).status_at(Timestamp(up.0 + 1)), JobStatus::Expired);
        assert_eq!(job(JobStatus::InProgress).status_at(Timestamp(up.0 + 1)), JobStatus::Failed);
        assert_eq!(job(JobStatus::Complete).status_at(down), JobStatus::Complete);
        assert_eq!(job(JobStatus::Complete).status_at(Timestamp(down.0 + 1)), JobStatus::Expired);
        assert_eq!(job(JobStatus::Failed).status_at(Timestamp(down.0 + 1)), JobStatus::Failed);
        assert!(job(JobStatus::Created).is_active_at(up));
        assert!(!job(JobStatus::Created).is_active_at(Timestamp(up.0 + 1)));
        assert!(!job(JobStatus::Complete).is_active_at(Timestamp(0)));
    }

    #[test]
    fn statuses_round_trip() {
        for s in ["created", "in_progress", "complete", "failed", "expired"] {
            assert_eq!(JobStatus::parse(s).unwrap().as_str(), s);
        }
    }
}

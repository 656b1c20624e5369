-- Version 10: deletion compliance (issue 10). Batch compliance jobs as X runs them (one active
-- job per type per licensee, decided under the writer), the first time each licensee was told of
-- each deletion (append-only: it is evidence), and the deletion-compliance violations a traced
-- leak proves.
CREATE TABLE compliance_jobs (
    id                  TEXT PRIMARY KEY,
    licensee_id         INTEGER NOT NULL REFERENCES licensees (id),
    job_type            TEXT NOT NULL CHECK (job_type IN ('tweets')),
    name                TEXT,
    resumable           INTEGER NOT NULL CHECK (resumable IN (0, 1)),
    status              TEXT NOT NULL CHECK (status IN ('created', 'in_progress', 'complete', 'failed')),
    created_at          INTEGER NOT NULL,
    upload_expires_at   INTEGER NOT NULL,
    download_expires_at INTEGER NOT NULL,
    uploaded_at         INTEGER,
    finished_at         INTEGER,
    error               TEXT,
    result              TEXT, -- the result file (JSON lines) of a complete job
    result_lines        INTEGER
) STRICT;
CREATE INDEX compliance_jobs_by_licensee ON compliance_jobs (licensee_id, job_type, created_at);

CREATE TABLE deletion_notices (
    licensee_id INTEGER NOT NULL REFERENCES licensees (id),
    post_id     INTEGER NOT NULL,
    deleted_at  INTEGER NOT NULL,
    notified_at INTEGER NOT NULL,
    via         TEXT NOT NULL, -- 'feed' or 'job:<id>'
    PRIMARY KEY (licensee_id, post_id)
) STRICT;
CREATE TRIGGER deletion_notices_no_update BEFORE UPDATE ON deletion_notices
BEGIN SELECT RAISE(ABORT, 'deletion notices are append-only'); END;
CREATE TRIGGER deletion_notices_no_delete BEFORE DELETE ON deletion_notices
BEGIN SELECT RAISE(ABORT, 'deletion notices are append-only'); END;

CREATE TABLE deletion_violations (
    id          INTEGER PRIMARY KEY,
    licensee_id INTEGER NOT NULL REFERENCES licensees (id),
    post_id     INTEGER NOT NULL,
    deleted_at  INTEGER NOT NULL,
    deadline_at INTEGER NOT NULL,
    notified_at INTEGER,
    finding_id  INTEGER REFERENCES trace_findings (id),
    evidence    TEXT NOT NULL, -- JSON
    recorded_at INTEGER NOT NULL
) STRICT;
CREATE INDEX deletion_violations_by_licensee ON deletion_violations (licensee_id);

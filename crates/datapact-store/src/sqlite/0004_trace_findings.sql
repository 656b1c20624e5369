-- Version 4: findings of `datapact trace --record` (issue 7), kept for reports. The report is
-- the trace's full JSON; the leak files are identified by their SHA-256 so a finding can be
-- tied to the exact dump it was made from.
CREATE TABLE trace_findings (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    leak_files TEXT NOT NULL, -- JSON: [{"name", "bytes", "sha256"}]
    outcome    TEXT NOT NULL,
    accused    TEXT NOT NULL, -- JSON array of licensee ids
    report     TEXT NOT NULL
) STRICT;
CREATE INDEX trace_findings_by_time ON trace_findings (at);

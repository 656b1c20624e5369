-- Version 2: agreements (plans and per-licensee terms), key purposes, author opt-outs,
-- violations and the admin audit log.

-- A plan as the terms file states it (JSON of datapact_terms::PlanSpec).
CREATE TABLE plans (
    name       TEXT PRIMARY KEY,
    body       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- The licensee's entry of the terms file (JSON of datapact_terms::LicenseeSpec); NULL: no agreement.
ALTER TABLE licensees ADD COLUMN terms TEXT;
ALTER TABLE licensees ADD COLUMN reason TEXT NOT NULL DEFAULT '';

-- Every request made with a key is made for the key's purpose (RSL vocabulary).
ALTER TABLE api_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'search';

CREATE TABLE author_opt_outs (
    author_id INTEGER NOT NULL,
    purpose   TEXT NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (author_id, purpose)
) STRICT;

-- One row per licensee and kind: counts, first and last time, a few samples (JSON).
CREATE TABLE violations (
    licensee_id INTEGER NOT NULL REFERENCES licensees (id),
    kind        TEXT NOT NULL,
    count       INTEGER NOT NULL,
    first_at    INTEGER NOT NULL,
    last_at     INTEGER NOT NULL,
    samples     TEXT NOT NULL,
    PRIMARY KEY (licensee_id, kind)
) STRICT;

-- Append-only: who changed what, with the state before and after (JSON).
CREATE TABLE audit_log (
    seq     INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    before  TEXT,
    after   TEXT
) STRICT;
CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TRIGGER plans_changed_insert AFTER INSERT ON plans
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;
CREATE TRIGGER plans_changed_update AFTER UPDATE ON plans
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;
CREATE TRIGGER plans_changed_delete AFTER DELETE ON plans
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;
CREATE TRIGGER opt_outs_changed_insert AFTER INSERT ON author_opt_outs
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;
CREATE TRIGGER opt_outs_changed_delete AFTER DELETE ON author_opt_outs
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;

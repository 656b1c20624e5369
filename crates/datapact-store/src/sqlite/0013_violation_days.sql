-- Version 13: violations per licensee, kind and UTC day, beside the running totals in
-- `violations`, so an evidence report over a period counts exactly the violations in it
-- (issue 11). Written in the same transaction as the running total; violations recorded before
-- this version have no day rows (reports say how many are undated).
CREATE TABLE violation_days (
    licensee_id INTEGER NOT NULL REFERENCES licensees (id),
    kind        TEXT NOT NULL,
    day_start   INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    first_at    INTEGER NOT NULL,
    last_at     INTEGER NOT NULL,
    samples     TEXT NOT NULL,
    PRIMARY KEY (licensee_id, kind, day_start)
) STRICT;

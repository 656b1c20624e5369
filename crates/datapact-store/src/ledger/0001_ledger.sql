-- The metering ledger (its own database file, `ledger.db`, so its group commits never wait
-- behind an ingest transaction). Version 1.

-- One row per commit batch of a chain: the sealed header and its hash. A pruned batch keeps
-- its row here (rows = 0 means nothing was deleted; `pruned` = 1 means its rows are gone).
CREATE TABLE ledger_batches (
    chain        TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    prev_hash    BLOB NOT NULL,
    rows_hash    BLOB NOT NULL,
    row_count    INTEGER NOT NULL,
    committed_at INTEGER NOT NULL,
    hash         BLOB NOT NULL,
    pruned       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chain, seq)
) STRICT, WITHOUT ROWID;

-- A batch's rows are usage events and deliveries, interleaved; `ordinal` is the row's place in
-- its batch. The primary key is the chain order, so `ledger verify` and pruning walk it.
CREATE TABLE usage_events (
    chain           TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    ordinal         INTEGER NOT NULL,
    licensee_id     INTEGER NOT NULL,
    key_prefix      TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    idempotency_key TEXT,
    at              INTEGER NOT NULL,
    delivered       INTEGER NOT NULL,
    counted         INTEGER NOT NULL,
    user_reads      INTEGER NOT NULL,
    bytes           INTEGER NOT NULL,
    digest          BLOB NOT NULL,
    PRIMARY KEY (chain, seq, ordinal)
) STRICT, WITHOUT ROWID;
CREATE INDEX usage_events_by_licensee ON usage_events (licensee_id, at);

CREATE TABLE deliveries (
    chain       TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    ordinal     INTEGER NOT NULL,
    licensee_id INTEGER NOT NULL,
    request_id  TEXT NOT NULL,
    post_id     INTEGER NOT NULL,
    revision    INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    counted     INTEGER NOT NULL,
    digest      BLOB NOT NULL,
    PRIMARY KEY (chain, seq, ordinal)
) STRICT, WITHOUT ROWID;
CREATE INDEX deliveries_by_licensee ON deliveries (licensee_id, at);

-- Daily totals, written in the same transaction as the events they sum. Derived (not sealed):
-- `ledger verify` recomputes them from the events it still holds.
CREATE TABLE usage_daily (
    licensee_id INTEGER NOT NULL,
    day         INTEGER NOT NULL, -- the day's first instant, ms since the epoch (UTC)
    endpoint    TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    events      INTEGER NOT NULL,
    delivered   INTEGER NOT NULL,
    counted     INTEGER NOT NULL,
    overage     INTEGER NOT NULL,
    user_reads  INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    PRIMARY KEY (licensee_id, day, endpoint, purpose)
) STRICT, WITHOUT ROWID;

-- The body sent for a request that carried an `Idempotency-Key`, committed with its ledger rows,
-- so a retry gets exactly the bytes it was billed for. Kept 24 hours.
CREATE TABLE idempotent_responses (
    licensee_id   INTEGER NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   BLOB NOT NULL,
    request_id    TEXT NOT NULL,
    first_used_at INTEGER NOT NULL,
    body          BLOB NOT NULL,
    PRIMARY KEY (licensee_id, key)
) STRICT, WITHOUT ROWID;

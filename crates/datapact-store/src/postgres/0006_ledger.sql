-- Version 6: the metering ledger in the shared store, the same tables as SQLite's `ledger.db`
-- (crates/datapact-store/src/ledger/0001_ledger.sql and after). Every gateway node writes its own
-- hash chain (`chain` = the node's name), so nodes never contend for a chain head; `ledger verify`
-- walks every chain. No triggers: the chain, not the database, is what detects an edit.

CREATE TABLE ledger_batches (
    chain        TEXT COLLATE "C" NOT NULL,
    seq          BIGINT NOT NULL,
    prev_hash    BYTEA NOT NULL,
    rows_hash    BYTEA NOT NULL,
    row_count    BIGINT NOT NULL,
    committed_at BIGINT NOT NULL,
    hash         BYTEA NOT NULL,
    pruned       SMALLINT NOT NULL DEFAULT 0,
    PRIMARY KEY (chain, seq)
);

CREATE TABLE usage_events (
    chain           TEXT COLLATE "C" NOT NULL,
    seq             BIGINT NOT NULL,
    ordinal         BIGINT NOT NULL,
    licensee_id     BIGINT NOT NULL,
    key_prefix      TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    request_id      TEXT COLLATE "C" NOT NULL,
    idempotency_key TEXT,
    at              BIGINT NOT NULL,
    delivered       BIGINT NOT NULL,
    counted         BIGINT NOT NULL,
    user_reads      BIGINT NOT NULL,
    bytes           BIGINT NOT NULL,
    charged         BIGINT NOT NULL DEFAULT 0,
    digest          BYTEA NOT NULL,
    PRIMARY KEY (chain, seq, ordinal)
);
CREATE INDEX usage_events_by_licensee ON usage_events (licensee_id, at);
-- A node settling the limiter's reservations after a crash asks whether a request committed.
CREATE INDEX usage_events_by_request ON usage_events (chain, request_id);

CREATE TABLE deliveries (
    chain       TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL,
    ordinal     BIGINT NOT NULL,
    licensee_id BIGINT NOT NULL,
    request_id  TEXT COLLATE "C" NOT NULL,
    post_id     BIGINT NOT NULL,
    revision    BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    counted     SMALLINT NOT NULL,
    digest      BYTEA NOT NULL,
    PRIMARY KEY (chain, seq, ordinal)
);
CREATE INDEX deliveries_by_licensee ON deliveries (licensee_id, at);
CREATE INDEX deliveries_canaries ON deliveries (licensee_id, post_id) WHERE revision = 0;

-- Derived daily totals, updated in each batch's transaction (every node adds to the same lines).
CREATE TABLE usage_daily (
    licensee_id BIGINT NOT NULL,
    day         BIGINT NOT NULL,
    endpoint    TEXT COLLATE "C" NOT NULL,
    purpose     TEXT COLLATE "C" NOT NULL,
    events      BIGINT NOT NULL,
    delivered   BIGINT NOT NULL,
    counted     BIGINT NOT NULL,
    overage     BIGINT NOT NULL,
    user_reads  BIGINT NOT NULL,
    bytes       BIGINT NOT NULL,
    charged     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (licensee_id, day, endpoint, purpose)
);

CREATE TABLE idempotent_responses (
    licensee_id   BIGINT NOT NULL,
    key           TEXT COLLATE "C" NOT NULL,
    fingerprint   BYTEA NOT NULL,
    request_id    TEXT NOT NULL,
    first_used_at BIGINT NOT NULL,
    body          BYTEA NOT NULL,
    PRIMARY KEY (licensee_id, key)
);

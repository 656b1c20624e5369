-- Version 9: signed ledger checkpoints (issue 11). The platform's Ed25519 signing keys (the key
-- in use has no retired_at; a retired key's public half stays, so what it signed verifies) and
-- the checkpoints they signed: every ledger chain's head at an instant. Append-only.
CREATE TABLE signing_keys (
    key_id     TEXT PRIMARY KEY,
    public_key BYTEA NOT NULL,
    seed       BYTEA,           -- erased (NULL) when the key is retired
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
CREATE UNIQUE INDEX signing_keys_one_in_use ON signing_keys ((1)) WHERE retired_at IS NULL;

CREATE TABLE checkpoints (
    number    BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    slot      BIGINT UNIQUE, -- the schedule's interval it was made for; NULL: made by hand
    key_id    TEXT NOT NULL REFERENCES signing_keys (key_id),
    heads     TEXT NOT NULL, -- JSON: [{"chain", "seq", "hash"}], sorted by chain
    signature BYTEA NOT NULL
);
-- Append-only (TRUNCATE too, which row triggers would not see).
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
FOR EACH ROW EXECUTE FUNCTION datapact_refuse('checkpoints are append-only');
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
FOR EACH STATEMENT EXECUTE FUNCTION datapact_refuse('checkpoints are append-only');

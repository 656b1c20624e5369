-- Version 11: signed ledger checkpoints (issue 11). The platform's Ed25519 signing keys (the
-- key in use has no retired_at; a retired key's public half stays, so what it signed verifies)
-- and the checkpoints they signed: every ledger chain's head at an instant. Append-only.
CREATE TABLE signing_keys (
    key_id     TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    seed       BLOB,             -- erased (NULL) when the key is retired
    created_at INTEGER NOT NULL,
    retired_at INTEGER
) STRICT;
CREATE UNIQUE INDEX signing_keys_one_in_use ON signing_keys ((1)) WHERE retired_at IS NULL;

CREATE TABLE checkpoints (
    number    INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    slot      INTEGER UNIQUE, -- the schedule's interval it was made for; NULL: made by hand
    key_id    TEXT NOT NULL REFERENCES signing_keys (key_id),
    heads     TEXT NOT NULL,  -- JSON: [{"chain", "seq", "hash"}], sorted by chain
    signature BLOB NOT NULL
) STRICT;
CREATE TRIGGER checkpoints_append_only_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER checkpoints_append_only_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;

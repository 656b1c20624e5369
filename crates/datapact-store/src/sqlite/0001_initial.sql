-- Version 1: posts, authors, licensees and keys.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO meta (key, value) VALUES ('change_counter', 0);

CREATE TABLE authors (
    id          INTEGER PRIMARY KEY,
    username    TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    description TEXT NOT NULL,
    location    TEXT,
    verified    INTEGER NOT NULL,
    protected   INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX authors_username ON authors (username COLLATE NOCASE);

-- The current revision of every post; `text` repeats the latest row of post_revisions.
CREATE TABLE posts (
    id                  INTEGER PRIMARY KEY,
    author_id           INTEGER NOT NULL REFERENCES authors (id),
    text                TEXT NOT NULL,
    revision            INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    lang                TEXT,
    conversation_id     INTEGER NOT NULL,
    in_reply_to_user_id INTEGER,
    referenced_posts    TEXT,           -- JSON array of {"type", "id"}, NULL when empty
    edit_history        TEXT NOT NULL,  -- JSON array of ids, the post itself last
    retweet_count       INTEGER NOT NULL,
    reply_count         INTEGER NOT NULL,
    like_count          INTEGER NOT NULL,
    quote_count         INTEGER NOT NULL,
    bookmark_count      INTEGER NOT NULL,
    impression_count    INTEGER NOT NULL,
    deleted_at          INTEGER
) STRICT;
-- Timelines and tweet counts only ever look at posts that are not deleted.
CREATE INDEX posts_by_author ON posts (author_id, id) WHERE deleted_at IS NULL;

-- Every text a post id has had, in ingest order (`seq`).
CREATE TABLE post_revisions (
    seq         INTEGER PRIMARY KEY,
    post_id     INTEGER NOT NULL,
    revision    INTEGER NOT NULL,
    text        TEXT NOT NULL,
    ingested_at INTEGER NOT NULL,
    UNIQUE (post_id, revision)
) STRICT;

-- Corrections and deletions, in the order they happened.
CREATE TABLE post_events (
    seq      INTEGER PRIMARY KEY,
    post_id  INTEGER NOT NULL,
    kind     TEXT NOT NULL CHECK (kind IN ('corrected', 'deleted')),
    revision INTEGER,
    at       INTEGER NOT NULL
) STRICT;

CREATE TABLE licensees (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    status     TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked')),
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    licensee_id  INTEGER NOT NULL REFERENCES licensees (id),
    prefix       TEXT NOT NULL UNIQUE,
    hash         BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
) STRICT;

-- Any change that decides who may be served bumps the counter gateways poll.
CREATE TRIGGER licensees_changed_insert AFTER INSERT ON licensees
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;
CREATE TRIGGER licensees_changed_update AFTER UPDATE ON licensees
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;
CREATE TRIGGER licensees_changed_delete AFTER DELETE ON licensees
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;
CREATE TRIGGER api_keys_changed_insert AFTER INSERT ON api_keys
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;
-- last_used_at is bookkeeping, not a change of rights: it does not bump the counter.
CREATE TRIGGER api_keys_changed_update AFTER UPDATE OF licensee_id, hash, expires_at, revoked_at ON api_keys
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;
CREATE TRIGGER api_keys_changed_delete AFTER DELETE ON api_keys
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;

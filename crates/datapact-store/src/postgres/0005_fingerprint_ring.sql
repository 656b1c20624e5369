-- Version 5: the fingerprint secret ring, one row, the ring file's JSON: every machine sharing
-- this store renders and traces with the same versions. Replaced by compare-and-set.
CREATE TABLE fingerprint_ring (
    id         SMALLINT PRIMARY KEY CHECK (id = 1),
    body       TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

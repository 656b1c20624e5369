-- Version 9: the fingerprint secret ring kept in the store, for stores several machines share
-- (the embedded store keeps it in the data directory's file and leaves this table empty). One
-- row: the ring file's JSON, replaced by compare-and-set.
CREATE TABLE fingerprint_ring (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    body       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

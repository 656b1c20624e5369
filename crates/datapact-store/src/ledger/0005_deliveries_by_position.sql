-- Delivery rows keyed by their place in the chain, `position` = seq << 20 | ordinal, in a rowid
-- table: appending to a rowid B-tree is SQLite's cheapest insert (a composite WITHOUT ROWID key
-- is not), and the row no longer repeats what its batch and usage event hold. The chain is this
-- file's one chain (`sqlite`), and the request is the usage event's the delivery follows (the
-- ledger writes each response as its event, then its deliveries). The row digests are unchanged:
-- `ledger verify` reads the request back from the event.
--
-- A row that disagrees with what it would now be read back from (a delivery filed under another
-- chain, or whose request is not its event's, or an ordinal past 2^20, or a seq past 2^43, whose
-- position would overflow onto another row's) could only come from an edit of the ledger; copying
-- it would erase that evidence, so the migration refuses and the ledger stays as it was.
CREATE TEMP TABLE deliveries_migration_refused (position TEXT NOT NULL);
CREATE TEMP TRIGGER deliveries_migration_refuses BEFORE INSERT ON deliveries_migration_refused BEGIN
    SELECT RAISE(ABORT, 'ledger.db was edited: a delivery row is filed under another chain, follows no usage event of its request, or has an ordinal past 2^20 or a batch past 2^43; nothing was changed. Run `datapact ledger verify` with the datapact that wrote it, and keep the file as evidence');
END;
INSERT INTO deliveries_migration_refused
SELECT d.chain || '/' || d.seq || '/' || d.ordinal FROM deliveries d
WHERE d.chain <> 'sqlite' OR d.ordinal < 0 OR d.ordinal >= 1048576 OR d.seq < 0 OR d.seq >= 8796093022208
   OR d.request_id IS NOT (SELECT e.request_id FROM usage_events e
                           WHERE e.chain = d.chain AND e.seq = d.seq AND e.ordinal < d.ordinal
                           ORDER BY e.ordinal DESC LIMIT 1);
DROP TABLE deliveries_migration_refused;

CREATE TABLE deliveries_by_position (
    position    INTEGER PRIMARY KEY, -- seq << 20 | ordinal
    licensee_id INTEGER NOT NULL,
    post_id     INTEGER NOT NULL,
    revision    INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    counted     INTEGER NOT NULL,
    digest      BLOB NOT NULL
) STRICT;
INSERT INTO deliveries_by_position (position, licensee_id, post_id, revision, at, counted, digest)
SELECT (seq << 20) | ordinal, licensee_id, post_id, revision, at, counted, digest FROM deliveries
ORDER BY seq, ordinal;
DROP TABLE deliveries;
ALTER TABLE deliveries_by_position RENAME TO deliveries;
CREATE INDEX deliveries_canaries ON deliveries (licensee_id, post_id) WHERE revision = 0;

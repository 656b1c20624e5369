-- Version 8: bookkeeping of `datapact migrate` (issue 9, item 5), which copies a data directory's
-- embedded store and ledger into this schema one table per transaction. The transaction that
-- copies a table also records it here, so a table is either copied whole and listed, or absent
-- from both: a run interrupted mid-copy is finished by running it again, without duplicates, and
-- rows in a table not listed here are someone else's data (the copy refuses to mix them).
CREATE TABLE migration_progress (
    table_name  TEXT PRIMARY KEY,
    source_rows BIGINT NOT NULL,
    copied_at   BIGINT NOT NULL
);

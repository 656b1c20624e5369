-- Version 8: credit notes (issue 8, item 2). An issued invoice is never edited: a late correction
-- downwards is a credit note against it (numbered CN-000001, gapless like invoices), which lowers
-- what is owed; at most what is outstanding when issued. Append-only.
CREATE TABLE credit_notes (
    seq          INTEGER PRIMARY KEY,
    number       TEXT NOT NULL UNIQUE,
    invoice_seq  INTEGER NOT NULL REFERENCES invoices (seq),
    licensee_id  INTEGER NOT NULL REFERENCES licensees (id),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    currency     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    issued_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX credit_notes_by_invoice ON credit_notes (invoice_seq);
CREATE TRIGGER credit_notes_gapless BEFORE INSERT ON credit_notes
WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM credit_notes)
BEGIN SELECT RAISE(ABORT, 'credit note numbers are gapless: seq must be the last one plus one'); END;
CREATE TRIGGER credit_notes_append_only_update BEFORE UPDATE ON credit_notes
BEGIN SELECT RAISE(ABORT, 'an issued credit note is never changed'); END;
CREATE TRIGGER credit_notes_append_only_delete BEFORE DELETE ON credit_notes
BEGIN SELECT RAISE(ABORT, 'an issued credit note is never deleted'); END;
-- A credit note can lift a 402: gateways reload when one is issued.
CREATE TRIGGER credit_notes_changed_insert AFTER INSERT ON credit_notes
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;

-- Version 4 of the PostgreSQL store: credit notes, as SQLite store version 8
-- (sqlite/0008_credit_notes.sql). An issued invoice is never edited: a late correction downwards
-- is a credit note against it (numbered CN-000001, gapless like invoices: `seq` is the largest
-- plus one, taken under the writer lock), at most what is outstanding when issued. Append-only.
CREATE TABLE credit_notes (
    seq          BIGINT PRIMARY KEY,
    number       TEXT NOT NULL UNIQUE,
    invoice_seq  BIGINT NOT NULL REFERENCES invoices (seq),
    licensee_id  BIGINT NOT NULL REFERENCES licensees (id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    issued_at    BIGINT NOT NULL
);
CREATE INDEX credit_notes_by_invoice ON credit_notes (invoice_seq);

CREATE FUNCTION datapact_credit_notes_gapless() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.seq IS DISTINCT FROM (SELECT COALESCE(MAX(seq), 0) + 1 FROM credit_notes) THEN
        RAISE EXCEPTION 'credit note numbers are gapless: seq must be the last one plus one'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER credit_notes_gapless BEFORE INSERT ON credit_notes
FOR EACH ROW EXECUTE FUNCTION datapact_credit_notes_gapless();
CREATE TRIGGER credit_notes_append_only_update BEFORE UPDATE ON credit_notes
FOR EACH ROW EXECUTE FUNCTION datapact_refuse('an issued credit note is never changed');
CREATE TRIGGER credit_notes_append_only_delete BEFORE DELETE ON credit_notes
FOR EACH ROW EXECUTE FUNCTION datapact_refuse('an issued credit note is never deleted');
CREATE TRIGGER credit_notes_never_truncated BEFORE TRUNCATE ON credit_notes
FOR EACH STATEMENT EXECUTE FUNCTION datapact_refuse('an issued credit note is never deleted');
-- A credit note can lift a 402: gateways reload when one is issued.
CREATE TRIGGER credit_notes_changed_insert AFTER INSERT ON credit_notes
FOR EACH ROW EXECUTE FUNCTION datapact_bump_change_counter();

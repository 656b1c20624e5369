-- Version 5: billing (issue 8): the price books in force, invoices and payments.

-- The `[[price_book]]` versions of the terms file last applied (JSON array of
-- datapact_billing::PriceBook), one row; `datapact apply` replaces it whole when the file has any.
CREATE TABLE price_books (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    body       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- One invoice per licensee and month. `seq` numbers every invoice of the platform 1, 2, 3, ...
-- with no gap (a trigger refuses any other value), and `number` is its printed form. Money is in
-- integer minor units of `currency`; `lines` is the JSON of datapact_billing::InvoiceLine[] and
-- sums to `total_minor` (checked before insert). An issued invoice is never edited: the only
-- update allowed sets `voided_at` (and its reason) once; a correction is a new document.
CREATE TABLE invoices (
    seq          INTEGER PRIMARY KEY,
    number       TEXT NOT NULL UNIQUE,
    licensee_id  INTEGER NOT NULL REFERENCES licensees (id),
    month        TEXT NOT NULL,           -- YYYY-MM
    plan         TEXT NOT NULL,
    currency     TEXT NOT NULL,
    issued_at    INTEGER NOT NULL,
    due          TEXT NOT NULL,           -- YYYY-MM-DD: payable until the end of that day (UTC)
    lines        TEXT NOT NULL,
    records      INTEGER NOT NULL CHECK (records >= 0),
    total_minor  INTEGER NOT NULL CHECK (total_minor >= 0),
    voided_at    INTEGER,
    void_reason  TEXT,
    UNIQUE (licensee_id, month)
) STRICT;
CREATE INDEX invoices_by_month ON invoices (month);

CREATE TRIGGER invoices_gapless BEFORE INSERT ON invoices
WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM invoices)
BEGIN SELECT RAISE(ABORT, 'invoice numbers are gapless: seq must be the last one plus one'); END;
CREATE TRIGGER invoices_immutable BEFORE UPDATE ON invoices
WHEN OLD.voided_at IS NOT NULL OR NEW.voided_at IS NULL
  OR NEW.seq IS NOT OLD.seq OR NEW.number IS NOT OLD.number OR NEW.licensee_id IS NOT OLD.licensee_id
  OR NEW.month IS NOT OLD.month OR NEW.plan IS NOT OLD.plan OR NEW.currency IS NOT OLD.currency
  OR NEW.issued_at IS NOT OLD.issued_at OR NEW.due IS NOT OLD.due OR NEW.lines IS NOT OLD.lines
  OR NEW.records IS NOT OLD.records OR NEW.total_minor IS NOT OLD.total_minor
BEGIN SELECT RAISE(ABORT, 'an issued invoice is never changed, only voided once: issue a credit note or a supplementary invoice'); END;
CREATE TRIGGER invoices_never_deleted BEFORE DELETE ON invoices
BEGIN SELECT RAISE(ABORT, 'an issued invoice is never deleted: void it'); END;

-- Payments towards one invoice, in its currency. `reference` (the bank's or processor's) is
-- unique per licensee: recording the same payment twice is a no-op, never a double credit.
CREATE TABLE payments (
    id             INTEGER PRIMARY KEY,
    licensee_id    INTEGER NOT NULL REFERENCES licensees (id),
    invoice_seq    INTEGER NOT NULL REFERENCES invoices (seq),
    amount_minor   INTEGER NOT NULL CHECK (amount_minor > 0),
    currency       TEXT NOT NULL,
    reference      TEXT NOT NULL,
    received_at    INTEGER NOT NULL,
    UNIQUE (licensee_id, reference)
) STRICT;
CREATE INDEX payments_by_invoice ON payments (invoice_seq);
CREATE TRIGGER payments_append_only_update BEFORE UPDATE ON payments
BEGIN SELECT RAISE(ABORT, 'a recorded payment is never changed: record a refund or correction'); END;
CREATE TRIGGER payments_append_only_delete BEFORE DELETE ON payments
BEGIN SELECT RAISE(ABORT, 'a recorded payment is never deleted'); END;

-- Invoices and payments decide who may be served (402), so gateways reload when they change.
CREATE TRIGGER invoices_changed_insert AFTER INSERT ON invoices
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;
CREATE TRIGGER invoices_changed_update AFTER UPDATE ON invoices
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;
CREATE TRIGGER payments_changed_insert AFTER INSERT ON payments
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;
CREATE TRIGGER price_books_changed_insert AFTER INSERT ON price_books
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;
CREATE TRIGGER price_books_changed_update AFTER UPDATE ON price_books
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;

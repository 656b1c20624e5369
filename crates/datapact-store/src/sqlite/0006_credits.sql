-- Version 6: prepaid credits (issue 8, item 4). A licensee on a prepaid plan buys credit in
-- advance; the ledger charges each counted record against it in the same commit as the delivery.
-- The balance is the sum of these rows minus the ledger's charges. `reference` (the bank's or
-- processor's) is unique per licensee, so a credit recorded twice counts once. Append-only.
CREATE TABLE credits (
    id           INTEGER PRIMARY KEY,
    licensee_id  INTEGER NOT NULL REFERENCES licensees (id),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    currency     TEXT NOT NULL,
    reference    TEXT NOT NULL,
    added_at     INTEGER NOT NULL,
    UNIQUE (licensee_id, reference)
) STRICT;
CREATE TRIGGER credits_append_only_update BEFORE UPDATE ON credits
BEGIN SELECT RAISE(ABORT, 'a recorded credit is never changed: record a correction'); END;
CREATE TRIGGER credits_append_only_delete BEFORE DELETE ON credits
BEGIN SELECT RAISE(ABORT, 'a recorded credit is never deleted'); END;
-- A credit lifts a 402 for credit: gateways reload when one is added.
CREATE TRIGGER credits_changed_insert AFTER INSERT ON credits
BEGIN UPDATE meta SET value = value + 1 WHERE key = 'change_counter'; END;

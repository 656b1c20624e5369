-- Prepaid credits: what a response's counted records cost a prepaid licensee, in micro-units of its
-- credit's currency, sealed in its usage event (a twelfth field, present when non-zero) and summed per
-- day. A licensee's balance is its credits (in the store) minus the sum of `usage_daily.charged`,
-- which pruning keeps.
ALTER TABLE usage_events ADD COLUMN charged INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN charged INTEGER NOT NULL DEFAULT 0;

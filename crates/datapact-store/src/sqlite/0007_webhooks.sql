-- Version 7: notifications and webhooks (issue 8, item 6).

-- Where notifications are sent: a licensee's own endpoint (its events only) or a platform-wide
-- one (`licensee_id` NULL: every licensee's events). `events` is a JSON array of notification
-- kinds (empty: all). `secret` signs each body (Standard Webhooks: HMAC-SHA256); it has to be
-- kept to sign, as every webhook sender keeps it. Removing a webhook keeps its row (deliveries
-- refer to it) and stops new deliveries.
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY,
    licensee_id INTEGER REFERENCES licensees (id),
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    events      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    removed_at  INTEGER
) STRICT;

-- Every notification once (the outbox): `dedupe_key` makes raising one twice a no-op, whoever
-- raises it (the invoice run, the dunning check, a gateway crossing a cap threshold).
CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY,
    dedupe_key  TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    licensee_id INTEGER REFERENCES licensees (id),
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

-- One row per notification and webhook subscribed to it when it was raised: the delivery log.
-- A sender claims a due row by moving `next_attempt_at` forward (a lease), so two gateways do
-- not send it at once; each attempt's outcome is recorded.
CREATE TABLE webhook_deliveries (
    notification_id INTEGER NOT NULL REFERENCES notifications (id),
    webhook_id      INTEGER NOT NULL REFERENCES webhooks (id),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    INTEGER,
    PRIMARY KEY (notification_id, webhook_id)
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

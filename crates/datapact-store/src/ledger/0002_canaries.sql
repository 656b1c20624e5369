-- Canary deliveries (revision 0, never counted) are found by `datapact trace` without reading
-- every delivery: a partial index holds only them.
CREATE INDEX deliveries_canaries ON deliveries (licensee_id, post_id) WHERE revision = 0;

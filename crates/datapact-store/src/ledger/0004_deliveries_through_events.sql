-- A licensee's deliveries are read through its usage events (each response's delivery rows
-- follow its event in the batch), not through an index of their own: that index cost the group
-- commit a second B-tree insert for every post delivered, which made it most of a search's
-- metering cost. The canary index (0002) stays: it holds only canaries.
DROP INDEX deliveries_by_licensee;

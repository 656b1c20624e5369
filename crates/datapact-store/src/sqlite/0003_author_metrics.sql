-- Version 3: the follower counts a platform may send with its authors (X clients expect them).
ALTER TABLE authors ADD COLUMN followers_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE authors ADD COLUMN following_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE authors ADD COLUMN listed_count INTEGER NOT NULL DEFAULT 0;

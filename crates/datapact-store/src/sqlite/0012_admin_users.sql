-- Version 12: dashboard users and sessions (issue 12). Users have a role and an argon2 hash
-- (PHC string); a removed user is disabled, not deleted. Sessions are keyed by the SHA-256 of
-- the cookie's token (never the token), each with the CSRF token its changes must carry.
CREATE TABLE admin_users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
) STRICT;

CREATE TABLE admin_sessions (
    token_hash TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX admin_sessions_user ON admin_sessions (user_name);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

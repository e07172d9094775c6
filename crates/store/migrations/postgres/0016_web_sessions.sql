-- Dashboard sign-ins: a row per browser session, so signing out ends it at once. The cookie carries a
-- random token; only its keyed hash is stored (id), with the form token that guards every form of the
-- session against cross-site requests.
-- Kept in lockstep with ../sqlite/0016_web_sessions.sql.

CREATE TABLE web_sessions (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    tier TEXT NOT NULL CHECK (tier IN ('legacy', 'advanced')),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

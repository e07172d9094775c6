-- Session tokens: a row per log-in (the family every refresh token of that log-in descends from) and a row
-- per refresh token, stored by its id. A refresh token is used once; presenting a used one again revokes its
-- whole family. Access tokens name their family, so revoking it ends them too.
-- Accounts an operator disabled can no longer authenticate by any means.
-- Kept in lockstep with ../postgres/0018_token_sessions.sql.

CREATE TABLE token_sessions (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    tier TEXT NOT NULL CHECK (tier IN ('legacy', 'advanced')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
CREATE INDEX token_sessions_account ON token_sessions (account_id);

CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES token_sessions (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
) STRICT;
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

ALTER TABLE accounts ADD COLUMN disabled_at INTEGER;

-- Startup scripts. Kept in lockstep with ../sqlite/0004_scripts.sql.

CREATE TABLE scripts (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    script TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX scripts_account_name ON scripts (account_id, name);
CREATE INDEX scripts_account_time ON scripts (account_id, created_at, id);

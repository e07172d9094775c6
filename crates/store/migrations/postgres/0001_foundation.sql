-- Accounts, API keys, the credit ledger and GPU capacity.
-- Kept in lockstep with ../sqlite/0001_foundation.sql (the schema-parity test compares them).

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    name TEXT NOT NULL,
    phone TEXT,
    address_line TEXT,
    city TEXT,
    state TEXT,
    postal_code TEXT,
    country TEXT,
    is_admin BIGINT NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX accounts_email ON accounts (email);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    tier TEXT NOT NULL CHECK (tier IN ('legacy', 'advanced')),
    prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX api_keys_secret_hash ON api_keys (secret_hash);
CREATE UNIQUE INDEX api_keys_account_name ON api_keys (account_id, name) WHERE revoked_at IS NULL;

CREATE TABLE balances (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    currency TEXT NOT NULL CHECK (currency IN ('USD', 'EUR', 'INR')),
    amount_micros BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, currency)
);

CREATE TABLE ledger_entries (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    currency TEXT NOT NULL CHECK (currency IN ('USD', 'EUR', 'INR')),
    kind TEXT NOT NULL CHECK (kind IN ('deposit', 'usage', 'grant', 'refund', 'adjustment')),
    amount_micros BIGINT NOT NULL,
    balance_after_micros BIGINT NOT NULL,
    description TEXT NOT NULL,
    idempotency_key TEXT,
    created_by TEXT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX ledger_entries_idempotency_key ON ledger_entries (idempotency_key);
CREATE INDEX ledger_entries_account_time ON ledger_entries (account_id, created_at, id);

CREATE TABLE gpu_capacity (
    region TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    total BIGINT NOT NULL CHECK (total >= 0),
    allocated BIGINT NOT NULL DEFAULT 0 CHECK (allocated >= 0),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (region, gpu_model)
);

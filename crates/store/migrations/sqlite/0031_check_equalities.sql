-- CHECK constraints of three or more values written as equalities: SQLite evaluates `x IN ('a', 'b', 'c')`
-- by building a temporary table for every row it checks, which every AI call's settlement paid on its
-- ledger entry, balance and `ai_requests` row. The constraints allow exactly what they allowed before.
-- SQLite cannot change a constraint in place, so each table is rebuilt (its documented procedure: create
-- the new table, copy, drop the old, rename, then recreate its indexes). No table references these three
-- and they have no triggers or views, so foreign keys stay as they are; each keeps its reference to
-- `accounts`. Kept in lockstep with ../postgres/0031_check_equalities.sql.

CREATE TABLE balances_new (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    currency TEXT NOT NULL CHECK (currency = 'USD' OR currency = 'EUR' OR currency = 'INR'),
    amount_micros INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, currency)
) STRICT;
INSERT INTO balances_new (account_id, currency, amount_micros, updated_at)
    SELECT account_id, currency, amount_micros, updated_at FROM balances;
DROP TABLE balances;
ALTER TABLE balances_new RENAME TO balances;

CREATE TABLE ledger_entries_new (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    currency TEXT NOT NULL CHECK (currency = 'USD' OR currency = 'EUR' OR currency = 'INR'),
    kind TEXT NOT NULL CHECK (kind = 'deposit' OR kind = 'usage' OR kind = 'grant' OR kind = 'refund'
        OR kind = 'adjustment'),
    amount_micros INTEGER NOT NULL,
    balance_after_micros INTEGER NOT NULL,
    description TEXT NOT NULL,
    idempotency_key TEXT,
    created_by TEXT,
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO ledger_entries_new (id, account_id, currency, kind, amount_micros, balance_after_micros,
                                description, idempotency_key, created_by, created_at)
    SELECT id, account_id, currency, kind, amount_micros, balance_after_micros, description,
           idempotency_key, created_by, created_at
    FROM ledger_entries;
DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_new RENAME TO ledger_entries;
CREATE UNIQUE INDEX ledger_entries_idempotency_key ON ledger_entries (idempotency_key);
CREATE INDEX ledger_entries_account_time ON ledger_entries (account_id, created_at, id);

CREATE TABLE ai_requests_new (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    request_id TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL CHECK (input_tokens >= 0),
    output_tokens INTEGER NOT NULL CHECK (output_tokens >= 0),
    cost_micros INTEGER NOT NULL CHECK (cost_micros >= 0),
    currency TEXT NOT NULL CHECK (currency = 'USD' OR currency = 'EUR' OR currency = 'INR'),
    status TEXT NOT NULL CHECK (status = 'completed' OR status = 'cancelled' OR status = 'failed'),
    stream INTEGER NOT NULL CHECK (stream IN (0, 1)),
    ledger_entry_id TEXT,
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO ai_requests_new (id, account_id, request_id, model, input_tokens, output_tokens, cost_micros,
                             currency, status, stream, ledger_entry_id, created_at)
    SELECT id, account_id, request_id, model, input_tokens, output_tokens, cost_micros, currency, status,
           stream, ledger_entry_id, created_at
    FROM ai_requests;
DROP TABLE ai_requests;
ALTER TABLE ai_requests_new RENAME TO ai_requests;
CREATE UNIQUE INDEX ai_requests_request_id ON ai_requests (request_id);
CREATE INDEX ai_requests_account_time ON ai_requests (account_id, created_at, id);

-- AI chat calls: one row per completed, abandoned or failed call, with the tokens it delivered and what it
-- cost. The row and its `usage` ledger entry are written in one transaction; `request_id` is unique, so a
-- call is recorded (and charged) at most once.
-- Kept in lockstep with ../sqlite/0015_ai_requests.sql.

CREATE TABLE ai_requests (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    request_id TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens BIGINT NOT NULL CHECK (input_tokens >= 0),
    output_tokens BIGINT NOT NULL CHECK (output_tokens >= 0),
    cost_micros BIGINT NOT NULL CHECK (cost_micros >= 0),
    currency TEXT NOT NULL CHECK (currency IN ('USD', 'EUR', 'INR')),
    status TEXT NOT NULL CHECK (status IN ('completed', 'cancelled', 'failed')),
    stream BIGINT NOT NULL CHECK (stream IN (0, 1)),
    ledger_entry_id TEXT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX ai_requests_request_id ON ai_requests (request_id);
CREATE INDEX ai_requests_account_time ON ai_requests (account_id, created_at, id);

-- Idempotency keys: a row per (account, key) a client sent with a POST. The first request claims the row
-- ('running', leased to one server for a few seconds); the transaction that makes the request's effect
-- also stores its response ('done'), so a retry after a crash replays it instead of repeating the effect.
-- A claim whose lease ran out without a response had no effect, and a retry may take it over.
-- Kept in lockstep with ../sqlite/0021_idempotency_keys.sql.

CREATE TABLE idempotency_keys (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    idem_key TEXT NOT NULL,
    -- SHA-256 of the method, path and canonical body: the same key with another request is refused.
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'done')),
    -- Random token of the request holding the claim; only it may complete or release the row.
    owner TEXT NOT NULL,
    locked_until BIGINT NOT NULL,
    response_status BIGINT,
    response_body TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

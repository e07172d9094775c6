-- Deposits: an account's request to buy credits through a payment provider. A deposit is `pending` until
-- the provider's signed webhook (or an operator) completes it; completing is one conditional update
-- (pending → completed) in the same transaction as its `deposit` ledger entry, so it credits at most once.
-- Kept in lockstep with ../sqlite/0010_deposits.sql.

CREATE TABLE deposits (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    currency TEXT NOT NULL CHECK (currency IN ('USD', 'EUR', 'INR')),
    amount_micros BIGINT NOT NULL CHECK (amount_micros > 0),
    tax_percent_micros BIGINT NOT NULL CHECK (tax_percent_micros >= 0),
    tax_micros BIGINT NOT NULL CHECK (tax_micros >= 0),
    total_micros BIGINT NOT NULL CHECK (total_micros > 0),
    status TEXT NOT NULL CHECK (status IN ('pending', 'completed')),
    provider TEXT NOT NULL,
    payment_reference TEXT NOT NULL,
    checkout_url TEXT,
    transaction_id TEXT,
    completed_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX deposits_account_time ON deposits (account_id, created_at, id);
CREATE UNIQUE INDEX deposits_provider_reference ON deposits (provider, payment_reference);

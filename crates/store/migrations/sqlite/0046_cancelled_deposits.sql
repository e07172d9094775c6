-- A pending deposit can be cancelled by its account, so deposits that will never be paid stop counting
-- against the cap on pending deposits. SQLite cannot change a constraint in place, so the table is rebuilt
-- (create the new table, copy, drop the old, rename, then recreate its indexes). No table references
-- `deposits` and it has no triggers or views. Kept in lockstep with ../postgres/0046_cancelled_deposits.sql.

CREATE TABLE deposits_new (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    currency TEXT NOT NULL CHECK (currency IN ('USD', 'EUR', 'INR')),
    amount_micros INTEGER NOT NULL CHECK (amount_micros > 0),
    tax_percent_micros INTEGER NOT NULL CHECK (tax_percent_micros >= 0),
    tax_micros INTEGER NOT NULL CHECK (tax_micros >= 0),
    total_micros INTEGER NOT NULL CHECK (total_micros > 0),
    status TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'cancelled')),
    provider TEXT NOT NULL,
    payment_reference TEXT NOT NULL,
    checkout_url TEXT,
    transaction_id TEXT,
    completed_by TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    completed_at INTEGER
) STRICT;
INSERT INTO deposits_new (id, account_id, currency, amount_micros, tax_percent_micros, tax_micros,
                          total_micros, status, provider, payment_reference, checkout_url, transaction_id,
                          completed_by, created_at, updated_at, completed_at)
    SELECT id, account_id, currency, amount_micros, tax_percent_micros, tax_micros, total_micros, status,
           provider, payment_reference, checkout_url, transaction_id, completed_by, created_at, updated_at,
           completed_at
    FROM deposits;
DROP TABLE deposits;
ALTER TABLE deposits_new RENAME TO deposits;
CREATE INDEX deposits_account_time ON deposits (account_id, created_at, id);
CREATE UNIQUE INDEX deposits_provider_reference ON deposits (provider, payment_reference);

-- Accounts whose credit in a currency ran out: what they store is kept without charge from started_at
-- until delete_after, then marked for deletion; the row goes when credit returns.
-- Kept in lockstep with ../sqlite/0019_depletions.sql.

CREATE TABLE depletions (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    currency TEXT NOT NULL CHECK (currency IN ('USD', 'EUR', 'INR')),
    started_at BIGINT NOT NULL,
    delete_after BIGINT NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('suspended', 'warned', 'deletion_due')),
    PRIMARY KEY (account_id, currency)
);

-- Accounts whose credit in a currency ran out: what they store is kept without charge from started_at
-- until delete_after, then marked for deletion; the row goes when credit returns.
-- Kept in lockstep with ../postgres/0019_depletions.sql.

CREATE TABLE depletions (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    currency TEXT NOT NULL CHECK (currency IN ('USD', 'EUR', 'INR')),
    started_at INTEGER NOT NULL,
    delete_after INTEGER NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('suspended', 'warned', 'deletion_due')),
    PRIMARY KEY (account_id, currency)
) STRICT;

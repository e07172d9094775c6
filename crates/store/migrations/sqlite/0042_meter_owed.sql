-- What a meter run's chunks have moved on the periods but not yet charged to the ledger, by account and
-- currency: each chunk adds to it in the transaction that moves its periods, and the run's end turns each
-- row into one usage entry (store::billing::owe, settle_owed). A chunk so writes a row per account it
-- touches instead of a ledger entry, and an account is charged once per run however many chunks held
-- its periods. A row left by a run that stopped midway is charged by the next.
-- Kept in lockstep with ../postgres/0042_meter_owed.sql.
CREATE TABLE meter_owed (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    currency TEXT NOT NULL CHECK (currency IN ('USD', 'EUR', 'INR')),
    micros INTEGER NOT NULL,
    periods INTEGER NOT NULL,
    PRIMARY KEY (account_id, currency)
) STRICT;

-- What the AI calls in flight may still cost, held against their account's balance while they run, so
-- that every server admitting calls for an account sees the others' (store::ai::hold_ai_call). A call's
-- hold goes when it is settled; one left by a server that stopped mid-call lapses at expires_at.
-- Kept in lockstep with ../postgres/0043_ai_holds.sql.
CREATE TABLE ai_holds (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    currency TEXT NOT NULL CHECK (currency IN ('USD', 'EUR', 'INR')),
    micros INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX ai_holds_account ON ai_holds (account_id, currency);

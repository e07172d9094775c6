-- Billing periods: a span during which a resource is billed at one rate, fixed when the span starts.
-- The meter advances `billed_minutes` and `billed_micros` with a conditional update in the same transaction
-- as the ledger entry, so a replayed or concurrent tick cannot bill a minute twice.
-- Kept in lockstep with ../sqlite/0009_billing.sql.

CREATE TABLE billing_periods (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    resource_type TEXT NOT NULL CHECK (resource_type IN ('instance', 'volume', 'snapshot')),
    resource_id TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    component TEXT NOT NULL CHECK (component IN ('compute', 'os_disk', 'hibernation', 'storage', 'snapshot')),
    details TEXT NOT NULL,
    currency TEXT NOT NULL CHECK (currency IN ('USD', 'EUR', 'INR')),
    hourly_rate TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    billed_minutes BIGINT NOT NULL DEFAULT 0,
    billed_micros BIGINT NOT NULL DEFAULT 0,
    fully_billed BIGINT NOT NULL DEFAULT 0 CHECK (fully_billed IN (0, 1))
);
CREATE INDEX billing_periods_due ON billing_periods (fully_billed, started_at);
CREATE INDEX billing_periods_resource ON billing_periods (resource_id, started_at);
CREATE INDEX billing_periods_account ON billing_periods (account_id, resource_type, started_at);

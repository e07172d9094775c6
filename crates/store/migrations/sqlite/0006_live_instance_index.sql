-- Lists and counts of an account's instances skip deleted ones; a partial index keeps them out of the scan.
-- Kept in lockstep with ../postgres/0006_live_instance_index.sql.

DROP INDEX instances_account;
CREATE INDEX instances_account_live ON instances (account_id, created_at, id) WHERE status <> 'DELETED';

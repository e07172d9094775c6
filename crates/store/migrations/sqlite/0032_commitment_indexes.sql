-- Every deploy, start, restore and reboot checks that the balance covers the account's committed burn:
-- its open periods' rates, and the instances on their way to a billed state. Both are counted in SQL off
-- indexes that hold just what the count reads, in the order it groups by, so it is a walk of index
-- entries with no table reads and no sort.
-- Kept in lockstep with ../postgres/0032_commitment_indexes.sql.

-- The instances heading to a billed state, with what prices them. Its condition is the query's, word for
-- word (instances::HEADING_STATES), which is how both databases know the index serves the query.
CREATE INDEX instances_heading ON instances
    (account_id, currency, status, gpu_model, gpu_count, os_volume_type, storage_gb, boot_volume_id)
    WHERE status IN ('CREATING', 'STARTING', 'REBOOTING', 'RESTORING', 'HIBERNATING');

-- The open periods' rates, now with the column of the index's condition, without which SQLite reads each
-- period's row to check it.
DROP INDEX billing_periods_open_rates;
CREATE INDEX billing_periods_open_rates ON billing_periods (account_id, currency, hourly_rate, ended_at)
    WHERE ended_at IS NULL;

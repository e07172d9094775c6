-- Every deploy, start, restore and reboot checks that the balance covers the account's committed burn,
-- which counts the instances on their way to a billed state. They are counted by shape in SQL, and this
-- partial index holds just those instances with what prices them, so the count reads a few entries of
-- the index, never the account's other instances (an account with 10,000 instances, thousands of them
-- being created, made every deploy read them all). Its condition is the query's, word for word
-- (instances::HEADING_STATES), which is how both databases know the index serves the query.
-- Kept in lockstep with ../sqlite/0032_heading_instances_index.sql.

CREATE INDEX instances_heading ON instances
    (account_id, currency, status, gpu_model, gpu_count, os_volume_type, storage_gb, boot_volume_id)
    WHERE status IN ('CREATING', 'STARTING', 'REBOOTING', 'RESTORING', 'HIBERNATING');

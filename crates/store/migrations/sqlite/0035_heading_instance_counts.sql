-- How many of each account's instances are on their way to a billed state (instances::HEADING_STATES),
-- by what prices them, kept by triggers in the statement that writes the instance. The commitment every
-- deploy, start, restore and reboot checks reads these rows instead of counting the heading instances
-- entry by entry off `instances_heading`: with machines booting for a minute, an account deploying 100 a
-- second has 6,000 of them, and each deploy walked them all (2,000: 1-3 ms on SQLite, inside the write
-- lock). As with `open_period_rates`, an account's count of a shape is the sum over `shard`; SQLite
-- writes shard 0, PostgreSQL its connection's.
-- Kept in lockstep with ../postgres/0035_heading_instance_counts.sql.

CREATE TABLE instance_heading_counts (
    account_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    gpu_count INTEGER NOT NULL,
    os_volume_type TEXT NOT NULL,
    storage_gb INTEGER NOT NULL,
    boot_volume INTEGER NOT NULL,
    shard INTEGER NOT NULL DEFAULT 0,
    instances INTEGER NOT NULL,
    PRIMARY KEY (account_id, currency, status, gpu_model, gpu_count, os_volume_type, storage_gb,
        boot_volume, shard)
) STRICT, WITHOUT ROWID;

INSERT INTO instance_heading_counts (account_id, currency, status, gpu_model, gpu_count, os_volume_type,
    storage_gb, boot_volume, instances)
SELECT account_id, currency, status, gpu_model, gpu_count, os_volume_type, storage_gb,
    boot_volume_id IS NOT NULL, COUNT(*)
FROM instances WHERE status IN ('CREATING', 'STARTING', 'REBOOTING', 'RESTORING', 'HIBERNATING')
GROUP BY account_id, currency, status, gpu_model, gpu_count, os_volume_type, storage_gb,
    boot_volume_id IS NOT NULL;

-- Replaced by the counts.
DROP INDEX instances_heading;

CREATE TRIGGER instances_heading_insert AFTER INSERT ON instances
WHEN NEW.status IN ('CREATING', 'STARTING', 'REBOOTING', 'RESTORING', 'HIBERNATING')
BEGIN
    INSERT INTO instance_heading_counts (account_id, currency, status, gpu_model, gpu_count,
        os_volume_type, storage_gb, boot_volume, instances)
    VALUES (NEW.account_id, NEW.currency, NEW.status, NEW.gpu_model, NEW.gpu_count, NEW.os_volume_type,
        NEW.storage_gb, NEW.boot_volume_id IS NOT NULL, 1)
    ON CONFLICT DO UPDATE SET instances = instances + 1;
END;

CREATE TRIGGER instances_heading_update
AFTER UPDATE OF status, account_id, currency, gpu_model, gpu_count, os_volume_type, storage_gb,
    boot_volume_id ON instances
WHEN (OLD.status IN ('CREATING', 'STARTING', 'REBOOTING', 'RESTORING', 'HIBERNATING')
        OR NEW.status IN ('CREATING', 'STARTING', 'REBOOTING', 'RESTORING', 'HIBERNATING'))
    AND NOT (OLD.status IS NEW.status AND OLD.account_id IS NEW.account_id
        AND OLD.currency IS NEW.currency AND OLD.gpu_model IS NEW.gpu_model
        AND OLD.gpu_count IS NEW.gpu_count AND OLD.os_volume_type IS NEW.os_volume_type
        AND OLD.storage_gb IS NEW.storage_gb
        AND (OLD.boot_volume_id IS NOT NULL) = (NEW.boot_volume_id IS NOT NULL))
BEGIN
    INSERT INTO instance_heading_counts (account_id, currency, status, gpu_model, gpu_count,
        os_volume_type, storage_gb, boot_volume, instances)
    SELECT OLD.account_id, OLD.currency, OLD.status, OLD.gpu_model, OLD.gpu_count, OLD.os_volume_type,
        OLD.storage_gb, OLD.boot_volume_id IS NOT NULL, -1
    WHERE OLD.status IN ('CREATING', 'STARTING', 'REBOOTING', 'RESTORING', 'HIBERNATING')
    ON CONFLICT DO UPDATE SET instances = instances - 1;
    INSERT INTO instance_heading_counts (account_id, currency, status, gpu_model, gpu_count,
        os_volume_type, storage_gb, boot_volume, instances)
    SELECT NEW.account_id, NEW.currency, NEW.status, NEW.gpu_model, NEW.gpu_count, NEW.os_volume_type,
        NEW.storage_gb, NEW.boot_volume_id IS NOT NULL, 1
    WHERE NEW.status IN ('CREATING', 'STARTING', 'REBOOTING', 'RESTORING', 'HIBERNATING')
    ON CONFLICT DO UPDATE SET instances = instances + 1;
END;

CREATE TRIGGER instances_heading_delete AFTER DELETE ON instances
WHEN OLD.status IN ('CREATING', 'STARTING', 'REBOOTING', 'RESTORING', 'HIBERNATING')
BEGIN
    INSERT INTO instance_heading_counts (account_id, currency, status, gpu_model, gpu_count,
        os_volume_type, storage_gb, boot_volume, instances)
    VALUES (OLD.account_id, OLD.currency, OLD.status, OLD.gpu_model, OLD.gpu_count, OLD.os_volume_type,
        OLD.storage_gb, OLD.boot_volume_id IS NOT NULL, -1)
    ON CONFLICT DO UPDATE SET instances = instances - 1;
END;

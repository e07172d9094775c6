-- A stopping instance heads to a billed state too: SHUTOFF is billed at the full price, and STOPPING,
-- which bills nothing, was missing from the heading states (instances::HEADING_STATES), so an account
-- could stop an instance and deploy another on the credit the first is about to be billed again from.
-- The triggers count STOPPING instances now, and those stopping at the upgrade are counted.
-- Kept in lockstep with ../postgres/0048_stopping_heads_to_a_billed_state.sql.

DROP TRIGGER instances_heading_insert;
DROP TRIGGER instances_heading_update;
DROP TRIGGER instances_heading_delete;

INSERT INTO instance_heading_counts (account_id, currency, status, gpu_model, gpu_count, os_volume_type,
    storage_gb, boot_volume, instances)
SELECT account_id, currency, status, gpu_model, gpu_count, os_volume_type, storage_gb,
    boot_volume_id IS NOT NULL, COUNT(*)
FROM instances WHERE status = 'STOPPING'
GROUP BY account_id, currency, status, gpu_model, gpu_count, os_volume_type, storage_gb,
    boot_volume_id IS NOT NULL
ON CONFLICT DO UPDATE SET instances = instances + excluded.instances;

CREATE TRIGGER instances_heading_insert AFTER INSERT ON instances
WHEN NEW.status IN ('CREATING', 'STARTING', 'STOPPING', 'REBOOTING', 'RESTORING', 'HIBERNATING')
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
WHEN (OLD.status IN ('CREATING', 'STARTING', 'STOPPING', 'REBOOTING', 'RESTORING', 'HIBERNATING')
        OR NEW.status IN ('CREATING', 'STARTING', 'STOPPING', 'REBOOTING', 'RESTORING', 'HIBERNATING'))
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
    WHERE OLD.status IN ('CREATING', 'STARTING', 'STOPPING', 'REBOOTING', 'RESTORING', 'HIBERNATING')
    ON CONFLICT DO UPDATE SET instances = instances - 1;
    INSERT INTO instance_heading_counts (account_id, currency, status, gpu_model, gpu_count,
        os_volume_type, storage_gb, boot_volume, instances)
    SELECT NEW.account_id, NEW.currency, NEW.status, NEW.gpu_model, NEW.gpu_count, NEW.os_volume_type,
        NEW.storage_gb, NEW.boot_volume_id IS NOT NULL, 1
    WHERE NEW.status IN ('CREATING', 'STARTING', 'STOPPING', 'REBOOTING', 'RESTORING', 'HIBERNATING')
    ON CONFLICT DO UPDATE SET instances = instances + 1;
END;

CREATE TRIGGER instances_heading_delete AFTER DELETE ON instances
WHEN OLD.status IN ('CREATING', 'STARTING', 'STOPPING', 'REBOOTING', 'RESTORING', 'HIBERNATING')
BEGIN
    INSERT INTO instance_heading_counts (account_id, currency, status, gpu_model, gpu_count,
        os_volume_type, storage_gb, boot_volume, instances)
    VALUES (OLD.account_id, OLD.currency, OLD.status, OLD.gpu_model, OLD.gpu_count, OLD.os_volume_type,
        OLD.storage_gb, OLD.boot_volume_id IS NOT NULL, -1)
    ON CONFLICT DO UPDATE SET instances = instances - 1;
END;

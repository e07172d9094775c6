-- A stopping instance heads to a billed state too: SHUTOFF is billed at the full price, and STOPPING,
-- which bills nothing, was missing from the heading states (instances::HEADING_STATES), so an account
-- could stop an instance and deploy another on the credit the first is about to be billed again from.
-- The trigger counts STOPPING instances now, and those stopping at the upgrade are counted.
-- Kept in lockstep with ../sqlite/0048_stopping_heads_to_a_billed_state.sql.

INSERT INTO instance_heading_counts (account_id, currency, status, gpu_model, gpu_count, os_volume_type,
    storage_gb, boot_volume, instances)
SELECT account_id, currency, status, gpu_model, gpu_count, os_volume_type, storage_gb,
    CASE WHEN boot_volume_id IS NULL THEN 0 ELSE 1 END, COUNT(*)
FROM instances WHERE status = 'STOPPING'
GROUP BY account_id, currency, status, gpu_model, gpu_count, os_volume_type, storage_gb,
    CASE WHEN boot_volume_id IS NULL THEN 0 ELSE 1 END
ON CONFLICT (account_id, currency, status, gpu_model, gpu_count, os_volume_type, storage_gb,
    boot_volume, shard)
DO UPDATE SET instances = instance_heading_counts.instances + excluded.instances;

CREATE OR REPLACE FUNCTION instances_heading_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    heading CONSTANT TEXT[] := ARRAY['CREATING', 'STARTING', 'STOPPING', 'REBOOTING', 'RESTORING', 'HIBERNATING'];
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status IS NOT DISTINCT FROM NEW.status AND OLD.account_id = NEW.account_id
            AND OLD.currency = NEW.currency AND OLD.gpu_model = NEW.gpu_model
            AND OLD.gpu_count = NEW.gpu_count AND OLD.os_volume_type = NEW.os_volume_type
            AND OLD.storage_gb = NEW.storage_gb
            AND (OLD.boot_volume_id IS NULL) = (NEW.boot_volume_id IS NULL) THEN
            RETURN NULL;
        END IF;
    END IF;
    IF TG_OP <> 'INSERT' AND OLD.status = ANY (heading) THEN
        PERFORM instance_heading_count_add(OLD, -1);
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.status = ANY (heading) THEN
        PERFORM instance_heading_count_add(NEW, 1);
    END IF;
    RETURN NULL;
END
$$;

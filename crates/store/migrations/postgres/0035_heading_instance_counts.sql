-- How many of each account's instances are on their way to a billed state (instances::HEADING_STATES),
-- by what prices them, kept by a trigger in the statement that writes the instance. The commitment every
-- deploy, start, restore and reboot checks reads these rows instead of counting the heading instances
-- entry by entry off `instances_heading`: with machines booting for a minute, an account deploying 100 a
-- second has 6,000 of them, and each deploy walked them all inside the account's lock. As with
-- `open_period_rates`, an account's count of a shape is the sum over `shard`, and each connection
-- changes its own (its backend's pid modulo 64), so that a deploy, which writes its instance before it
-- takes the account's lock, and the workers finishing the account's other instances never queue on one
-- count row; a shard may go below zero, the sum never does.
-- Kept in lockstep with ../sqlite/0035_heading_instance_counts.sql.

CREATE TABLE instance_heading_counts (
    account_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    gpu_count BIGINT NOT NULL,
    os_volume_type TEXT NOT NULL,
    storage_gb BIGINT NOT NULL,
    boot_volume BIGINT NOT NULL,
    shard BIGINT NOT NULL DEFAULT 0,
    instances BIGINT NOT NULL,
    PRIMARY KEY (account_id, currency, status, gpu_model, gpu_count, os_volume_type, storage_gb,
        boot_volume, shard)
);

INSERT INTO instance_heading_counts (account_id, currency, status, gpu_model, gpu_count, os_volume_type,
    storage_gb, boot_volume, instances)
SELECT account_id, currency, status, gpu_model, gpu_count, os_volume_type, storage_gb,
    CASE WHEN boot_volume_id IS NULL THEN 0 ELSE 1 END, COUNT(*)
FROM instances WHERE status IN ('CREATING', 'STARTING', 'REBOOTING', 'RESTORING', 'HIBERNATING')
GROUP BY account_id, currency, status, gpu_model, gpu_count, os_volume_type, storage_gb,
    CASE WHEN boot_volume_id IS NULL THEN 0 ELSE 1 END;

-- Replaced by the counts.
DROP INDEX instances_heading;

-- Adds `change` to the count of `i`'s shape, in the connection's shard.
CREATE FUNCTION instance_heading_count_add(i instances, change BIGINT) RETURNS void LANGUAGE sql AS $$
    INSERT INTO instance_heading_counts (account_id, currency, status, gpu_model, gpu_count,
        os_volume_type, storage_gb, boot_volume, shard, instances)
    VALUES (i.account_id, i.currency, i.status, i.gpu_model, i.gpu_count, i.os_volume_type, i.storage_gb,
        CASE WHEN i.boot_volume_id IS NULL THEN 0 ELSE 1 END, pg_backend_pid() % 64, change)
    ON CONFLICT (account_id, currency, status, gpu_model, gpu_count, os_volume_type, storage_gb,
        boot_volume, shard)
    DO UPDATE SET instances = instance_heading_counts.instances + excluded.instances;
$$;

CREATE FUNCTION instances_heading_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    heading CONSTANT TEXT[] := ARRAY['CREATING', 'STARTING', 'REBOOTING', 'RESTORING', 'HIBERNATING'];
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

CREATE TRIGGER instances_heading_count
AFTER INSERT OR UPDATE OF status, account_id, currency, gpu_model, gpu_count, os_volume_type, storage_gb,
    boot_volume_id OR DELETE ON instances
FOR EACH ROW EXECUTE FUNCTION instances_heading_count();

-- The commitment's read (store::billing::commitments, whose SQL is `query`, with the account, currency
-- and written instance as $1, $2 and $3) after the account's lock, in one round trip instead of two. The
-- lock and the read are two statements of the function, so that the read, like any statement of a
-- volatile function, sees what the transaction it waited for committed. Every deploy holds the account
-- from here to its commit, so each round trip less here is a shorter wait for the account's next deploy.
CREATE FUNCTION account_commitments(p_account TEXT, p_currency TEXT, p_written TEXT, query TEXT)
RETURNS TABLE (c0 BIGINT, c1 TEXT, c2 TEXT, c3 TEXT, c4 BIGINT, c5 BIGINT, c6 BIGINT, c7 BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM accounts WHERE id = p_account FOR NO KEY UPDATE;
    RETURN QUERY EXECUTE query USING p_account, p_currency, p_written;
END
$$;

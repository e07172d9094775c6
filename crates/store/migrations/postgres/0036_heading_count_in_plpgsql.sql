-- The heading instances' count is changed by a PL/pgSQL function instead of an SQL one (0035): PostgreSQL
-- plans an SQL function's statement again in every transaction that calls it from a trigger, while a
-- PL/pgSQL function keeps its statement's plan for the connection. The count changes twice in each
-- instance's life (its deploy, the state change that ends its boot), so this halves what those two
-- statements cost the database.
-- Kept in lockstep with ../sqlite/0036_heading_count_in_plpgsql.sql.

CREATE OR REPLACE FUNCTION instance_heading_count_add(i instances, change BIGINT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO instance_heading_counts (account_id, currency, status, gpu_model, gpu_count,
        os_volume_type, storage_gb, boot_volume, shard, instances)
    VALUES (i.account_id, i.currency, i.status, i.gpu_model, i.gpu_count, i.os_volume_type, i.storage_gb,
        CASE WHEN i.boot_volume_id IS NULL THEN 0 ELSE 1 END, pg_backend_pid() % 64, change)
    ON CONFLICT (account_id, currency, status, gpu_model, gpu_count, os_volume_type, storage_gb,
        boot_volume, shard)
    DO UPDATE SET instances = instance_heading_counts.instances + excluded.instances;
END
$$;

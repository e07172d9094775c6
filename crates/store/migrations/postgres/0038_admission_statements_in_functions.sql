-- The statements of `account_commitments` (0035) and `deploy_admission` (0037) are written in the
-- functions instead of passed in as text: PL/pgSQL plans a statement it runs with EXECUTE again on every
-- call, and the commitment's read took 0.35 ms to plan and 0.1 ms to run, inside the account's lock that
-- every deploy of the account waits for. A statement written in the function keeps its plan for the
-- connection; the read finds the written instance by its id alone (in a subquery with LIMIT 1), since a
-- plan made while the instances table was empty would otherwise walk every instance of a state. They are
-- the store's own statements (store::billing::COMMITMENTS_SQL, store::public_ips::TAKE_SQL,
-- store::capacity::ALLOCATE_SQL), word for word, with the functions' arguments in place of their
-- placeholders; a test compares them, so a change to one of those statements needs a migration that
-- writes it here too.
-- Kept in lockstep with ../sqlite/0038_admission_statements_in_functions.sql.

DROP FUNCTION account_commitments(TEXT, TEXT, TEXT, TEXT);
DROP FUNCTION deploy_admission(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, BIGINT, TEXT, TEXT, BIGINT);

-- The account's lock, then the commitment's read (store::billing::commitments).
CREATE FUNCTION account_commitments(p_account TEXT, p_currency TEXT, p_written TEXT)
RETURNS TABLE (c0 BIGINT, c1 TEXT, c2 TEXT, c3 TEXT, c4 BIGINT, c5 BIGINT, c6 BIGINT, c7 BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM accounts WHERE id = p_account FOR NO KEY UPDATE;
    RETURN QUERY
        SELECT CAST(0 AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT),
            amount_micros, CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT)
        FROM balances WHERE account_id = $1 AND currency = $2
        UNION ALL SELECT 1, hourly_rate, NULL, NULL, CAST(SUM(periods) AS BIGINT), 0, 0, 0
        FROM open_period_rates WHERE account_id = $1 AND currency = $2
        GROUP BY hourly_rate HAVING SUM(periods) > 0
        UNION ALL SELECT 2, c.status, c.gpu_model, c.os_volume_type, c.gpu_count, c.storage_gb,
            c.boot_volume, CAST(SUM(c.instances) - (SELECT COUNT(*) FROM (SELECT * FROM instances
            WHERE id = $3 LIMIT 1) w WHERE w.account_id = $1 AND w.currency = $2 AND w.status = c.status
            AND w.gpu_model = c.gpu_model AND w.gpu_count = c.gpu_count
            AND w.os_volume_type = c.os_volume_type AND w.storage_gb = c.storage_gb
            AND CASE WHEN w.boot_volume_id IS NULL THEN 0 ELSE 1 END = c.boot_volume) AS BIGINT)
        FROM instance_heading_counts c WHERE c.account_id = $1 AND c.currency = $2
        GROUP BY c.status, c.gpu_model, c.os_volume_type, c.gpu_count, c.storage_gb, c.boot_volume
        HAVING SUM(c.instances) > 0
        UNION ALL SELECT 3, volume_type, NULL, NULL, size_gb, 0, 0, 0 FROM volumes
        WHERE account_id = $1 AND currency = $2 AND status = 'creating'
        AND (instance_id IS NULL OR instance_id <> $3);
END
$$;

-- A plain deploy's last steps (store::admission): the account's lock, the commitment's read, a first
-- address and the GPUs; the last row (tagged 4) says whether the address and the GPUs were taken.
CREATE FUNCTION deploy_admission(p_account TEXT, p_currency TEXT, p_instance TEXT, p_address TEXT,
    p_region TEXT, p_now BIGINT, p_model TEXT, p_count BIGINT)
RETURNS TABLE (c0 BIGINT, c1 TEXT, c2 TEXT, c3 TEXT, c4 BIGINT, c5 BIGINT, c6 BIGINT, c7 BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    address_taken BIGINT := 0;
    gpus_taken BIGINT := 0;
BEGIN
    RETURN QUERY SELECT * FROM account_commitments(p_account, p_currency, p_instance);
    IF p_address IS NOT NULL THEN
        INSERT INTO public_ip_assignments (address, region, instance_id, updated_at)
        VALUES (p_address, p_region, p_instance, p_now) ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS address_taken = ROW_COUNT;
    END IF;
    UPDATE gpu_capacity SET allocated = allocated + p_count, updated_at = p_now
    WHERE region = p_region AND gpu_model = p_model AND total - allocated - withheld >= p_count;
    GET DIAGNOSTICS gpus_taken = ROW_COUNT;
    RETURN QUERY SELECT CAST(4 AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT),
        address_taken, gpus_taken, CAST(0 AS BIGINT), CAST(0 AS BIGINT);
END
$$;

-- Snapshots being created join the committed burn: a snapshot is billed from the moment it succeeds, and
-- two created at once each passed the check against a burn that counted neither, so an account could
-- commit more per hour than it held. The commitment's read (store::billing::COMMITMENTS_SQL, written in
-- `account_commitments` word for word, 0038) counts them by tier (tag 4), and the deploy's check in the
-- database (0039, 0041) prices them with each tier's snapshot price, which the server now passes.
-- Kept in lockstep with ../sqlite/0049_creating_snapshots_committed.sql.

CREATE OR REPLACE FUNCTION account_commitments(p_account TEXT, p_currency TEXT, p_written TEXT)
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
        AND (instance_id IS NULL OR instance_id <> $3)
        UNION ALL SELECT 4, tier, NULL, NULL, COUNT(*), 0, 0, 0 FROM snapshots
        WHERE account_id = $1 AND currency = $2 AND status = 'CREATING' GROUP BY tier;
END
$$;

DROP FUNCTION deploy_admission_checked(TEXT, TEXT, TEXT, TEXT, TEXT, BIGINT, TEXT, BIGINT, NUMERIC, NUMERIC,
    TEXT[], NUMERIC[], TEXT[], NUMERIC[], NUMERIC);

CREATE FUNCTION deploy_admission_checked(p_account TEXT, p_currency TEXT, p_instance TEXT,
    p_address TEXT, p_region TEXT, p_now BIGINT, p_model TEXT, p_count BIGINT, p_added NUMERIC,
    p_minimum NUMERIC, p_gpu_models TEXT[], p_gpu_prices NUMERIC[], p_volume_types TEXT[],
    p_volume_gb_prices NUMERIC[], p_hibernation NUMERIC, p_snapshot_tiers TEXT[],
    p_snapshot_prices NUMERIC[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r RECORD;
    balance BIGINT := 0;
    burn NUMERIC := 0;
    at INT;
    taken BIGINT;
BEGIN
    FOR r IN SELECT * FROM account_commitments(p_account, p_currency, p_instance) LOOP
        IF r.c0 = 0 THEN
            balance := r.c4;
        ELSIF r.c0 = 1 THEN
            burn := burn + CAST(r.c1 AS NUMERIC) * r.c4;
        ELSIF r.c0 = 2 THEN
            -- A heading shape: status, GPU model, OS volume type, GPUs, GB, boot volume, instances.
            IF r.c1 = 'HIBERNATING' THEN
                burn := burn + p_hibernation * r.c7;
            ELSE
                at := array_position(p_gpu_models, r.c2);
                IF at IS NOT NULL THEN
                    burn := burn + p_gpu_prices[at] * r.c4 * r.c7;
                END IF;
                at := array_position(p_volume_types, r.c3);
                IF r.c6 = 0 AND at IS NOT NULL THEN
                    burn := burn + p_volume_gb_prices[at] * r.c5 * r.c7;
                END IF;
            END IF;
        ELSIF r.c0 = 3 THEN
            at := array_position(p_volume_types, r.c1);
            IF at IS NOT NULL THEN
                burn := burn + p_volume_gb_prices[at] * r.c4;
            END IF;
        ELSE
            -- Snapshots being created: tier, how many.
            at := array_position(p_snapshot_tiers, r.c1);
            IF at IS NOT NULL THEN
                burn := burn + p_snapshot_prices[at] * r.c4;
            END IF;
        END IF;
    END LOOP;
    IF balance < GREATEST(burn + p_added, p_minimum) * 1000000 THEN
        RAISE EXCEPTION USING ERRCODE = 'B0402', MESSAGE = balance || ' ' || burn;
    END IF;
    IF p_address IS NOT NULL THEN
        INSERT INTO public_ip_assignments (address, region, instance_id, updated_at)
        VALUES (p_address, p_region, p_instance, p_now) ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS taken = ROW_COUNT;
        IF taken = 0 THEN
            RAISE EXCEPTION USING ERRCODE = 'B0409', MESSAGE = 'address taken';
        END IF;
    END IF;
    UPDATE gpu_capacity SET allocated = allocated + p_count, updated_at = p_now
    WHERE region = p_region AND gpu_model = p_model AND total - allocated - withheld - lost >= p_count;
    GET DIAGNOSTICS taken = ROW_COUNT;
    IF taken = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'B0503', MESSAGE = 'no stock';
    END IF;
END
$$;

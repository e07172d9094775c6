-- GPUs on hosts the compute driver reports lost: out of stock until the host is back, so a deploy is
-- refused with 503 instead of accepted for GPUs no live host has. The allocation's statement
-- (store::capacity::ALLOCATE_SQL) leaves them out, and so must the functions that hold it word for word
-- (0038, 0039): they are written again with it, unchanged otherwise.
-- Kept in lockstep with ../sqlite/0041_lost_gpus.sql.

ALTER TABLE gpu_capacity ADD COLUMN lost BIGINT NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION deploy_admission(p_account TEXT, p_currency TEXT, p_instance TEXT, p_address TEXT,
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
    WHERE region = p_region AND gpu_model = p_model AND total - allocated - withheld - lost >= p_count;
    GET DIAGNOSTICS gpus_taken = ROW_COUNT;
    RETURN QUERY SELECT CAST(4 AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT),
        address_taken, gpus_taken, CAST(0 AS BIGINT), CAST(0 AS BIGINT);
END
$$;

CREATE OR REPLACE FUNCTION deploy_admission_checked(p_account TEXT, p_currency TEXT, p_instance TEXT,
    p_address TEXT, p_region TEXT, p_now BIGINT, p_model TEXT, p_count BIGINT, p_added NUMERIC,
    p_minimum NUMERIC, p_gpu_models TEXT[], p_gpu_prices NUMERIC[], p_volume_types TEXT[],
    p_volume_gb_prices NUMERIC[], p_hibernation NUMERIC)
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
        ELSE
            at := array_position(p_volume_types, r.c1);
            IF at IS NOT NULL THEN
                burn := burn + p_volume_gb_prices[at] * r.c4;
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

-- A plain deploy's admission with the commitment's check made in the database, so that the server sends
-- it and the COMMIT in one message (store::admission::admit_and_commit): every deploy of an account holds
-- the account from its lock to its commit, and the round trip back to the server between them (the check
-- priced in Rust, then the COMMIT) was most of that hold under load.
--
-- The server passes the prices (per GPU of each model, per GB-hour of each volume type, the hibernation
-- price, all in the deploy's currency) and the deploy's own first hour; the function prices the
-- commitment's rows as core::billing::commitments does (an open rate times its periods; a heading
-- instance at its GPUs and, without a boot volume, its OS disk, or at the hibernation price while it
-- hibernates; a volume being created at its size), all in NUMERIC, exact like the server's decimals.
-- What it cannot have it raises, so the COMMIT that follows does nothing: B0402 when the balance does not
-- hold the minimum and an hour of the burn (balance in micro-units and burn in the message, for the
-- server's 402), B0409 when the address was taken meanwhile (the server deploys again the long way),
-- B0503 when the GPUs are not free. The statements are the store's (the test that compares
-- deploy_admission's checks these too).
-- SQLite runs the check in the server, as before (../sqlite/0039_deploy_admission_with_check.sql).

CREATE FUNCTION deploy_admission_checked(p_account TEXT, p_currency TEXT, p_instance TEXT,
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
    WHERE region = p_region AND gpu_model = p_model AND total - allocated - withheld >= p_count;
    GET DIAGNOSTICS taken = ROW_COUNT;
    IF taken = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'B0503', MESSAGE = 'no stock';
    END IF;
END
$$;

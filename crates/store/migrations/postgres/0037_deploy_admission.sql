-- A plain deploy's last steps after its writes, in one round trip (store::admission): the account's lock,
-- the commitment's read, a first address and the GPUs. The account is held from the lock to the commit,
-- and every deploy of the account waits for that: three round trips in that stretch became one. The
-- statements are the store's own, passed in with their placeholders ($1, ...), so each keeps one text
-- for both databases; each runs as a statement of its own, so the read sees what the transaction the
-- lock waited for committed. The last row (tagged 4) says whether the address and the GPUs were taken;
-- the caller checks the commitment first and rolls back what the deploy cannot have.
-- Kept in lockstep with ../sqlite/0037_deploy_admission.sql.

CREATE FUNCTION deploy_admission(p_account TEXT, p_currency TEXT, p_instance TEXT, commitments TEXT,
    take_address TEXT, p_address TEXT, p_region TEXT, p_now BIGINT, allocate TEXT, p_model TEXT,
    p_count BIGINT)
RETURNS TABLE (c0 BIGINT, c1 TEXT, c2 TEXT, c3 TEXT, c4 BIGINT, c5 BIGINT, c6 BIGINT, c7 BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    address_taken BIGINT := 0;
    gpus_taken BIGINT := 0;
BEGIN
    PERFORM 1 FROM accounts WHERE id = p_account FOR NO KEY UPDATE;
    RETURN QUERY EXECUTE commitments USING p_account, p_currency, p_instance;
    IF p_address IS NOT NULL THEN
        EXECUTE take_address USING p_address, p_region, p_instance, p_now;
        GET DIAGNOSTICS address_taken = ROW_COUNT;
    END IF;
    EXECUTE allocate USING p_region, p_model, p_count, p_now;
    GET DIAGNOSTICS gpus_taken = ROW_COUNT;
    RETURN QUERY SELECT CAST(4 AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT),
        address_taken, gpus_taken, CAST(0 AS BIGINT), CAST(0 AS BIGINT);
END
$$;

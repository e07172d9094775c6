-- Deploy holds: GPUs (and a public address) a preflight reserved for a minute, for one account's deploy.
-- While a hold is 'held' its GPUs count in gpu_capacity.allocated and its address is assigned under the
-- hold's id in public_ip_assignments; the deploy that consumes it takes both over, and a release or the
-- expiry job gives them back. Every change of state is conditional on state = 'held', so exactly one of
-- them happens, on whichever server.
-- Kept in lockstep with ../postgres/0025_deploy_holds.sql.

CREATE TABLE deploy_holds (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    region TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    gpu_count INTEGER NOT NULL,
    public_ip INTEGER NOT NULL CHECK (public_ip IN (0, 1)),
    address TEXT,
    state TEXT NOT NULL CHECK (state IN ('held', 'consumed', 'released', 'expired')),
    -- The instance that consumed it.
    instance_id TEXT,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX deploy_holds_account ON deploy_holds (account_id, id);
CREATE INDEX deploy_holds_state ON deploy_holds (state, region, gpu_model);

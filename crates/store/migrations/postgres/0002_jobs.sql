-- Durable operations: a job is written in the same transaction as the change it carries out, claimed by
-- a worker under a lease, retried with backoff, and dead-lettered after max_attempts.
-- Kept in lockstep with ../sqlite/0002_jobs.sql.

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_after BIGINT NOT NULL,
    locked_by TEXT,
    locked_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_claimable ON jobs (status, run_after, id);
CREATE INDEX jobs_resource ON jobs (resource_id, created_at);

-- GPUs on hosts the compute driver reports lost: out of stock until the host is back, so a deploy is
-- refused with 503 instead of accepted for GPUs no live host has (store::capacity::ALLOCATE_SQL).
-- Kept in lockstep with ../postgres/0041_lost_gpus.sql.
ALTER TABLE gpu_capacity ADD COLUMN lost INTEGER NOT NULL DEFAULT 0;

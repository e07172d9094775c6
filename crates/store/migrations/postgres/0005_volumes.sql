-- Block storage volumes. Kept in lockstep with ../sqlite/0005_volumes.sql.
--
-- `instance_id` is the instance the volume is attached to, or being attached to or detached from; the
-- status says which. Names are unique per account among volumes not deleted, across regions.

CREATE TABLE volumes (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    tier TEXT NOT NULL CHECK (tier IN ('legacy', 'advanced')),
    region TEXT NOT NULL,
    volume_type TEXT NOT NULL,
    size_gb BIGINT NOT NULL CHECK (size_gb > 0),
    bootable BIGINT NOT NULL CHECK (bootable IN (0, 1)),
    image_name TEXT,
    source_volume_id TEXT,
    instance_id TEXT,
    status TEXT NOT NULL,
    status_reason TEXT,
    currency TEXT NOT NULL CHECK (currency IN ('USD', 'EUR', 'INR')),
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE UNIQUE INDEX volumes_live_name ON volumes (account_id, name) WHERE status <> 'deleted';
CREATE INDEX volumes_account ON volumes (account_id, created_at, id);
CREATE INDEX volumes_instance ON volumes (instance_id);
CREATE INDEX volumes_status ON volumes (status);

-- Snapshots of instances' disks, and the custom images made from them. Kept in lockstep with
-- ../sqlite/0007_snapshots_images.sql.
--
-- A snapshot copies its source instance's configuration, so it can be shown and restored after the
-- instance is gone. An image keeps its own reference to the snapshot's disk (`snapshot_id`) and its own
-- copy of what it boots: deleting the snapshot does not affect it. Names are unique per account among
-- snapshots (and among images) not deleted.

CREATE TABLE snapshots (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    description TEXT,
    tier TEXT NOT NULL CHECK (tier IN ('legacy', 'advanced')),
    region TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    instance_name TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    gpu_count BIGINT NOT NULL,
    vcpus BIGINT NOT NULL,
    ram_gb BIGINT NOT NULL,
    storage_gb BIGINT NOT NULL,
    os_volume_type TEXT NOT NULL,
    operating_system TEXT,
    size_gb BIGINT NOT NULL,
    is_image BIGINT NOT NULL CHECK (is_image IN (0, 1)),
    status TEXT NOT NULL,
    status_reason TEXT,
    currency TEXT NOT NULL CHECK (currency IN ('USD', 'EUR', 'INR')),
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE UNIQUE INDEX snapshots_live_name ON snapshots (account_id, name) WHERE status <> 'DELETED';
CREATE INDEX snapshots_account ON snapshots (account_id, created_at, id);
CREATE INDEX snapshots_status ON snapshots (status);

CREATE TABLE images (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    description TEXT,
    tier TEXT NOT NULL CHECK (tier IN ('legacy', 'advanced')),
    region TEXT NOT NULL,
    snapshot_id TEXT NOT NULL,
    snapshot_name TEXT NOT NULL,
    source_instance_id TEXT NOT NULL,
    storage_gb BIGINT NOT NULL,
    os_volume_type TEXT NOT NULL,
    operating_system TEXT,
    status TEXT NOT NULL,
    status_reason TEXT,
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE UNIQUE INDEX images_live_name ON images (account_id, name) WHERE status <> 'DELETED';
CREATE INDEX images_account ON images (account_id, created_at, id);
CREATE INDEX images_snapshot ON images (snapshot_id);

-- Instances restored from a snapshot or booted from a custom image name the snapshot disk they copy.
CREATE INDEX instances_source_snapshot ON instances (source_snapshot_id);

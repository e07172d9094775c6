-- Instances, their own security rules, SSH keys, public addresses and the event log.
-- Kept in lockstep with ../postgres/0003_instances.sql.

CREATE TABLE ssh_keys (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    bits INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX ssh_keys_account_name ON ssh_keys (account_id, name);

CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    vm_name TEXT NOT NULL,
    tier TEXT NOT NULL CHECK (tier IN ('legacy', 'advanced')),
    region TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    gpu_count INTEGER NOT NULL,
    vcpus INTEGER NOT NULL,
    ram_gb INTEGER NOT NULL,
    storage_gb INTEGER NOT NULL,
    os_volume_type TEXT NOT NULL,
    boot_source TEXT NOT NULL CHECK (boot_source IN ('image', 'volume', 'snapshot')),
    operating_system TEXT,
    boot_volume_id TEXT,
    source_snapshot_id TEXT,
    ssh_key_id TEXT,
    ssh_public_key TEXT,
    script_id TEXT,
    startup_script TEXT,
    cloud_init TEXT,
    public_ip INTEGER NOT NULL CHECK (public_ip IN (0, 1)),
    ip_address TEXT,
    status TEXT NOT NULL,
    status_reason TEXT,
    host TEXT,
    gpus_allocated INTEGER NOT NULL,
    currency TEXT NOT NULL CHECK (currency IN ('USD', 'EUR', 'INR')),
    generation INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
) STRICT;
CREATE UNIQUE INDEX instances_live_name ON instances (account_id, name) WHERE status <> 'DELETED';
CREATE INDEX instances_account ON instances (account_id, created_at, id);
CREATE INDEX instances_status ON instances (status);

CREATE TABLE instance_security_rules (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL REFERENCES instances (id),
    direction TEXT NOT NULL CHECK (direction IN ('ingress', 'egress')),
    ethertype TEXT NOT NULL CHECK (ethertype IN ('IPv4', 'IPv6')),
    protocol TEXT,
    port_range_min INTEGER,
    port_range_max INTEGER,
    remote_ip_prefix TEXT,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX instance_security_rules_instance ON instance_security_rules (instance_id, created_at);

CREATE TABLE public_ips (
    address TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    instance_id TEXT,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX public_ips_instance ON public_ips (instance_id);
CREATE INDEX public_ips_region_free ON public_ips (region, instance_id, address);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT,
    actor TEXT NOT NULL,
    cause TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX events_resource ON events (resource_id, sequence);
CREATE INDEX events_account ON events (account_id, created_at, sequence);

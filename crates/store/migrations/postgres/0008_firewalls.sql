-- Firewalls: named rule sets of an account in one region (OpenStack Neutron's security groups), their
-- rules, and their attachments to instances. Kept in lockstep with ../sqlite/0008_firewalls.sql.
--
-- An attachment's status says where it is: ATTACHING and DETACHING until the instance's rules are
-- programmed, then SUCCESS (or the row is gone, for a detach), or ERROR when programming failed. Names are
-- unique per account among firewalls not deleted.

CREATE TABLE firewalls (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    tier TEXT NOT NULL CHECK (tier IN ('legacy', 'advanced')),
    region TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('CREATING', 'SUCCESS', 'ERROR', 'DELETED')),
    status_reason TEXT,
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE UNIQUE INDEX firewalls_live_name ON firewalls (account_id, name) WHERE status <> 'DELETED';
CREATE INDEX firewalls_account_live ON firewalls (account_id, created_at, id) WHERE status <> 'DELETED';

CREATE TABLE firewall_rules (
    id TEXT PRIMARY KEY,
    firewall_id TEXT NOT NULL REFERENCES firewalls (id),
    direction TEXT NOT NULL CHECK (direction IN ('ingress', 'egress')),
    ethertype TEXT NOT NULL CHECK (ethertype IN ('IPv4', 'IPv6')),
    protocol TEXT,
    port_range_min BIGINT,
    port_range_max BIGINT,
    remote_ip_prefix TEXT,
    -- Order within the firewall: rules are listed, and programmed, in the order they were given.
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX firewall_rules_firewall ON firewall_rules (firewall_id, position);

CREATE TABLE firewall_attachments (
    firewall_id TEXT NOT NULL REFERENCES firewalls (id),
    instance_id TEXT NOT NULL REFERENCES instances (id),
    account_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ATTACHING', 'SUCCESS', 'ERROR', 'DETACHING')),
    status_reason TEXT,
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (firewall_id, instance_id)
);
CREATE INDEX firewall_attachments_instance ON firewall_attachments (instance_id, created_at);

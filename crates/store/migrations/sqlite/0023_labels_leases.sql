-- Labels: key=value pairs an account puts on its instances, volumes, snapshots, images and firewalls, one
-- row per label. Lists filter on them through `labels_lookup`, an index walk that ends at the resource ids,
-- so a filtered list reads no more rows than it shows and counts.
-- Leases: when an instance is deleted or hibernated by itself. `warned` marks the warning event written
-- ten minutes before; a lease row is removed in the transaction that acts on it, so it acts once.
-- Kept in lockstep with ../postgres/0023_labels_leases.sql.

CREATE TABLE labels (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    label_key TEXT NOT NULL,
    label_value TEXT NOT NULL,
    -- The resource's created_at: lists show newest first, so a list filtered by a label reads its page
    -- in that order straight off the index and stops at the page's end.
    resource_created_at INTEGER NOT NULL,
    PRIMARY KEY (resource_type, resource_id, label_key)
) STRICT;
CREATE INDEX labels_lookup ON labels (account_id, resource_type, label_key, label_value, resource_created_at,
    resource_id);

CREATE TABLE instance_leases (
    instance_id TEXT PRIMARY KEY REFERENCES instances (id),
    expires_at INTEGER NOT NULL,
    on_expiry TEXT NOT NULL CHECK (on_expiry IN ('delete', 'hibernate')),
    warned INTEGER NOT NULL DEFAULT 0 CHECK (warned IN (0, 1))
) STRICT;

-- Labels: key=value pairs an account puts on its instances, volumes, snapshots, images and firewalls, one
-- row per label. Lists filter on them through `labels_lookup`, an index walk that ends at the resource ids,
-- so a filtered list reads no more rows than it shows and counts.
-- Leases: when an instance is deleted or hibernated by itself. `warned` marks the warning event written
-- ten minutes before; a lease row is removed in the transaction that acts on it, so it acts once.
-- Kept in lockstep with ../sqlite/0023_labels_leases.sql.

CREATE TABLE labels (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    label_key TEXT NOT NULL,
    label_value TEXT NOT NULL,
    -- The resource's created_at: lists show newest first, so a list filtered by a label reads its page
    -- in that order straight off the index and stops at the page's end.
    resource_created_at BIGINT NOT NULL,
    -- 0 once the labelled instance is deleted (a trigger keeps it), so a filtered list of the live
    -- instances, the usual one, is a walk of the index alone.
    live INTEGER NOT NULL DEFAULT 1 CHECK (live IN (0, 1)),
    PRIMARY KEY (resource_type, resource_id, label_key)
);
CREATE INDEX labels_lookup ON labels (account_id, resource_type, label_key, label_value, live,
    resource_created_at, resource_id);

CREATE FUNCTION labels_live() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.status = 'DELETED') <> (NEW.status = 'DELETED') THEN
        UPDATE labels SET live = CASE WHEN NEW.status = 'DELETED' THEN 0 ELSE 1 END
        WHERE resource_type = 'instance' AND resource_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER labels_live AFTER UPDATE OF status ON instances
FOR EACH ROW EXECUTE FUNCTION labels_live();

CREATE TABLE instance_leases (
    instance_id TEXT PRIMARY KEY REFERENCES instances (id),
    expires_at BIGINT NOT NULL,
    on_expiry TEXT NOT NULL CHECK (on_expiry IN ('delete', 'hibernate')),
    warned BIGINT NOT NULL DEFAULT 0 CHECK (warned IN (0, 1))
);

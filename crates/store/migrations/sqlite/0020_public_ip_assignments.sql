-- Public addresses are taken from the region's CIDR block when needed: only addresses handed out have a
-- row, so starting with a large pool writes nothing and an allocation costs the same whatever the pool's
-- size. The primary key keeps an address with one instance, the unique index an instance with one address.
-- Kept in lockstep with ../postgres/0020_public_ip_assignments.sql.

CREATE TABLE public_ip_assignments (
    address TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX public_ip_assignments_instance ON public_ip_assignments (instance_id);
CREATE INDEX public_ip_assignments_region ON public_ip_assignments (region, address);

INSERT INTO public_ip_assignments (address, region, instance_id, updated_at)
    SELECT address, region, instance_id, updated_at FROM public_ips WHERE instance_id IS NOT NULL;
DROP TABLE public_ips;

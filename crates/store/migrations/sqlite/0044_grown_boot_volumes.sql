-- An instance booted from a volume has that volume as its OS disk: a resize of the volume now sets the
-- instance's storage_gb in the same transaction (store::instances::set_boot_volume_size). Instances whose
-- boot volume grew before that kept the size they were deployed with; this brings them to their volume's.
-- Kept in lockstep with ../postgres/0044_grown_boot_volumes.sql.
UPDATE instances
SET storage_gb = (SELECT v.size_gb FROM volumes v WHERE v.id = instances.boot_volume_id)
WHERE boot_volume_id IS NOT NULL AND status <> 'DELETED'
  AND storage_gb < (SELECT v.size_gb FROM volumes v WHERE v.id = instances.boot_volume_id);

-- The host port forwarded to an instance's SSH port, where its driver reaches guests that way (libvirt's
-- user-mode networking); NULL where SSH is on port 22 of the instance's address.
-- Kept in lockstep with ../sqlite/0022_instance_ssh_port.sql.

ALTER TABLE instances ADD COLUMN ssh_port INTEGER;

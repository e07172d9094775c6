-- Simulated hosts an operator lost (the `lose_host` fault), shared by every server on the database so
-- that each one's simulator keeps them out of placement and the hosts view, after a restart too, until
-- a reset (which empties the table).
-- Kept in lockstep with ../sqlite/0047_simulation_lost_hosts.sql.
CREATE TABLE simulation_lost_hosts (
    host TEXT PRIMARY KEY,
    lost_at BIGINT NOT NULL
);

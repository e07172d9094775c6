-- Scenarios of the simulated data centre (GPU scarcity, a region's outage, a slow host), which every
-- server on the database applies; the GPUs a scenario holds back from stock; and how many times the
-- state was reset, so every server forgets the simulated machines it knew before a reset.
-- Kept in lockstep with ../postgres/0026_simulation_scenarios.sql.

CREATE TABLE simulation_scenarios (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX simulation_scenarios_target ON simulation_scenarios (kind, target);

ALTER TABLE gpu_capacity ADD COLUMN withheld INTEGER NOT NULL DEFAULT 0 CHECK (withheld >= 0);

ALTER TABLE simulation_clock ADD COLUMN resets BIGINT NOT NULL DEFAULT 0;

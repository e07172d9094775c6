-- How far the simulation clock runs ahead of real time, so that a restart or another server on the same
-- database keeps the time an operator moved it to. One row at most.
-- Kept in lockstep with ../postgres/0012_simulation_clock.sql.

CREATE TABLE simulation_clock (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    offset_ms BIGINT NOT NULL CHECK (offset_ms >= 0)
);

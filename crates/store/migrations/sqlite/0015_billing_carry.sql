-- A period's carried milliseconds: the part of a minute its resource's previous period at the same rate
-- left unbilled, counted as already elapsed in this one, so short periods add up to billed minutes.
-- Kept in lockstep with ../postgres/0015_billing_carry.sql.

ALTER TABLE billing_periods ADD COLUMN carried_ms INTEGER NOT NULL DEFAULT 0;

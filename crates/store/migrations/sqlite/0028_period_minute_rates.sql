-- A period's per-minute charge in micro-units (its hourly rate / 60, rounded half away from zero), so the
-- meter charges a chunk of periods with one aggregate and one update in SQL instead of reading every
-- period into the server. It is written when a period is inserted; periods from before this migration get
-- it from the meter, which fills what is missing before each run (found through the partial index below,
-- empty in steady state). NULL means not known: such a period is never charged, so a rate that does not
-- parse stays NULL and is never billed as free. It follows `hourly_rate`: changing the rate clears it.
-- Periods closed but not yet billed to their end have an index of their own, so the meter's update that
-- finishes them never walks the open ones.
-- Kept in lockstep with ../postgres/0028_period_minute_rates.sql.

ALTER TABLE billing_periods ADD COLUMN per_minute_micros INTEGER;
CREATE INDEX billing_periods_unrated ON billing_periods (id)
    WHERE per_minute_micros IS NULL AND fully_billed = 0;
CREATE INDEX billing_periods_unbilled_closed ON billing_periods (account_id, id)
    WHERE fully_billed = 0 AND ended_at IS NOT NULL;

CREATE TRIGGER billing_periods_rate_changed AFTER UPDATE OF hourly_rate ON billing_periods
WHEN NEW.hourly_rate IS NOT OLD.hourly_rate
BEGIN
    UPDATE billing_periods SET per_minute_micros = NULL WHERE id = NEW.id;
END;

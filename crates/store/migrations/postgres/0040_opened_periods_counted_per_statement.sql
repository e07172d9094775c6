-- Periods opened by an INSERT are counted into `open_period_rates` (0033) from the statement's new rows,
-- in one trigger call at the statement's end, instead of a note per row folded afterwards: every
-- instance that becomes ACTIVE opens its periods with an INSERT, and the notes cost a PL/pgSQL call and
-- an insert per period, then a walk of the notes table to take them out again, which grows with every
-- note's dead row until the table is vacuumed. Updates and deletes keep the notes: a statement trigger
-- with the rows it changed cannot be limited to the columns that matter, and the meter's per-minute
-- update of every open period would then copy all of them.
-- Kept in lockstep with ../sqlite/0040_opened_periods_counted_per_statement.sql (which changes nothing:
-- SQLite counts in its row triggers).

DROP TRIGGER billing_periods_open_rate_change ON billing_periods;
DROP TRIGGER billing_periods_open_rate_fold ON billing_periods;

CREATE TRIGGER billing_periods_open_rate_change
AFTER UPDATE OF ended_at, hourly_rate, account_id, currency OR DELETE ON billing_periods
FOR EACH ROW EXECUTE FUNCTION billing_periods_open_rate_change();

CREATE TRIGGER billing_periods_open_rate_fold
AFTER UPDATE OF ended_at, hourly_rate, account_id, currency OR DELETE ON billing_periods
FOR EACH STATEMENT EXECUTE FUNCTION billing_periods_open_rate_fold();

CREATE FUNCTION billing_periods_opened_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO open_period_rates (account_id, currency, hourly_rate, shard, periods)
    SELECT account_id, currency, hourly_rate, pg_backend_pid() % 64, COUNT(*) FROM opened
    WHERE ended_at IS NULL
    GROUP BY account_id, currency, hourly_rate
    ON CONFLICT (account_id, currency, hourly_rate, shard)
    DO UPDATE SET periods = open_period_rates.periods + excluded.periods;
    RETURN NULL;
END
$$;

CREATE TRIGGER billing_periods_opened_count
AFTER INSERT ON billing_periods REFERENCING NEW TABLE AS opened
FOR EACH STATEMENT EXECUTE FUNCTION billing_periods_opened_count();

-- How many open billing periods each account has at each hourly rate, kept by triggers in the statement
-- that opens, closes or reprices a period. The commitment every deploy checks reads the account's rates
-- from here, a row per distinct rate, instead of counting its open periods entry by entry (10,000
-- periods: about 1.7 ms on SQLite, inside the write lock every deploy takes). Rates stay exact decimals
-- as text; a rate no period has any more keeps rows summing to zero. An account's count at a rate is the
-- sum over `shard`: PostgreSQL spreads it over rows so concurrent writers do not queue on one (and a
-- shard may go below zero there); here changes go to shard 0, which a state imported from PostgreSQL
-- may also leave below zero.
-- Kept in lockstep with ../postgres/0033_open_period_rate_counts.sql.

CREATE TABLE open_period_rates (
    account_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    hourly_rate TEXT NOT NULL,
    shard INTEGER NOT NULL DEFAULT 0,
    periods INTEGER NOT NULL,
    PRIMARY KEY (account_id, currency, hourly_rate, shard)
) STRICT, WITHOUT ROWID;

INSERT INTO open_period_rates (account_id, currency, hourly_rate, periods)
SELECT account_id, currency, hourly_rate, COUNT(*) FROM billing_periods WHERE ended_at IS NULL
GROUP BY account_id, currency, hourly_rate;

-- Replaced by the counts.
DROP INDEX billing_periods_open_rates;

CREATE TRIGGER billing_periods_open_rate_insert AFTER INSERT ON billing_periods
WHEN NEW.ended_at IS NULL
BEGIN
    INSERT INTO open_period_rates (account_id, currency, hourly_rate, periods)
    VALUES (NEW.account_id, NEW.currency, NEW.hourly_rate, 1)
    ON CONFLICT (account_id, currency, hourly_rate, shard) DO UPDATE SET periods = periods + 1;
END;

CREATE TRIGGER billing_periods_open_rate_update
AFTER UPDATE OF ended_at, hourly_rate, account_id, currency ON billing_periods
WHEN (OLD.ended_at IS NULL OR NEW.ended_at IS NULL)
    AND NOT (OLD.ended_at IS NULL AND NEW.ended_at IS NULL AND OLD.account_id = NEW.account_id
        AND OLD.currency = NEW.currency AND OLD.hourly_rate = NEW.hourly_rate)
BEGIN
    INSERT INTO open_period_rates (account_id, currency, hourly_rate, periods)
    SELECT OLD.account_id, OLD.currency, OLD.hourly_rate, -1 WHERE OLD.ended_at IS NULL
    ON CONFLICT (account_id, currency, hourly_rate, shard) DO UPDATE SET periods = periods - 1;
    INSERT INTO open_period_rates (account_id, currency, hourly_rate, periods)
    SELECT NEW.account_id, NEW.currency, NEW.hourly_rate, 1 WHERE NEW.ended_at IS NULL
    ON CONFLICT (account_id, currency, hourly_rate, shard) DO UPDATE SET periods = periods + 1;
END;

CREATE TRIGGER billing_periods_open_rate_delete AFTER DELETE ON billing_periods
WHEN OLD.ended_at IS NULL
BEGIN
    INSERT INTO open_period_rates (account_id, currency, hourly_rate, periods)
    VALUES (OLD.account_id, OLD.currency, OLD.hourly_rate, -1)
    ON CONFLICT (account_id, currency, hourly_rate, shard) DO UPDATE SET periods = periods - 1;
END;

-- Every deploy, start, restore and volume create sums the hourly rates of the account's open periods
-- (its committed burn) inside the transaction that holds the account. The sum is taken in SQL, grouped by
-- rate; this partial index holds just what it reads, so it is a walk of the account's open periods in
-- the index, never of its closed ones or of the table.
-- Kept in lockstep with ../postgres/0027_open_period_rates.sql.

CREATE INDEX billing_periods_open_rates ON billing_periods (account_id, currency, hourly_rate) WHERE ended_at IS NULL;

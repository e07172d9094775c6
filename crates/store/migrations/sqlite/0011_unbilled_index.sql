-- The meter pages through periods with minutes left to bill in (account, id) order, so each page charges
-- few accounts; a partial index keeps that walk to the unbilled periods however many billed ones pile up.
-- It replaces the index by start time, which nothing reads any more and which SQLite's planner would
-- otherwise prefer, sorting every unbilled period for each page.
-- Kept in lockstep with ../postgres/0011_unbilled_index.sql.

DROP INDEX billing_periods_due;
CREATE INDEX billing_periods_unbilled ON billing_periods (account_id, id) WHERE fully_billed = 0;

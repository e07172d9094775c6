-- PostgreSQL counts the periods an INSERT opens from the statement's new rows from here on
-- (../postgres/0040_opened_periods_counted_per_statement.sql); SQLite's row triggers count each period
-- in place, so nothing changes here.
SELECT 1;

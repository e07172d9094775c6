-- PostgreSQL's admission functions now hold their statements instead of receiving them
-- (../postgres/0038_admission_statements_in_functions.sql); SQLite runs those statements from the
-- store, so nothing changes here.
SELECT 1;

-- PostgreSQL checks a plain deploy's commitment in a function, so that the deploy commits in the same
-- round trip (../postgres/0039_deploy_admission_with_check.sql); SQLite checks it in the server, whose
-- transactions take no round trips, so nothing changes here.
SELECT 1;

-- PostgreSQL takes a plain deploy's last steps in one round trip from here on
-- (../postgres/0037_deploy_admission.sql); SQLite runs them as statements in the process, so nothing
-- changes here.
SELECT 1;

-- PostgreSQL's live-instance counts change at commit from here on
-- (../postgres/0034_live_instance_counts_at_commit.sql); SQLite's write transactions are serial, so its
-- counts keep changing in each statement and nothing changes here.
SELECT 1;

-- Snapshots being created join the committed burn (../postgres/0049_creating_snapshots_committed.sql);
-- SQLite runs the commitment's read from the store, so nothing changes here.
SELECT 1;

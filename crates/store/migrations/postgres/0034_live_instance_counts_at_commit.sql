-- The live-instance counts of 0014 change when the transaction commits rather than at each statement. A
-- deploy writes its instance before it takes its account's lock (the lock is held only for the last
-- check); a count row taken at the insert would be held from there to the commit and so make an account's
-- deploys queue on it for their whole transaction. A count changed at commit is taken after any lock the
-- transaction takes, so it adds no wait on the way to that lock.
-- SQLite counts in each statement, as before: its write transactions are serial anyway
-- (../sqlite/0034_live_instance_counts_at_commit.sql changes nothing).

DROP TRIGGER instances_live_count ON instances;

CREATE CONSTRAINT TRIGGER instances_live_count
AFTER INSERT OR UPDATE OF status OR DELETE ON instances
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION instances_live_count();

-- A pending deposit can be cancelled by its account, so deposits that will never be paid stop counting
-- against the cap on pending deposits. Kept in lockstep with ../sqlite/0046_cancelled_deposits.sql.

ALTER TABLE deposits DROP CONSTRAINT deposits_status_check;
ALTER TABLE deposits ADD CONSTRAINT deposits_status_check
    CHECK (status IN ('pending', 'completed', 'cancelled'));

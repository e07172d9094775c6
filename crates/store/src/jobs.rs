//! The jobs table: durable operations claimed under leases.
//!
//! Claiming is one conditional statement, for as many jobs as the worker has room for. On PostgreSQL the
//! candidate rows are locked with `FOR UPDATE SKIP LOCKED`, so concurrent workers on several servers take
//! different jobs; on SQLite the write lock serialises claimers. Either way the outer `WHERE` re-checks
//! that the job is still claimable, and every later write is conditional on the lease still being the
//! caller's.

use crate::sql::{Columns, placeholders};
use crate::{Backend, Bind, Db, Result, Row, Store, binds};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub resource_id: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_after: i64,
    pub locked_by: Option<String>,
    pub locked_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, kind, resource_id, payload, status, attempts, max_attempts, run_after, locked_by, \
                       locked_until, last_error, created_at, updated_at";

fn from_row(row: &Row) -> Result<JobRow> {
    Ok(JobRow {
        id: row.text(0)?,
        kind: row.text(1)?,
        resource_id: row.text(2)?,
        payload: row.text(3)?,
        status: row.text(4)?,
        attempts: row.int(5)?,
        max_attempts: row.int(6)?,
        run_after: row.int(7)?,
        locked_by: row.opt_text(8)?,
        locked_until: row.opt_int(9)?,
        last_error: row.opt_text(10)?,
        created_at: row.int(11)?,
        updated_at: row.int(12)?,
    })
}

/// Adds a pending job, normally inside the transaction that makes the change the job carries out.
pub async fn enqueue(db: &mut impl Db, job: &JobRow) -> Result<()> {
    db.execute(
        "INSERT INTO jobs (id, kind, resource_id, payload, status, attempts, max_attempts, run_after, locked_by, \
         locked_until, last_error, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, NULL, NULL, NULL, $7, $7)",
        &binds![
            &job.id,
            &job.kind,
            &job.resource_id,
            &job.payload,
            job.max_attempts,
            job.run_after,
            job.created_at,
        ],
    )
    .await?;
    Ok(())
}

/// Marks a job done, if `worker` still holds its lease; usually inside the transaction that records the
/// job's effect, so effect and completion land together.
pub async fn complete(db: &mut impl Db, id: &str, worker: &str, now: i64) -> Result<bool> {
    let done = db
        .execute(
            "UPDATE jobs SET status = 'done', locked_by = NULL, locked_until = NULL, updated_at = $3 \
             WHERE id = $1 AND status = 'running' AND locked_by = $2",
            &binds![id, worker, now],
        )
        .await?;
    Ok(done == 1)
}

impl Store {
    /// Claims the job whose lease expired first (its worker died), or else the next pending job that is
    /// due, for `lease_ms` ([`Store::claim_jobs`] of one).
    pub async fn claim_job(
        &self,
        worker: &str,
        now: i64,
        lease_now: i64,
        lease_ms: i64,
    ) -> Result<Option<JobRow>> {
        Ok(self
            .claim_jobs(worker, now, lease_now, lease_ms, 1)
            .await?
            .pop())
    }

    /// Claims up to `limit` jobs for `lease_ms` in one statement: those whose lease expired (their worker
    /// died) first, then pending jobs that are due, each oldest first. A runner with several free slots
    /// fills them with one round trip instead of one each, so its claims do not bound how many jobs it
    /// finishes a second. Each range is read from the first entry of its own range of `jobs_claimable`,
    /// so a claim costs the same with ten jobs waiting or ten thousand. Returned oldest due first.
    ///
    /// Due times are on `now`, the clock of the platform (which simulation mode moves); leases are on
    /// `lease_now`, the time all servers share, so moving the clock does not expire a lease another
    /// server holds.
    pub async fn claim_jobs(
        &self,
        worker: &str,
        now: i64,
        lease_now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<JobRow>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // PostgreSQL looks the claimed ids up in the primary key through an array; SQLite does the same
        // with `IN`, which PostgreSQL could plan as a join over the whole table.
        let (lock, open, close) = match self.backend() {
            Backend::Postgres => ("FOR UPDATE SKIP LOCKED", "= ANY(ARRAY(", "))"),
            Backend::Sqlite => ("", "IN (", ")"),
        };
        let sql = format!(
            "UPDATE jobs SET status = 'running', locked_by = $1, locked_until = $3, attempts = attempts + 1, \
             updated_at = $2 \
             WHERE id {open}\
             SELECT id FROM (SELECT id FROM jobs WHERE status = 'running' AND locked_until <= $5 \
             ORDER BY run_after, id LIMIT $4 {lock}) expired \
             UNION ALL \
             SELECT id FROM (SELECT id FROM jobs WHERE status = 'pending' AND run_after <= $2 \
             ORDER BY run_after, id LIMIT $4 {lock}) due \
             LIMIT $4{close} \
             AND ((status = 'pending' AND run_after <= $2) OR (status = 'running' AND locked_until <= $5)) \
             RETURNING {COLUMNS}"
        );
        let rows = self
            .fetch_all(
                &sql,
                &binds![
                    worker,
                    now,
                    lease_now + lease_ms,
                    i64::try_from(limit).unwrap_or(i64::MAX),
                    lease_now
                ],
            )
            .await?;
        let mut claimed = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        // RETURNING keeps no order; a job whose lease expired was due before it was first claimed.
        claimed.sort_by(|a, b| (a.run_after, &a.id).cmp(&(b.run_after, &b.id)));
        Ok(claimed)
    }

    /// Extends a lease the worker still holds to `lease_ms` after `lease_now` (the time leases are
    /// measured on, see [`Store::claim_jobs`]); false when it was lost (expired and taken over).
    pub async fn heartbeat_job(
        &self,
        id: &str,
        worker: &str,
        now: i64,
        lease_now: i64,
        lease_ms: i64,
    ) -> Result<bool> {
        let done = self
            .execute(
                "UPDATE jobs SET locked_until = $3, updated_at = $4 WHERE id = $1 AND status = 'running' \
                 AND locked_by = $2",
                &binds![id, worker, lease_now + lease_ms, now],
            )
            .await?;
        Ok(done == 1)
    }

    /// Gives a job back for another attempt at `run_after`.
    pub async fn retry_job(
        &self,
        id: &str,
        worker: &str,
        error: &str,
        run_after: i64,
        now: i64,
    ) -> Result<bool> {
        let done = self
            .execute(
                "UPDATE jobs SET status = 'pending', locked_by = NULL, locked_until = NULL, last_error = $3, \
                 run_after = $4, updated_at = $5 WHERE id = $1 AND status = 'running' AND locked_by = $2",
                &binds![id, worker, error, run_after, now],
            )
            .await?;
        Ok(done == 1)
    }

    /// Puts a job back to run again at `run_after` with a new payload, without spending an attempt: the
    /// job is waiting on something (a machine booting), not failing.
    pub async fn defer_job(
        &self,
        id: &str,
        worker: &str,
        payload: &str,
        run_after: i64,
        now: i64,
    ) -> Result<bool> {
        let done = self
            .execute(
                "UPDATE jobs SET status = 'pending', locked_by = NULL, locked_until = NULL, payload = $3, \
                 attempts = attempts - 1, run_after = $4, updated_at = $5 \
                 WHERE id = $1 AND status = 'running' AND locked_by = $2",
                &binds![id, worker, payload, run_after, now],
            )
            .await?;
        Ok(done == 1)
    }

    /// Dead-letters a job: it stays, failed, for operators to see.
    pub async fn fail_job(&self, id: &str, worker: &str, error: &str, now: i64) -> Result<bool> {
        let done = self
            .execute(
                "UPDATE jobs SET status = 'failed', locked_by = NULL, locked_until = NULL, last_error = $3, \
                 updated_at = $4 WHERE id = $1 AND status = 'running' AND locked_by = $2",
                &binds![id, worker, error, now],
            )
            .await?;
        Ok(done == 1)
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRow>> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        let row = self.fetch_optional(&sql, &binds![id]).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Jobs in the given states, oldest first (operators' view of pending and dead-lettered work).
    pub async fn jobs_with_status(&self, statuses: &[&str], limit: u32) -> Result<Vec<JobRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE status IN ({}) ORDER BY created_at, id LIMIT ${}",
            placeholders(1, statuses.len()),
            statuses.len() + 1
        );
        let mut binds: Vec<Bind> = statuses.iter().map(|s| Bind::from(*s)).collect();
        binds.push(i64::from(limit).into());
        let rows = self.fetch_all(&sql, &binds).await?;
        rows.iter().map(from_row).collect()
    }

    /// What operators follow: pending and running jobs, and dead letters whose instance still exists (the
    /// failure of an instance since deleted needs nobody's attention), oldest first.
    pub async fn jobs_for_operators(&self, limit: u32) -> Result<Vec<JobRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE status IN ('pending', 'running') OR (status = 'failed' \
             AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = jobs.resource_id \
             AND i.status = 'DELETED')) ORDER BY created_at, id LIMIT $1"
        );
        let rows = self.fetch_all(&sql, &binds![i64::from(limit)]).await?;
        rows.iter().map(from_row).collect()
    }

    /// A page of [`Store::jobs_for_operators`], narrowed to one status when given, with the total.
    pub async fn jobs_for_operators_page(
        &self,
        status: Option<&str>,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<JobRow>, u64)> {
        let followed = "(status IN ('pending', 'running') OR (status = 'failed' \
             AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = jobs.resource_id \
             AND i.status = 'DELETED')))";
        let (narrow, mut binds): (&str, Vec<Bind>) = match status {
            Some(status) => (" AND status = $1", vec![Bind::from(status)]),
            None => ("", vec![]),
        };
        let total = self
            .read_int(
                &format!("SELECT COUNT(*) FROM jobs WHERE {followed}{narrow}"),
                &binds,
            )
            .await?;
        let n = binds.len();
        binds.push(i64::from(limit).into());
        binds.push(i64::try_from(offset).unwrap_or(i64::MAX).into());
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE {followed}{narrow} ORDER BY created_at, id \
             LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let rows = self.fetch_all(&sql, &binds).await?;
        let rows = rows.iter().map(from_row).collect::<Result<_>>()?;
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }

    /// Jobs not finished yet (pending or running).
    pub async fn unfinished_jobs(&self) -> Result<u64> {
        let n = self
            .read_int(
                "SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'running')",
                &[],
            )
            .await?;
        Ok(n as u64)
    }

    /// (kind, status, count, earliest due time) of the jobs not finished, per kind and status (pending
    /// or running): what an operator watches the queue by. The due time is the earliest `run_after` of
    /// those due by `now` (running ones were): a job scheduled for later (a lease's end, a retry's
    /// backoff) is counted but is not waiting for a worker.
    pub async fn job_queue(&self, now: i64) -> Result<Vec<(String, String, i64, Option<i64>)>> {
        let rows = self
            .fetch_all(
                "SELECT kind, status, COUNT(*), \
                 MIN(CASE WHEN status = 'running' OR run_after <= $1 THEN run_after END) FROM jobs \
                 WHERE status IN ('pending', 'running') GROUP BY kind, status ORDER BY kind, status",
                &binds![now],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?, r.int(2)?, r.opt_int(3)?)))
            .collect()
    }
}

//! The jobs table: durable operations claimed under leases.
//!
//! Claiming is one conditional statement. On PostgreSQL the candidate row is locked with
//! `FOR UPDATE SKIP LOCKED`, so concurrent workers on several servers take different jobs; on SQLite the
//! write lock serialises claimers. Either way the outer `WHERE` re-checks that the job is still claimable,
//! and every later write is conditional on the lease still being the caller's.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use crate::sql::placeholders;
use crate::{Backend, Result, Store};

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

fn from_row(row: &AnyRow) -> Result<JobRow> {
    Ok(JobRow {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        resource_id: row.try_get("resource_id")?,
        payload: row.try_get("payload")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        run_after: row.try_get("run_after")?,
        locked_by: row.try_get("locked_by")?,
        locked_until: row.try_get("locked_until")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Adds a pending job, normally inside the transaction that makes the change the job carries out.
pub async fn enqueue<'c, E: Executor<'c, Database = Any>>(db: E, job: &JobRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO jobs (id, kind, resource_id, payload, status, attempts, max_attempts, run_after, locked_by, \
         locked_until, last_error, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, NULL, NULL, NULL, $7, $7)",
    )
    .bind(&job.id)
    .bind(&job.kind)
    .bind(&job.resource_id)
    .bind(&job.payload)
    .bind(job.max_attempts)
    .bind(job.run_after)
    .bind(job.created_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Marks a job done, if `worker` still holds its lease; usually inside the transaction that records the
/// job's effect, so effect and completion land together.
pub async fn complete<'c, E: Executor<'c, Database = Any>>(
    db: E,
    id: &str,
    worker: &str,
    now: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET status = 'done', locked_by = NULL, locked_until = NULL, updated_at = $3 \
         WHERE id = $1 AND status = 'running' AND locked_by = $2",
    )
    .bind(id)
    .bind(worker)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    /// Claims the next job that is due, or whose lease expired (its worker died), for `lease_ms`.
    pub async fn claim_job(&self, worker: &str, now: i64, lease_ms: i64) -> Result<Option<JobRow>> {
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let claimable = "((status = 'pending' AND run_after <= $2) OR (status = 'running' AND locked_until <= $2))";
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'running', locked_by = $1, locked_until = $3, attempts = attempts + 1, \
             updated_at = $2 \
             WHERE id = (SELECT id FROM jobs WHERE {claimable} ORDER BY run_after, id LIMIT 1 {lock}) \
             AND {claimable} RETURNING {COLUMNS}"
        ));
        let row = sqlx::query(sql)
            .bind(worker)
            .bind(now)
            .bind(now + lease_ms)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Extends a lease the worker still holds; false when it was lost (expired and taken over).
    pub async fn heartbeat_job(
        &self,
        id: &str,
        worker: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET locked_until = $3, updated_at = $4 WHERE id = $1 AND status = 'running' AND locked_by = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(now + lease_ms)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
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
        let done = sqlx::query(
            "UPDATE jobs SET status = 'pending', locked_by = NULL, locked_until = NULL, last_error = $3, \
             run_after = $4, updated_at = $5 WHERE id = $1 AND status = 'running' AND locked_by = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(error)
        .bind(run_after)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Dead-letters a job: it stays, failed, for operators to see.
    pub async fn fail_job(&self, id: &str, worker: &str, error: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'failed', locked_by = NULL, locked_until = NULL, last_error = $3, updated_at = $4 \
             WHERE id = $1 AND status = 'running' AND locked_by = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(error)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRow>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"));
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Jobs in the given states, oldest first (operators' view of pending and dead-lettered work).
    pub async fn jobs_with_status(&self, statuses: &[&str], limit: u32) -> Result<Vec<JobRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE status IN ({}) ORDER BY created_at, id LIMIT ${}",
            placeholders(1, statuses.len()),
            statuses.len() + 1
        ));
        let mut query = sqlx::query(sql);
        for status in statuses {
            query = query.bind(*status);
        }
        let rows = query.bind(i64::from(limit)).fetch_all(self.pool()).await?;
        rows.iter().map(from_row).collect()
    }

    /// Jobs not finished yet (pending or running).
    pub async fn unfinished_jobs(&self) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'running')")
                .fetch_one(self.pool())
                .await?;
        Ok(n as u64)
    }
}

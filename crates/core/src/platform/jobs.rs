//! The job runner: claims due jobs under leases, runs their handlers while heartbeating, and records the
//! outcome (done, retry with backoff, or dead-letter after the last attempt).
//!
//! A handler must be idempotent and keyed by its resource: a server that dies after a handler's effect
//! but before the job is marked done runs the job again when the lease expires, on whichever server
//! claims it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use barrack_store::jobs::{self, JobRow};
use barrack_store::{Store, Tx};
use rand::Rng;
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::Result;
use crate::platform::clock::Clock;
use crate::platform::ids::random_alphanumeric;

/// What one attempt of a job came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Done, and marked done already by the handler, in the transaction that recorded its effect (with
    /// [`complete_in`]): one commit instead of two, and nothing left for the runner to record.
    Completed,
    /// Try again later (a transient failure); dead-lettered once attempts run out.
    Retry(String),
    /// Give up now (a permanent failure; the handler has recorded its effect on the resource).
    Fail(String),
    /// Not finished but not failing either: run the job again after `after_ms` with `payload` (what it
    /// has done so far), without spending an attempt. A job waiting on a booting machine gives its slot
    /// back this way instead of holding it for the whole boot.
    Wait {
        after_ms: i64,
        payload: String,
    },
}

#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn run(&self, job: &JobRow) -> Outcome;

    /// Called instead of [`JobHandler::run`] for a job claimed again after its last attempt ended
    /// without an outcome (every attempt's lease expired: the server running it died, or hung, perhaps
    /// because of the job itself). The job is not run again; the handler records `reason` on its
    /// resource as it would a permanent failure, and the runner dead-letters the job whatever this
    /// returns. By default only the job is dead-lettered.
    async fn abandon(&self, job: &JobRow, reason: &str) -> Outcome {
        let _ = job;
        Outcome::Fail(reason.to_string())
    }
}

/// Timing of claims, leases and retries.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// How long a claim lasts without a heartbeat; a dead worker's jobs are taken over after this. Real
    /// time ([`Clock::real_ms`]): moving the simulation clock does not shorten it.
    pub lease_ms: i64,
    /// Delay before the second attempt; doubles each attempt up to `max_backoff_ms`.
    pub base_backoff_ms: i64,
    pub max_backoff_ms: i64,
    /// How often an idle runner looks for due jobs (it is also woken by pokes).
    pub poll_interval: Duration,
    /// Jobs a runner has in flight at once: operations wait on the driver, not on this server.
    pub concurrency: usize,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            lease_ms: 30_000,
            base_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            poll_interval: Duration::from_millis(500),
            concurrency: 32,
        }
    }
}

/// A new job for [`enqueue`].
pub struct NewJob<'a> {
    pub kind: &'a str,
    pub resource_id: &'a str,
    pub payload: String,
    pub max_attempts: i64,
}

/// Writes a job inside the caller's transaction; poke the runner after the commit.
pub async fn enqueue(tx: &mut Tx, job: NewJob<'_>, now: i64) -> Result<String> {
    enqueue_at(tx, job, now, now).await
}

/// [`enqueue`], due at `run_after` rather than at once (work planned for a time, such as an expiry).
pub async fn enqueue_at(tx: &mut Tx, job: NewJob<'_>, now: i64, run_after: i64) -> Result<String> {
    let id = format!("job-{}", random_alphanumeric(16));
    let row = JobRow {
        id: id.clone(),
        kind: job.kind.to_string(),
        resource_id: job.resource_id.to_string(),
        payload: job.payload,
        status: "pending".into(),
        attempts: 0,
        max_attempts: job.max_attempts,
        run_after,
        locked_by: None,
        locked_until: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    };
    jobs::enqueue(&mut *tx, &row).await?;
    Ok(id)
}

/// Marks the claimed `job` done inside the handler's transaction, so that its effect and its completion
/// commit together; the handler then returns [`Outcome::Completed`]. False, and logged, when the lease
/// was lost (another worker took the job over; the handler's effect, checked against its resource's
/// generation, still holds).
pub async fn complete_in(tx: &mut Tx, job: &JobRow, now: i64) -> Result<bool> {
    let completed = match job.locked_by.as_deref() {
        Some(worker) => jobs::complete(&mut *tx, &job.id, worker, now).await?,
        None => false,
    };
    if !completed {
        tracing::warn!(job = %job.id, kind = %job.kind, "job lease lost while finishing; its outcome is recorded");
    }
    Ok(completed)
}

pub struct JobRunner {
    store: Store,
    clock: Arc<dyn Clock>,
    worker_id: String,
    settings: JobSettings,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    poke: Arc<Notify>,
}

impl JobRunner {
    pub fn new(store: Store, clock: Arc<dyn Clock>, settings: JobSettings) -> JobRunner {
        JobRunner {
            store,
            clock,
            worker_id: format!("worker-{}", random_alphanumeric(10)),
            settings,
            handlers: HashMap::new(),
            poke: Arc::new(Notify::new()),
        }
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    pub fn register(&mut self, kind: &str, handler: Arc<dyn JobHandler>) {
        self.handlers.insert(kind.to_string(), handler);
    }

    /// A handle that wakes the runner when new work was committed.
    pub fn poker(&self) -> Arc<Notify> {
        self.poke.clone()
    }

    /// Wakes on this handle instead (the services' shared one).
    pub fn wake_on(&mut self, poke: Arc<Notify>) {
        self.poke = poke;
    }

    /// Claims and runs one due job; `None` when nothing is due.
    pub async fn run_one(&self) -> Result<Option<(JobRow, Outcome)>> {
        match self.claim(1).await?.pop() {
            Some(job) => Ok(Some(self.run_claimed(job).await?)),
            None => Ok(None),
        }
    }

    /// Up to `slots` due jobs, claimed in one statement.
    async fn claim(&self, slots: usize) -> Result<Vec<JobRow>> {
        let (now, lease_now) = (self.clock.now_ms(), self.clock.real_ms());
        Ok(self
            .store
            .claim_jobs(
                &self.worker_id,
                now,
                lease_now,
                self.settings.lease_ms,
                slots,
            )
            .await?)
    }

    /// Runs a job this runner holds the lease of, and records how it went. An attempt counts when it is
    /// claimed, so a job claimed past its last attempt is one whose every attempt ended with its lease
    /// expiring (a job that crashes the server would otherwise crash it on every restart): it is not run
    /// again but abandoned, and dead-lettered.
    async fn run_claimed(&self, job: JobRow) -> Result<(JobRow, Outcome)> {
        let outcome = match self.handlers.get(&job.kind) {
            Some(handler) if job.attempts > job.max_attempts => {
                let reason = format!(
                    "the job's {} attempts ended without an outcome (the server running it stopped)",
                    job.max_attempts
                );
                tracing::error!(
                    job = %job.id, kind = %job.kind, resource = %job.resource_id,
                    max_attempts = job.max_attempts,
                    "{reason}; it is not run again"
                );
                match handler.abandon(&job, &reason).await {
                    Outcome::Completed => Outcome::Completed,
                    Outcome::Retry(error) | Outcome::Fail(error) => Outcome::Fail(error),
                    Outcome::Done | Outcome::Wait { .. } => Outcome::Fail(reason),
                }
            }
            Some(handler) => self.run_with_heartbeat(handler.as_ref(), &job).await,
            None => Outcome::Fail(format!("no handler for job kind '{}'", job.kind)),
        };
        self.record(&job, &outcome).await?;
        Ok((job, outcome))
    }

    /// Runs due jobs until none is left (deterministic tests drive the runner this way); returns how many ran.
    pub async fn run_until_idle(&self) -> Result<usize> {
        let mut ran = 0;
        while self.run_one().await?.is_some() {
            ran += 1;
        }
        Ok(ran)
    }

    async fn run_with_heartbeat(&self, handler: &dyn JobHandler, job: &JobRow) -> Outcome {
        let beat = Duration::from_millis((self.settings.lease_ms / 3).max(10) as u64);
        let work = handler.run(job);
        tokio::pin!(work);
        let mut ticker = tokio::time::interval(beat);
        ticker.tick().await;
        loop {
            tokio::select! {
                outcome = &mut work => return outcome,
                _ = ticker.tick() => {
                    let (now, lease_now) = (self.clock.now_ms(), self.clock.real_ms());
                    match self.store.heartbeat_job(&job.id, &self.worker_id, now, lease_now, self.settings.lease_ms).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(job = %job.id, "lease lost while running; another worker took the job"),
                        Err(e) => tracing::warn!(job = %job.id, error = %e, "heartbeat failed"),
                    }
                }
            }
        }
    }

    async fn record(&self, job: &JobRow, outcome: &Outcome) -> Result<()> {
        let now = self.clock.now_ms();
        let kept = match outcome {
            Outcome::Completed => true,
            Outcome::Done => {
                jobs::complete(&mut &self.store, &job.id, &self.worker_id, now).await?
            }
            // Attempts are this job's own (counted at each claim), whatever the error text counts.
            Outcome::Retry(error) if job.attempts < job.max_attempts => {
                let run_after = now + self.backoff_ms(job.attempts);
                tracing::info!(
                    job = %job.id, kind = %job.kind, attempt = job.attempts, max_attempts = job.max_attempts,
                    retry_in_ms = run_after - now, error = %error,
                    "attempt {} of {} of the job failed; it will be retried", job.attempts, job.max_attempts
                );
                self.store
                    .retry_job(&job.id, &self.worker_id, error, run_after, now)
                    .await?
            }
            Outcome::Wait { after_ms, payload } => {
                self.store
                    .defer_job(&job.id, &self.worker_id, payload, now + after_ms, now)
                    .await?
            }
            Outcome::Retry(error) | Outcome::Fail(error) => {
                tracing::warn!(
                    job = %job.id, kind = %job.kind, attempts = job.attempts, max_attempts = job.max_attempts,
                    error = %error,
                    "attempt {} of {} of the job failed; it is dead-lettered", job.attempts, job.max_attempts
                );
                self.store
                    .fail_job(&job.id, &self.worker_id, error, now)
                    .await?
            }
        };
        if !kept {
            tracing::warn!(job = %job.id, "job outcome not recorded: the lease was taken over");
        }
        Ok(())
    }

    /// Exponential backoff with ±20 % jitter, so retries of many jobs do not arrive together.
    fn backoff_ms(&self, attempts: i64) -> i64 {
        let exponent = (attempts - 1).clamp(0, 20) as u32;
        let base = self
            .settings
            .base_backoff_ms
            .saturating_mul(1 << exponent)
            .min(self.settings.max_backoff_ms);
        let jitter = rand::thread_rng().gen_range(-(base / 5)..=(base / 5));
        (base + jitter).max(1)
    }

    /// Runs jobs in the background until `shutdown` turns true: up to `concurrency` at once, claiming
    /// while there is due work and a free slot (as many jobs as there are free slots, in one statement),
    /// then sleeping until poked, until a job ends, or until the poll interval passes. At shutdown the
    /// jobs in flight get [`SHUTDOWN_GRACE`] to finish; any still running then are left to their leases,
    /// and run again by whichever server claims them next.
    pub fn spawn(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut running = JoinSet::new();
            loop {
                while running.try_join_next().is_some() {}
                if *shutdown.borrow() {
                    break;
                }
                let free = self
                    .settings
                    .concurrency
                    .max(1)
                    .saturating_sub(running.len());
                if free > 0 {
                    match self.claim(free).await {
                        Ok(jobs) if !jobs.is_empty() => {
                            // Fewer than asked for: nothing else is due, so wait instead of asking again.
                            let filled = jobs.len() == free;
                            for job in jobs {
                                let runner = self.clone();
                                running.spawn(async move {
                                    if let Err(e) = runner.run_claimed(job).await {
                                        tracing::warn!(error = %e, "job outcome could not be recorded");
                                    }
                                });
                            }
                            if filled {
                                continue;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "job runner could not claim work"),
                    }
                }
                tokio::select! {
                    _ = self.poke.notified() => {}
                    Some(_) = running.join_next(), if !running.is_empty() => {}
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
            }
            let drained = async { while running.join_next().await.is_some() {} };
            if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
                tracing::warn!(
                    jobs = running.len(),
                    "jobs still running at shutdown are left to their leases"
                );
            }
        })
    }
}

/// How long a stopping runner waits for the jobs it has in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A database error during a job is worth another attempt.
impl From<barrack_store::StoreError> for Outcome {
    fn from(e: barrack_store::StoreError) -> Self {
        Outcome::Retry(e.to_string())
    }
}

//! The job runner on both databases: leases, retries, dead letters, exactly-once under concurrency.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use barrack_core::clock::{Clock, ManualClock, OffsetClock};
use barrack_core::jobs::{
    JobHandler, JobRunner, JobSettings, NewJob, Outcome, complete_in, enqueue, enqueue_at,
};
use barrack_store::Store;
use barrack_store::jobs::JobRow;

use crate::common::{Db, START_MS, TestDatabase};
use crate::on_both_databases;

on_both_databases!(
    jobs_run_once_each_across_concurrent_runners,
    transient_failures_back_off_then_dead_letter,
    an_expired_lease_lets_another_worker_take_over,
    a_claim_fills_several_slots_with_due_jobs_only,
    batch_claims_side_by_side_take_each_job_once,
    a_running_server_runs_jobs_side_by_side,
    the_retry_log_counts_the_attempts_of_the_job,
    a_job_completed_in_its_handlers_transaction_lands_with_its_effect,
    a_job_whose_every_lease_expires_is_dead_lettered_not_run_again,
    moving_the_clock_leaves_the_leases_of_other_replicas_alone,
);

/// Counts runs per job; fails the first `failures` attempts of each.
#[derive(Default)]
struct Recorder {
    runs: Mutex<HashMap<String, u32>>,
    failures: u32,
}

#[async_trait]
impl JobHandler for Recorder {
    async fn run(&self, job: &JobRow) -> Outcome {
        let mut runs = self.runs.lock().unwrap();
        let n = runs.entry(job.resource_id.clone()).or_default();
        *n += 1;
        if *n <= self.failures {
            Outcome::Retry(format!("attempt {n} failed"))
        } else {
            Outcome::Done
        }
    }
}

async fn setup(db: Db) -> (TestDatabase, Store, Arc<ManualClock>) {
    let database = TestDatabase::create(db).await;
    let store = Store::connect(&database.url, 8).await.unwrap();
    store.migrate().await.unwrap();
    (
        database,
        store,
        Arc::new(ManualClock::starting_at(START_MS)),
    )
}

async fn add_jobs(store: &Store, n: usize, max_attempts: i64, now: i64) {
    let mut tx = store.begin().await.unwrap();
    for i in 0..n {
        let job = NewJob {
            kind: "test.record",
            resource_id: &format!("res-{i}"),
            payload: "{}".into(),
            max_attempts,
        };
        enqueue(&mut tx, job, now).await.unwrap();
    }
    tx.commit().await.unwrap();
}

fn runner<C: Clock>(store: &Store, clock: &Arc<C>, handler: Arc<dyn JobHandler>) -> JobRunner {
    let settings = JobSettings {
        lease_ms: 10_000,
        base_backoff_ms: 1_000,
        max_backoff_ms: 8_000,
        ..Default::default()
    };
    let mut runner = JobRunner::new(store.clone(), clock.clone() as Arc<dyn Clock>, settings);
    runner.register("test.record", handler);
    runner
}

async fn jobs_run_once_each_across_concurrent_runners(db: Db) {
    let (database, store, clock) = setup(db).await;
    add_jobs(&store, 200, 3, START_MS).await;
    let handler = Arc::new(Recorder::default());
    let runners: Vec<Arc<JobRunner>> = (0..4)
        .map(|_| Arc::new(runner(&store, &clock, handler.clone())))
        .collect();
    let tasks: Vec<_> = runners
        .iter()
        .map(|r| {
            let r = r.clone();
            tokio::spawn(async move { r.run_until_idle().await.unwrap() })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 200);
    {
        let runs = handler.runs.lock().unwrap();
        assert_eq!(runs.len(), 200);
        assert!(runs.values().all(|n| *n == 1), "every job ran exactly once");
    }
    assert_eq!(store.unfinished_jobs().await.unwrap(), 0);
    store.close().await;
    database.drop_database().await;
}

async fn transient_failures_back_off_then_dead_letter(db: Db) {
    let (database, store, clock) = setup(db).await;
    add_jobs(&store, 1, 3, START_MS).await;
    let handler = Arc::new(Recorder {
        failures: 2,
        ..Default::default()
    });
    let runner = runner(&store, &clock, handler.clone());

    let (job, outcome) = runner.run_one().await.unwrap().unwrap();
    assert_eq!(outcome, Outcome::Retry("attempt 1 failed".into()));
    assert!(
        runner.run_one().await.unwrap().is_none(),
        "not due again before its backoff"
    );
    let after = store.job(&job.id).await.unwrap().unwrap();
    assert_eq!((after.status.as_str(), after.attempts), ("pending", 1));
    assert_eq!(after.last_error.as_deref(), Some("attempt 1 failed"));
    let backoff = after.run_after - START_MS;
    assert!(
        (800..=1200).contains(&backoff),
        "first backoff about 1 s, was {backoff} ms"
    );

    clock.advance_ms(1_200);
    assert_eq!(
        runner.run_one().await.unwrap().unwrap().1,
        Outcome::Retry("attempt 2 failed".into())
    );
    let second = store.job(&job.id).await.unwrap().unwrap().run_after - clock.now_ms();
    assert!(
        (1600..=2400).contains(&second),
        "backoff doubles, was {second} ms"
    );
    clock.advance_ms(2_400);
    assert_eq!(runner.run_one().await.unwrap().unwrap().1, Outcome::Done);
    assert_eq!(store.job(&job.id).await.unwrap().unwrap().status, "done");

    // A job that keeps failing is dead-lettered after its last attempt.
    add_jobs(&store, 1, 2, clock.now_ms()).await;
    let stubborn = Arc::new(Recorder {
        failures: 99,
        ..Default::default()
    });
    let runner = self::runner(&store, &clock, stubborn);
    runner.run_one().await.unwrap().unwrap();
    clock.advance_ms(10_000);
    let (job, _) = runner.run_one().await.unwrap().unwrap();
    let dead = store.job(&job.id).await.unwrap().unwrap();
    assert_eq!((dead.status.as_str(), dead.attempts), ("failed", 2));
    assert_eq!(
        store.jobs_with_status(&["failed"], 10).await.unwrap().len(),
        1
    );
    clock.advance_ms(100_000);
    assert!(
        runner.run_one().await.unwrap().is_none(),
        "dead letters are not retried"
    );
    store.close().await;
    database.drop_database().await;
}

async fn an_expired_lease_lets_another_worker_take_over(db: Db) {
    let (database, store, clock) = setup(db).await;
    add_jobs(&store, 1, 3, START_MS).await;
    // Worker A claims and then dies without finishing.
    let claimed = store
        .claim_job("worker-a", clock.now_ms(), clock.now_ms(), 10_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.attempts, 1);
    let handler = Arc::new(Recorder::default());
    let b = runner(&store, &clock, handler.clone());
    assert!(
        b.run_one().await.unwrap().is_none(),
        "the lease is still held"
    );
    clock.advance_ms(5_000);
    assert!(
        store
            .heartbeat_job(
                &claimed.id,
                "worker-a",
                clock.now_ms(),
                clock.now_ms(),
                10_000
            )
            .await
            .unwrap(),
        "A extends its lease"
    );
    clock.advance_ms(9_000);
    assert!(
        b.run_one().await.unwrap().is_none(),
        "the extended lease still holds"
    );
    clock.advance_ms(1_001);
    let (job, outcome) = b.run_one().await.unwrap().unwrap();
    assert_eq!(
        (job.id.as_str(), outcome),
        (claimed.id.as_str(), Outcome::Done)
    );
    assert_eq!(job.attempts, 2);
    // A comes back: its lease is gone, so it can record nothing.
    assert!(
        !store
            .heartbeat_job(
                &claimed.id,
                "worker-a",
                clock.now_ms(),
                clock.now_ms(),
                10_000
            )
            .await
            .unwrap()
    );
    assert!(
        !barrack_store::jobs::complete(&mut &store, &claimed.id, "worker-a", clock.now_ms())
            .await
            .unwrap()
    );
    assert_eq!(
        store.job(&claimed.id).await.unwrap().unwrap().status,
        "done"
    );
    store.close().await;
    database.drop_database().await;
}

/// A claim for several slots takes the job whose lease expired and due pending jobs, no more than asked
/// for, and leaves alone a job whose lease still holds and one not due yet.
async fn a_claim_fills_several_slots_with_due_jobs_only(db: Db) {
    let (database, store, clock) = setup(db).await;
    add_jobs(&store, 6, 3, START_MS).await;
    // One claimed by a worker that then dies, one by a worker whose lease holds, one due in an hour.
    let dead = store
        .claim_job("worker-dead", START_MS, START_MS, 10_000)
        .await
        .unwrap()
        .unwrap();
    clock.advance_ms(5_000);
    let alive = store
        .claim_job("worker-alive", clock.now_ms(), clock.now_ms(), 60_000)
        .await
        .unwrap()
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    let later = NewJob {
        kind: "test.record",
        resource_id: "res-later",
        payload: "{}".into(),
        max_attempts: 3,
    };
    let later = enqueue_at(&mut tx, later, clock.now_ms(), clock.now_ms() + 3_600_000)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    clock.advance_ms(5_001);
    let now = clock.now_ms();

    assert!(
        store
            .claim_jobs("worker-b", now, now, 10_000, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let first = store
        .claim_jobs("worker-b", now, now, 10_000, 3)
        .await
        .unwrap();
    assert_eq!(first.len(), 3, "as many as asked for");
    let taken_over = first.iter().find(|j| j.id == dead.id);
    assert_eq!(
        taken_over.map(|j| j.attempts),
        Some(2),
        "the expired lease is taken first, as another attempt"
    );
    for job in &first {
        let stored = store.job(&job.id).await.unwrap().unwrap();
        assert_eq!(&stored, job, "the row returned is the row stored");
        assert_eq!(
            (
                job.status.as_str(),
                job.locked_by.as_deref(),
                job.locked_until
            ),
            ("running", Some("worker-b"), Some(now + 10_000))
        );
    }
    let second = store
        .claim_jobs("worker-c", now, now, 10_000, 10)
        .await
        .unwrap();
    assert_eq!(second.len(), 2, "the rest of the due jobs");
    let claimed: HashSet<&str> = first.iter().chain(&second).map(|j| j.id.as_str()).collect();
    assert_eq!(claimed.len(), 5);
    assert!(!claimed.contains(alive.id.as_str()), "a held lease is left");
    assert!(!claimed.contains(later.as_str()), "a job not due is left");
    assert!(
        second
            .windows(2)
            .all(|w| (w[0].run_after, &w[0].id) <= (w[1].run_after, &w[1].id))
    );
    assert!(
        store
            .claim_jobs("worker-c", now, now, 10_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;
    database.drop_database().await;
}

/// Workers claiming several jobs at a time, side by side, never take one job twice (on PostgreSQL the
/// rows are locked and skipped; on SQLite claims take turns).
async fn batch_claims_side_by_side_take_each_job_once(db: Db) {
    let (database, store, clock) = setup(db).await;
    add_jobs(&store, 300, 3, START_MS).await;
    let now = clock.now_ms();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let worker = format!("worker-{w}");
                    let batch = store
                        .claim_jobs(&worker, now, now, 60_000, 7)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    assert!(batch.len() <= 7);
                    assert!(
                        batch
                            .iter()
                            .all(|j| j.locked_by.as_deref() == Some(worker.as_str()))
                    );
                    mine.extend(batch.into_iter().map(|j| j.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (300, 300));
    assert!(
        store
            .claim_jobs("worker-9", now, now, 60_000, 7)
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;
    database.drop_database().await;
}

/// Never finishes `res-0` (a driver call that hangs); finishes every other job after a short wait, noting
/// how many ran at once.
#[derive(Default)]
struct Overlapping {
    in_flight: AtomicUsize,
    most_at_once: AtomicUsize,
    done: AtomicUsize,
}

#[async_trait]
impl JobHandler for Overlapping {
    async fn run(&self, job: &JobRow) -> Outcome {
        if job.resource_id == "res-0" {
            return std::future::pending().await;
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.done.fetch_add(1, Ordering::SeqCst);
        Outcome::Done
    }
}

async fn a_running_server_runs_jobs_side_by_side(db: Db) {
    let (database, store, clock) = setup(db).await;
    add_jobs(&store, 21, 3, START_MS).await;
    let handler = Arc::new(Overlapping::default());
    let settings = JobSettings {
        lease_ms: 60_000,
        concurrency: 4,
        ..Default::default()
    };
    let mut runner = JobRunner::new(store.clone(), clock.clone() as Arc<dyn Clock>, settings);
    runner.register("test.record", handler.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = Arc::new(runner).spawn(stopped);

    // The hung job holds a slot once claimed; the other twenty go through the rest, several at a time.
    tokio::time::timeout(Duration::from_secs(30), async {
        while store.unfinished_jobs().await.unwrap() > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the other jobs finish beside the hung one");
    assert_eq!(handler.done.load(Ordering::SeqCst), 20);
    let most = handler.most_at_once.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&most),
        "{most} jobs ran at once, with 4 slots"
    );
    let hung = store.jobs_with_status(&["running"], 10).await.unwrap();
    assert_eq!(hung.len(), 1);
    assert_eq!(hung[0].resource_id, "res-0");

    // Stopping does not wait for the hung job beyond the grace period; its lease stays for a takeover.
    stop.send(true).unwrap();
    tokio::time::timeout(barrack_core::jobs::SHUTDOWN_GRACE * 3, task)
        .await
        .expect("the runner stops despite the hung job")
        .unwrap();
    assert_eq!(
        store
            .jobs_with_status(&["running"], 10)
            .await
            .unwrap()
            .len(),
        1
    );
    store.close().await;
    database.drop_database().await;
}

/// Writes its effect (another job, due in an hour) and completes its job in one transaction; rolls that
/// transaction back instead while `failures` remain.
struct Effecting {
    store: Store,
    clock: Arc<ManualClock>,
    failures: AtomicUsize,
}

#[async_trait]
impl JobHandler for Effecting {
    async fn run(&self, job: &JobRow) -> Outcome {
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await.unwrap();
        let effect = NewJob {
            kind: "test.effect",
            resource_id: &format!("effect-of-{}", job.resource_id),
            payload: "{}".into(),
            max_attempts: 1,
        };
        enqueue_at(&mut tx, effect, now, now + 3_600_000)
            .await
            .unwrap();
        if !complete_in(&mut tx, job, now).await.unwrap() {
            return Outcome::Retry("lease lost".into());
        }
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            drop(tx);
            return Outcome::Retry("rolled back".into());
        }
        tx.commit().await.unwrap();
        Outcome::Completed
    }
}

/// Whether a job is done and how many effects it left, read from the jobs table.
async fn done_and_effects(store: &Store, job_id: &str, resource: &str) -> (String, usize) {
    let status = store.job(job_id).await.unwrap().unwrap().status;
    let effects = store
        .jobs_with_status(&["pending", "running", "done", "failed"], 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.resource_id == format!("effect-of-{resource}"))
        .count();
    (status, effects)
}

/// A handler that marks its job done inside its own transaction: the completion is undone with the
/// effect when that transaction is dropped, the runner records nothing over it when it commits, and a
/// worker that lost its lease cannot complete the job another worker now holds.
async fn a_job_completed_in_its_handlers_transaction_lands_with_its_effect(db: Db) {
    let (database, store, clock) = setup(db).await;
    add_jobs(&store, 1, 3, START_MS).await;
    let handler = Arc::new(Effecting {
        store: store.clone(),
        clock: clock.clone(),
        failures: AtomicUsize::new(1),
    });
    let runner = runner(&store, &clock, handler);

    let (job, outcome) = runner.run_one().await.unwrap().unwrap();
    assert_eq!(outcome, Outcome::Retry("rolled back".into()));
    assert_eq!(
        done_and_effects(&store, &job.id, "res-0").await,
        ("pending".to_string(), 0),
        "a dropped transaction takes the completion with the effect"
    );
    clock.advance_ms(2_000);
    let (again, outcome) = runner.run_one().await.unwrap().unwrap();
    assert_eq!(
        (again.id.as_str(), outcome),
        (job.id.as_str(), Outcome::Completed)
    );
    let done = store.job(&job.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status.as_str(), done.attempts, done.locked_by),
        ("done", 2, None)
    );
    assert_eq!(
        done_and_effects(&store, &job.id, "res-0").await,
        ("done".to_string(), 1)
    );
    assert!(
        runner.run_one().await.unwrap().is_none(),
        "nothing is left due: the effect waits an hour"
    );

    // Worker A claims and stalls past its lease; the runner takes the job over and completes it.
    let mut tx = store.begin().await.unwrap();
    let late = NewJob {
        kind: "test.record",
        resource_id: "res-late",
        payload: "{}".into(),
        max_attempts: 3,
    };
    enqueue(&mut tx, late, clock.now_ms()).await.unwrap();
    tx.commit().await.unwrap();
    let stalled = store
        .claim_job("worker-a", clock.now_ms(), clock.now_ms(), 10_000)
        .await
        .unwrap()
        .unwrap();
    clock.advance_ms(10_001);
    let (taken, outcome) = runner.run_one().await.unwrap().unwrap();
    assert_eq!(
        (taken.id.as_str(), outcome),
        (stalled.id.as_str(), Outcome::Completed)
    );
    let mut tx = store.begin().await.unwrap();
    assert!(
        !complete_in(&mut tx, &stalled, clock.now_ms())
            .await
            .unwrap(),
        "A's lease is gone"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        done_and_effects(&store, &stalled.id, &stalled.resource_id).await,
        ("done".to_string(), 1)
    );
    store.close().await;
    database.drop_database().await;
}

/// Log lines written while a test runs on this thread.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Other jobs failing in between do not shift the count: each line says which attempt of its own job
/// failed, out of how many.
async fn the_retry_log_counts_the_attempts_of_the_job(db: Db) {
    let (database, store, clock) = setup(db).await;
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    add_jobs(&store, 3, 2, START_MS).await;
    let handler = Arc::new(Recorder {
        failures: 99,
        ..Default::default()
    });
    let runner = runner(&store, &clock, handler);
    for _ in 0..3 {
        runner.run_one().await.unwrap().unwrap();
    }
    clock.advance_ms(10_000);
    for _ in 0..3 {
        runner.run_one().await.unwrap().unwrap();
    }
    let text = log.text();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("job=")).collect();
    assert_eq!(lines.len(), 6, "{text}");
    for line in &lines[..3] {
        assert!(
            line.contains("attempt 1 of 2 of the job failed; it will be retried"),
            "{line}"
        );
    }
    for line in &lines[3..] {
        assert!(
            line.contains("attempt 2 of 2 of the job failed; it is dead-lettered"),
            "{line}"
        );
    }
    store.close().await;
    database.drop_database().await;
}

/// Counts runs, which never end (the job takes its server down with it), and the reasons it was abandoned
/// with.
#[derive(Default)]
struct Crashing {
    runs: AtomicUsize,
    abandoned: Mutex<Vec<String>>,
}

#[async_trait]
impl JobHandler for Crashing {
    async fn run(&self, _job: &JobRow) -> Outcome {
        self.runs.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }

    async fn abandon(&self, _job: &JobRow, reason: &str) -> Outcome {
        self.abandoned.lock().unwrap().push(reason.to_string());
        Outcome::Fail(format!("resource failed: {reason}"))
    }
}

/// A job whose run kills the server is claimed again after each restart, once its lease expires; each
/// claim is an attempt, and once they are spent the job is dead-lettered (its handler told, to fail the
/// resource) instead of being run, and crashing the server, once more.
async fn a_job_whose_every_lease_expires_is_dead_lettered_not_run_again(db: Db) {
    let (database, store, clock) = setup(db).await;
    add_jobs(&store, 1, 3, START_MS).await;
    let handler = Arc::new(Crashing::default());
    // Three servers in turn claim the job, start it and die: nothing is recorded but the claim.
    for attempt in 1..=3 {
        let server = Arc::new(runner(&store, &clock, handler.clone()));
        let running = tokio::spawn({
            let server = server.clone();
            async move { server.run_one().await }
        });
        tokio::time::timeout(Duration::from_secs(10), async {
            while handler.runs.load(Ordering::SeqCst) < attempt {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the job runs");
        running.abort();
        let _ = running.await;
        let job = store.jobs_with_status(&["running"], 10).await.unwrap();
        assert_eq!(job.len(), 1);
        assert_eq!(job[0].attempts, attempt as i64, "each claim is an attempt");
        clock.advance_ms(10_001);
    }
    // The next server's claim finds the attempts spent: the job is dead-lettered, not run.
    let next = runner(&store, &clock, handler.clone());
    let (job, outcome) = next.run_one().await.unwrap().unwrap();
    assert_eq!(
        handler.runs.load(Ordering::SeqCst),
        3,
        "not run a fourth time"
    );
    let abandoned = handler.abandoned.lock().unwrap().clone();
    assert_eq!(abandoned.len(), 1);
    assert!(
        abandoned[0].contains("3 attempts ended without an outcome"),
        "{abandoned:?}"
    );
    assert_eq!(
        outcome,
        Outcome::Fail(format!("resource failed: {}", abandoned[0]))
    );
    let dead = store.job(&job.id).await.unwrap().unwrap();
    assert_eq!(dead.status, "failed");
    assert_eq!(
        dead.last_error,
        Some(format!("resource failed: {}", abandoned[0]))
    );
    assert_eq!(store.unfinished_jobs().await.unwrap(), 0);
    clock.advance_ms(100_000);
    assert!(
        next.run_one().await.unwrap().is_none(),
        "dead letters stay dead"
    );
    store.close().await;
    database.drop_database().await;
}

/// Each replica in simulation mode follows a move of the clock at its own moment. Leases are on real
/// time, so a replica that moved first does not take over a job another replica still runs (it would
/// run twice), while what is due follows the moved clock; a dead worker's lease still runs out, in real
/// time.
async fn moving_the_clock_leaves_the_leases_of_other_replicas_alone(db: Db) {
    let (database, store, _) = setup(db).await;
    let (clock_a, clock_b) = (
        Arc::new(OffsetClock::default()),
        Arc::new(OffsetClock::default()),
    );
    add_jobs(&store, 1, 3, clock_a.now_ms()).await;
    let held = store
        .claim_job("worker-a", clock_a.now_ms(), clock_a.real_ms(), 10_000)
        .await
        .unwrap()
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    let later = NewJob {
        kind: "test.record",
        resource_id: "res-later",
        payload: "{}".into(),
        max_attempts: 3,
    };
    let later = enqueue_at(
        &mut tx,
        later,
        clock_a.now_ms(),
        clock_a.now_ms() + 3_600_000,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // B follows a move of ten hours; A, still running its job, has not yet.
    assert!(clock_b.advance_ms(600 * 60_000));
    let handler = Arc::new(Recorder::default());
    let b = runner(&store, &clock_b, handler.clone());
    let (job, outcome) = b.run_one().await.unwrap().unwrap();
    assert_eq!(
        (job.id.as_str(), outcome),
        (later.as_str(), Outcome::Done),
        "a job due in an hour is due on the moved clock"
    );
    assert!(
        b.run_one().await.unwrap().is_none(),
        "A's lease holds after the move: its job is not taken over"
    );
    assert!(
        store
            .heartbeat_job(
                &held.id,
                "worker-a",
                clock_a.now_ms(),
                clock_a.real_ms(),
                10_000
            )
            .await
            .unwrap(),
        "A still holds its job"
    );
    assert!(
        barrack_store::jobs::complete(&mut &store, &held.id, "worker-a", clock_a.now_ms())
            .await
            .unwrap(),
        "A records its outcome"
    );
    assert_eq!(
        handler.runs.lock().unwrap().keys().collect::<Vec<_>>(),
        vec!["res-later"],
        "B ran only the job that was due"
    );

    // A worker that dies leaves a lease that runs out in real time, moved clock or not.
    let mut tx = store.begin().await.unwrap();
    let orphan = NewJob {
        kind: "test.record",
        resource_id: "res-orphan",
        payload: "{}".into(),
        max_attempts: 3,
    };
    let orphan = enqueue(&mut tx, orphan, clock_a.now_ms()).await.unwrap();
    tx.commit().await.unwrap();
    store
        .claim_job("worker-dead", clock_a.now_ms(), clock_a.real_ms(), 200)
        .await
        .unwrap()
        .unwrap();
    assert!(b.run_one().await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (job, outcome) = b.run_one().await.unwrap().unwrap();
    assert_eq!((job.id.as_str(), outcome), (orphan.as_str(), Outcome::Done));
    assert_eq!(job.attempts, 2, "taken over as another attempt");
    store.close().await;
    database.drop_database().await;
}

//! The simulation clock's offset from real time, shared by every server on the database.

use crate::capacity::CapacityRow;
use crate::sql::Columns;
use crate::{Db, Result, Store, StoreError, binds};

/// See [`Store::driver_view`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverView {
    pub resets: i64,
    pub specs: Vec<String>,
    pub capacity: Vec<CapacityRow>,
    /// The simulated hosts lost ([`Store::lose_simulated_host`]), by name.
    pub lost_hosts: Vec<String>,
}

/// A turn at moving the simulation clock ([`Store::clock_turn`]), given back when dropped.
pub struct ClockTurn {
    _local: tokio::sync::OwnedMutexGuard<()>,
    _shared: Shared,
}

/// What holds the turn for the other servers, until it is dropped.
#[expect(
    dead_code,
    reason = "held, never read: dropping it gives the turn back"
)]
enum Shared {
    Postgres(crate::Tx),
    File(std::fs::File),
    Nothing,
}

/// The advisory lock of the clock's turns (the migrations' is 7366101).
const CLOCK_TURN_LOCK: i64 = 7366102;

impl Store {
    /// The offset the simulation clock has been moved to (0 if it never moved).
    pub async fn clock_offset(&self) -> Result<i64> {
        let row = self
            .fetch_optional("SELECT offset_ms FROM simulation_clock WHERE id = 1", &[])
            .await?;
        Ok(row.map(|r| r.int(0)).transpose()?.unwrap_or(0))
    }

    /// How many times the simulation was reset (0 if never).
    pub async fn simulation_resets(&self) -> Result<i64> {
        let row = self
            .fetch_optional("SELECT resets FROM simulation_clock WHERE id = 1", &[])
            .await?;
        Ok(row.map(|r| r.int(0)).transpose()?.unwrap_or(0))
    }

    /// Moves the offset forward by `ms` in one statement (concurrent moves add up) and returns the new one.
    /// On PostgreSQL every server on the database hears of it at once ([`Store::clock_moves`]); on SQLite
    /// the others read it at their next meter run.
    pub async fn add_clock_offset(&self, ms: i64) -> Result<i64> {
        let offset = self
            .fetch_one(
                "INSERT INTO simulation_clock (id, offset_ms) VALUES (1, $1) ON CONFLICT (id) DO UPDATE \
                 SET offset_ms = simulation_clock.offset_ms + excluded.offset_ms RETURNING offset_ms",
                &binds![ms],
            )
            .await?
            .int(0)?;
        if self.backend() == crate::Backend::Postgres {
            self.execute(
                "SELECT pg_notify($1, $2)",
                &binds![crate::key_cache::CLOCK_CHANNEL, &offset.to_string()],
            )
            .await?;
        }
        Ok(offset)
    }

    /// Waits for a turn at moving the simulation clock, which no other request of any server on the
    /// database has until the turn is dropped: a move in steps sizes each step from the meter run
    /// before it, which another move between them would make wrong (minutes charged past the credit).
    /// On PostgreSQL the turn is a transaction holding an advisory lock, so a server that dies gives
    /// its turn back with its connection.
    pub async fn clock_turn(&self) -> Result<ClockTurn> {
        let local = self.clock_turns.clone().lock_owned().await;
        let shared = match self.backend() {
            crate::Backend::Postgres => {
                let mut tx = self.begin().await?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &binds![CLOCK_TURN_LOCK])
                    .await?;
                Shared::Postgres(tx)
            }
            // The servers of a database file share its machine: a lock on a file beside it.
            crate::Backend::Sqlite => match self.sqlite_path() {
                Some(path) => {
                    let mut name = path.as_os_str().to_owned();
                    name.push("-clock");
                    let file = tokio::task::spawn_blocking(move || {
                        let file = std::fs::OpenOptions::new()
                            .create(true)
                            .truncate(false)
                            .write(true)
                            .open(&name)?;
                        file.lock()?;
                        Ok::<_, std::io::Error>(file)
                    })
                    .await
                    .map_err(|e| StoreError::Unexpected(e.to_string()))?
                    .map_err(|e| StoreError::Unexpected(format!("the clock's lock file: {e}")))?;
                    Shared::File(file)
                }
                // In memory: no other process reaches the database.
                None => Shared::Nothing,
            },
        };
        Ok(ClockTurn {
            _local: local,
            _shared: shared,
        })
    }

    /// The offsets of the simulation clock other servers on the database moved it to, as they announce
    /// them (PostgreSQL only; never on SQLite).
    pub fn clock_moves(&self) -> tokio::sync::watch::Receiver<i64> {
        self.clock_moves.subscribe()
    }
}

/// A scenario of the simulated data centre as stored: what it is, what it covers, the request as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioRow {
    pub id: String,
    pub kind: String,
    /// A region, `REGION/MODEL`, or a host: two scenarios of a kind never share one.
    pub target: String,
    pub spec: String,
    pub created_at: i64,
}

/// The GPUs a scenario holds back from a region's stock (every model, or one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Withhold {
    /// Nothing (a slow host).
    Nothing,
    /// All of it: an outage.
    All { region: String },
    /// All but `available` units of what is free now, per model.
    AllBut {
        region: String,
        gpu_model: Option<String>,
        available: i64,
    },
}

/// What adding a scenario came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScenarioAdded {
    Added,
    /// A scenario of its kind covers its target already.
    SameTarget,
    /// This scenario holds back the same stock.
    Overlaps(String),
}

const SCENARIO_COLUMNS: &str = "id, kind, target, spec, created_at";

fn scenario(row: &crate::Row) -> Result<ScenarioRow> {
    Ok(ScenarioRow {
        id: row.text(0)?,
        kind: row.text(1)?,
        target: row.text(2)?,
        spec: row.text(3)?,
        created_at: row.int(4)?,
    })
}

impl Store {
    pub async fn scenarios(&self) -> Result<Vec<ScenarioRow>> {
        let sql =
            format!("SELECT {SCENARIO_COLUMNS} FROM simulation_scenarios ORDER BY created_at, id");
        self.fetch_all(&sql, &[])
            .await?
            .iter()
            .map(scenario)
            .collect()
    }

    /// Stores a scenario and holds back the stock it withholds, in one transaction, unless a scenario of
    /// its kind covers the same target or `overlaps` says an existing one holds back the same stock.
    /// Adding scenarios is serialised across servers (the transaction first locks the simulation clock's
    /// row), so the check sees every scenario committed before it and two overlapping ones cannot both go
    /// in.
    pub async fn add_scenario(
        &self,
        row: &ScenarioRow,
        withhold: &Withhold,
        overlaps: impl Fn(&ScenarioRow) -> bool,
        now: i64,
    ) -> Result<ScenarioAdded> {
        let mut tx = self.begin().await?;
        // A write to one row every adder writes: on PostgreSQL the row lock queues them until the first
        // commits (each later statement then reads its scenario); SQLite runs one writer at a time anyway.
        tx.execute(
            "INSERT INTO simulation_clock (id, offset_ms) VALUES (1, 0) ON CONFLICT (id) \
             DO UPDATE SET offset_ms = simulation_clock.offset_ms",
            &[],
        )
        .await?;
        let sql =
            format!("SELECT {SCENARIO_COLUMNS} FROM simulation_scenarios ORDER BY created_at, id");
        for existing in tx.fetch_all(&sql, &[]).await? {
            let existing = scenario(&existing)?;
            if overlaps(&existing) {
                return Ok(ScenarioAdded::Overlaps(existing.id));
            }
            if existing.kind == row.kind && existing.target == row.target {
                return Ok(ScenarioAdded::SameTarget);
            }
        }
        let inserted = tx
            .execute(
                &crate::sql::insert_sql("simulation_scenarios", SCENARIO_COLUMNS),
                &binds![&row.id, &row.kind, &row.target, &row.spec, row.created_at],
            )
            .await;
        match inserted {
            Err(crate::StoreError::Unique(_)) => return Ok(ScenarioAdded::SameTarget),
            other => other?,
        };
        match withhold {
            Withhold::Nothing => {}
            Withhold::All { region } => {
                tx.execute(
                    "UPDATE gpu_capacity SET withheld = total, updated_at = $2 WHERE region = $1",
                    &binds![region, now],
                )
                .await?;
            }
            Withhold::AllBut {
                region,
                gpu_model,
                available,
            } => {
                tx.execute(
                    "UPDATE gpu_capacity SET updated_at = $4, withheld = CASE WHEN total - allocated > $3 \
                     THEN total - allocated - $3 ELSE 0 END WHERE region = $1 AND ($2 IS NULL OR gpu_model = $2)",
                    &binds![region, gpu_model.as_deref(), *available, now],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(ScenarioAdded::Added)
    }

    /// Removes a scenario and gives back the stock it withheld; the removed scenario, if it existed.
    pub async fn remove_scenario(
        &self,
        id: &str,
        withheld: impl Fn(&ScenarioRow) -> Withhold,
        now: i64,
    ) -> Result<Option<ScenarioRow>> {
        let mut tx = self.begin().await?;
        let sql =
            format!("DELETE FROM simulation_scenarios WHERE id = $1 RETURNING {SCENARIO_COLUMNS}");
        let Some(row) = tx.fetch_optional(&sql, &binds![id]).await? else {
            return Ok(None);
        };
        let row = scenario(&row)?;
        let (region, gpu_model) = match withheld(&row) {
            Withhold::Nothing => (None, None),
            Withhold::All { region } => (Some(region), None),
            Withhold::AllBut {
                region, gpu_model, ..
            } => (Some(region), gpu_model),
        };
        if let Some(region) = region {
            tx.execute(
                "UPDATE gpu_capacity SET withheld = 0, updated_at = $3 WHERE region = $1 \
                 AND ($2 IS NULL OR gpu_model = $2)",
                &binds![&region, gpu_model.as_deref(), now],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Some(row))
    }

    /// Whether a scenario of `kind` covers `target`.
    pub async fn scenario_covers(&self, kind: &str, target: &str) -> Result<bool> {
        Ok(self
            .fetch_optional(
                "SELECT 1 FROM simulation_scenarios WHERE kind = $1 AND target = $2",
                &binds![kind, target],
            )
            .await?
            .is_some())
    }

    /// Records a simulated host as lost, for every server on the database, until a reset.
    pub async fn lose_simulated_host(&self, host: &str, now: i64) -> Result<()> {
        self.execute(
            "INSERT INTO simulation_lost_hosts (host, lost_at) VALUES ($1, $2) ON CONFLICT (host) DO NOTHING",
            &binds![host, now],
        )
        .await?;
        Ok(())
    }

    /// What a compute driver is told before it acts, in one read (the workers ask on every job run):
    /// the number of simulation resets, the specs of the scenarios of `kind`, the capacity ledger (in
    /// no particular order: each row is told on its own) and the lost simulated hosts.
    pub async fn driver_view(&self, kind: &str) -> Result<DriverView> {
        let rows = self
            .fetch_all(
                "SELECT 0, CAST(resets AS TEXT), NULL, 0, 0, 0, 0 FROM simulation_clock WHERE id = 1 \
                 UNION ALL SELECT 1, spec, NULL, 0, 0, 0, 0 FROM simulation_scenarios WHERE kind = $1 \
                 UNION ALL SELECT 2, region, gpu_model, total, allocated, withheld, lost FROM gpu_capacity \
                 UNION ALL SELECT 3, host, NULL, 0, 0, 0, 0 FROM simulation_lost_hosts",
                &binds![kind],
            )
            .await?;
        let mut view = DriverView::default();
        for row in rows {
            match row.int(0)? {
                0 => view.resets = row.text(1)?.parse().unwrap_or(0),
                1 => view.specs.push(row.text(1)?),
                3 => view.lost_hosts.push(row.text(1)?),
                _ => view.capacity.push(CapacityRow::from_row(&row, 1)?),
            }
        }
        Ok(view)
    }
}

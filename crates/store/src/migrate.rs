//! Schema migrations, embedded in the binary: one folder per backend, one list, so they cannot drift
//! apart in number or order (their contents are compared by the schema-parity test).

use sqlx::{Executor, Row};

use crate::{Backend, Result, Store, StoreError};

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sqlite: include_str!(concat!("../migrations/sqlite/", $name, ".sql")),
            postgres: include_str!(concat!("../migrations/postgres/", $name, ".sql")),
        }
    };
}

pub static MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_foundation"),
    migration!(2, "0002_jobs"),
    migration!(3, "0003_instances"),
    migration!(4, "0004_scripts"),
    migration!(5, "0005_volumes"),
    migration!(6, "0006_live_instance_index"),
    migration!(7, "0007_snapshots_images"),
    migration!(8, "0008_firewalls"),
    migration!(9, "0009_billing"),
    migration!(10, "0010_deposits"),
    migration!(11, "0011_unbilled_index"),
    migration!(12, "0012_simulation_clock"),
    migration!(13, "0013_covering_live_index"),
];

impl Migration {
    fn sql(&self, backend: Backend) -> &'static str {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        }
    }

    /// FNV-1a of the SQL text: detects a migration edited after it was applied.
    fn checksum(&self, backend: Backend) -> String {
        let mut hash: u64 = 0xcbf29ce484222325;
        for byte in self.sql(backend).bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x100000001b3);
        }
        format!("{hash:016x}")
    }
}

/// Applies every migration not applied yet, each in its own transaction. Several servers starting at once
/// on PostgreSQL take turns through an advisory lock; on SQLite the write lock does the same.
pub(crate) async fn run(store: &Store) -> Result<Vec<&'static Migration>> {
    let backend = store.backend();
    let mut conn = store.pool().acquire().await?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
         checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await?;
    if backend == Backend::Postgres {
        conn.execute("SELECT pg_advisory_lock(7366101)").await?;
    }
    let result = apply_pending(&mut conn, backend).await;
    if backend == Backend::Postgres {
        conn.execute("SELECT pg_advisory_unlock(7366101)").await?;
    }
    result
}

async fn apply_pending(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    backend: Backend,
) -> Result<Vec<&'static Migration>> {
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        let begin = if backend == Backend::Sqlite {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        conn.execute(begin).await?;
        let existing = sqlx::query("SELECT checksum FROM schema_migrations WHERE version = $1")
            .bind(migration.version)
            .fetch_optional(&mut **conn)
            .await;
        let step = async {
            match existing? {
                Some(row) => {
                    let checksum: String = row.try_get(0)?;
                    if checksum != migration.checksum(backend) {
                        return Err(StoreError::MigrationChanged {
                            version: migration.version,
                            name: migration.name.to_string(),
                        });
                    }
                    Ok(false)
                }
                None => {
                    sqlx::raw_sql(migration.sql(backend)).execute(&mut **conn).await?;
                    sqlx::query(
                        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(migration.version)
                    .bind(migration.name)
                    .bind(migration.checksum(backend))
                    .bind(now_ms())
                    .execute(&mut **conn)
                    .await?;
                    Ok(true)
                }
            }
        }
        .await;
        match step {
            Ok(new) => {
                conn.execute("COMMIT").await?;
                if new {
                    tracing::info!(
                        version = migration.version,
                        name = migration.name,
                        "applied migration"
                    );
                    applied.push(migration);
                }
            }
            Err(e) => {
                conn.execute("ROLLBACK").await.ok();
                return Err(e);
            }
        }
    }
    Ok(applied)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

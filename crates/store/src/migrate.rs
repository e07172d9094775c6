//! Schema migrations, embedded in the binary: one folder per backend, one list, so they cannot drift
//! apart in number or order (their contents are compared by the schema-parity test).

use std::collections::HashMap;

use crate::sql::Columns;
use crate::{Backend, Db, Result, Store, StoreError, Tx};

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
    migration!(14, "0014_live_instance_counts"),
    migration!(15, "0015_billing_carry"),
    migration!(16, "0016_web_sessions"),
    migration!(17, "0017_ai_requests"),
    migration!(18, "0018_token_sessions"),
    migration!(19, "0019_depletions"),
    migration!(20, "0020_public_ip_assignments"),
    migration!(21, "0021_idempotency_keys"),
    migration!(22, "0022_instance_ssh_port"),
    migration!(23, "0023_labels_leases"),
    migration!(24, "0024_event_stream_webhooks"),
    migration!(25, "0025_deploy_holds"),
    migration!(26, "0026_simulation_scenarios"),
    migration!(27, "0027_open_period_rates"),
    migration!(28, "0028_period_minute_rates"),
    migration!(29, "0029_webhook_delivery_age_index"),
    migration!(30, "0030_billing_period_page_room"),
    migration!(31, "0031_check_equalities"),
    migration!(32, "0032_commitment_indexes"),
    migration!(33, "0033_open_period_rate_counts"),
    migration!(34, "0034_live_instance_counts_at_commit"),
    migration!(35, "0035_heading_instance_counts"),
    migration!(36, "0036_heading_count_in_plpgsql"),
    migration!(37, "0037_deploy_admission"),
    migration!(38, "0038_admission_statements_in_functions"),
    migration!(39, "0039_deploy_admission_with_check"),
    migration!(40, "0040_opened_periods_counted_per_statement"),
    migration!(41, "0041_lost_gpus"),
    migration!(42, "0042_meter_owed"),
    migration!(43, "0043_ai_holds"),
    migration!(44, "0044_grown_boot_volumes"),
    migration!(45, "0045_login_failures"),
    migration!(46, "0046_cancelled_deposits"),
    migration!(47, "0047_simulation_lost_hosts"),
    migration!(48, "0048_stopping_heads_to_a_billed_state"),
    migration!(49, "0049_creating_snapshots_committed"),
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

/// Whether the migrations table exists, asked of the catalogue so a missing table is an answer, not an
/// error.
pub(crate) async fn is_set_up(store: &Store) -> Result<bool> {
    let sql = match store.backend() {
        Backend::Sqlite => {
            "SELECT CAST(COUNT(*) AS BIGINT) FROM sqlite_master WHERE type = 'table' \
             AND name = 'schema_migrations'"
        }
        Backend::Postgres => {
            "SELECT CAST(COUNT(*) AS BIGINT) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'schema_migrations'"
        }
    };
    let row = store.fetch_one(sql, &[]).await?;
    Ok(row.int(0)? > 0)
}

/// Applies every migration not applied yet, all in one transaction: a server starting on an up-to-date
/// database reads the applied checksums with one statement, and one on an empty database commits its
/// schema once; a migration that fails leaves none of the run applied. Several servers starting at once
/// on PostgreSQL take turns through a transaction-level advisory lock; on SQLite the write lock does the
/// same.
pub(crate) async fn run(store: &Store, on_empty: impl FnOnce()) -> Result<Vec<&'static Migration>> {
    let backend = store.backend();
    let mut tx = begin_in_turn(store).await?;
    tx.execute_script(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
         checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let existing: HashMap<i64, String> = tx
        .fetch_all("SELECT version, checksum FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| Ok((row.int(0)?, row.text(1)?)))
        .collect::<Result<_>>()?;
    if existing.is_empty() {
        on_empty();
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        if let Some(checksum) = existing.get(&migration.version) {
            if *checksum != migration.checksum(backend) {
                return Err(StoreError::MigrationChanged {
                    version: migration.version,
                    name: migration.name.to_string(),
                });
            }
            continue;
        }
        applied.push(migration);
    }
    if !applied.is_empty() {
        tx.execute_script(&script(&applied, backend, now_ms()))
            .await?;
    }
    tx.commit().await?;
    for migration in &applied {
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
    }
    Ok(applied)
}

/// The migrations and their rows in `schema_migrations`, as one script: sent to PostgreSQL as one
/// message, an empty database's whole schema costs one round trip instead of two per migration.
fn script(migrations: &[&Migration], backend: Backend, applied_at: i64) -> String {
    let mut script = String::new();
    for migration in migrations {
        // The separator ends a last statement without its semicolon, or a last line that is a comment.
        script.push_str(migration.sql(backend));
        script.push_str(&format!(
            "\n;\nINSERT INTO schema_migrations (version, name, checksum, applied_at) \
             VALUES ({}, '{}', '{}', {applied_at});\n",
            migration.version,
            migration.name.replace('\'', "''"),
            migration.checksum(backend),
        ));
    }
    script
}

/// A transaction that has the migrations to itself until it ends.
async fn begin_in_turn(store: &Store) -> Result<Tx> {
    let mut tx = store.begin().await?;
    if store.backend() == Backend::Postgres {
        tx.execute("SELECT pg_advisory_xact_lock(7366101)", &[])
            .await?;
    }
    Ok(tx)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

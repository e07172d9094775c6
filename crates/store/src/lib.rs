//! Barrack's persistence: every SQL statement of the project lives in this crate.
//!
//! One code path serves SQLite (the zero-configuration default) and PostgreSQL (operators, replicas)
//! through sqlx's `Any` driver; on a SQLite file the hot single-value reads run on the calling thread
//! instead (`sqlite_reads`), with the same SQL. Conventions that keep the two alike
//! (`notes/dual-database.md`):
//! `$n` placeholders, ids as TEXT, times as BIGINT epoch milliseconds, money as BIGINT micro-units,
//! state changes as single conditional statements checked by rows affected.

pub mod accounts;
pub mod api_keys;
pub mod billing;
pub mod capacity;
pub mod deposits;
pub mod events;
pub mod firewalls;
pub mod images;
pub mod instances;
pub mod jobs;
pub mod ledger;
mod migrate;
pub mod public_ips;
pub mod scripts;
mod simulation;
pub mod snapshots;
pub mod sql;
mod sqlite_reads;
pub mod ssh_keys;
pub mod volumes;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use migrate::{MIGRATIONS, Migration};
pub use sqlx::{Any, AnyConnection, Transaction};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated: {0}")]
    Unique(String),
    #[error("unsupported database URL '{0}': use sqlite:// or postgres://")]
    UnsupportedUrl(String),
    #[error("migration {version} ({name}) was changed after it was applied")]
    MigrationChanged { version: i64, name: String },
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("database error: {0}")]
    SqliteRead(#[source] rusqlite::Error),
    #[error("unexpected data from the database: {0}")]
    Unexpected(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let Some(db) = e.as_database_error()
            && db.kind() == sqlx::error::ErrorKind::UniqueViolation
        {
            return StoreError::Unique(db.constraint().unwrap_or(db.message()).to_string());
        }
        StoreError::Database(e)
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A pool of connections to one database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite files only (not in-memory databases): the hot reads' own connections.
    sqlite_reads: Option<Arc<sqlite_reads::SqliteReads>>,
}

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://...`). SQLite files are created when missing
    /// and switched to WAL mode.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let max_connections = match backend {
            // One writer at a time; readers beyond the cores only add page caches (measured: 16
            // connections idled at 46 MiB and served no faster than 3).
            Backend::Sqlite => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
                max_connections.min(cores + 1)
            }
            Backend::Postgres => max_connections,
        };
        let mut pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30));
        if backend == Backend::Sqlite {
            // A file cannot drop a connection; pinging it before every query would double the cost of
            // each one.
            pool = pool.test_before_acquire(false).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;")
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options).await?;
        let mut sqlite_reads = None;
        if backend == Backend::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL").await?;
            let file: String =
                sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                    .fetch_one(&pool)
                    .await?;
            if !file.is_empty() {
                sqlite_reads = Some(Arc::new(sqlite_reads::SqliteReads::new(
                    file.into(),
                    max_connections as usize,
                )));
            }
        }
        Ok(Store {
            pool,
            backend,
            sqlite_reads,
        })
    }

    /// Opens (creating if needed) the SQLite database file at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Store::connect(&url, 8).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn sqlite_reads(&self) -> Option<&sqlite_reads::SqliteReads> {
        self.sqlite_reads.as_deref()
    }

    /// Begins a write transaction. SQLite takes its write lock up front (`BEGIN IMMEDIATE`), so two
    /// writers queue on the busy timeout instead of failing on a lock upgrade.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub async fn migrate(&self) -> Result<Vec<&'static Migration>> {
        migrate::run(self).await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Hides the password of a database URL for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// Converts a stored 0/1 flag.
pub(crate) fn flag(value: i64) -> bool {
    value != 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            super::redact_url("sqlite:///tmp/x.db"),
            "sqlite:///tmp/x.db"
        );
    }
}

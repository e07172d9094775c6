//! Barrack's persistence: every SQL statement of the project lives in this crate.
//!
//! One code path serves SQLite (the zero-configuration default, through rusqlite on the calling thread)
//! and PostgreSQL (operators, replicas, through sqlx): see [`db`]. Conventions that keep the two alike
//! (`notes/dual-database.md`): `$n` placeholders, ids as TEXT, times as BIGINT epoch milliseconds, money
//! as BIGINT micro-units, state changes as single conditional statements checked by rows affected.

pub mod accounts;
pub mod admission;
pub mod ai;
pub mod api_keys;
pub mod billing;
pub mod capacity;
pub mod db;
pub mod deploy_holds;
pub mod deposits;
pub mod events;
pub mod firewalls;
pub mod idempotency;
pub mod images;
pub mod instances;
pub mod jobs;
mod key_cache;
pub mod labels;
pub mod leases;
pub mod ledger;
pub mod login_failures;
mod migrate;
mod postgres;
pub mod public_ips;
pub mod scripts;
pub mod simulation;
pub mod snapshots;
pub mod sql;
mod sqlite;
pub mod ssh_keys;
pub mod state;
pub mod token_sessions;
pub mod volumes;
pub mod web_sessions;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

pub use db::{Bind, Db, Row, Tx};
pub use migrate::{MIGRATIONS, Migration};

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
    #[error(
        "unsupported database URL '{0}': use sqlite://PATH[?mode=rwc|rw], sqlite::memory: or postgres://..."
    )]
    UnsupportedUrl(String),
    #[error("migration {version} ({name}) was changed after it was applied")]
    MigrationChanged { version: i64, name: String },
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
    #[error("database busy: {0}")]
    Busy(String),
    /// The database could not be reached or refused the connection: the cause, in one line.
    #[error("{0}")]
    Connect(String),
    #[error("database error: the commit failed: {0}")]
    Commit(String),
    #[error("unexpected data from the database: {0}")]
    Unexpected(String),
    /// PostgreSQL gave up the transaction for another it conflicted with (a deadlock, or a serialization
    /// failure): nothing it wrote stays, and the same request may be tried again.
    #[error("the transaction conflicted with a concurrent one: {0}")]
    Conflict(String),
}

impl StoreError {
    /// Whether the database could not be reached, or no connection came free in time: the request may
    /// succeed later, unlike a fault in what it asked.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Connect(_) => true,
            StoreError::Database(e) => matches!(
                e,
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
            ),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let Some(db) = e.as_database_error()
            && db.kind() == sqlx::error::ErrorKind::UniqueViolation
        {
            return StoreError::Unique(db.constraint().unwrap_or(db.message()).to_string());
        }
        if let Some(db) = e.as_database_error()
            && matches!(db.code().as_deref(), Some("40P01" | "40001"))
        {
            return StoreError::Conflict(db.message().to_string());
        }
        StoreError::Database(e)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::{SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE};
        if let rusqlite::Error::SqliteFailure(failure, message) = &e
            && matches!(
                failure.extended_code,
                SQLITE_CONSTRAINT_UNIQUE | SQLITE_CONSTRAINT_PRIMARYKEY
            )
        {
            return StoreError::Unique(message.clone().unwrap_or_else(|| e.to_string()));
        }
        StoreError::Sqlite(e)
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One database: SQLite's connections or PostgreSQL's pool. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Store {
    engine: Arc<Engine>,
    /// API-key lookups (see [`key_cache`]).
    keys: Option<Arc<key_cache::KeyCache>>,
    listener: Option<Arc<key_cache::ListenerGuard>>,
    /// The simulation clock's offsets announced by the servers on the database (see
    /// [`Store::clock_moves`]).
    clock_moves: Arc<tokio::sync::watch::Sender<i64>>,
    /// Whose turn it is to move the simulation clock in this process (see [`Store::clock_turn`]).
    clock_turns: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug)]
enum Engine {
    Sqlite(sqlite::Sqlite),
    Postgres(sqlx::PgPool),
}

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://...`). SQLite files are created when the URL
    /// says `mode=rwc`, and switched to WAL mode. `max_connections` bounds PostgreSQL's pool and SQLite's
    /// read connections.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        let engine = if url.starts_with("sqlite:") {
            // Readers beyond the cores only add page caches (measured: 16 connections idled at 46 MiB and
            // served no faster than 3).
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let readers = (max_connections as usize).min(cores + 1);
            Engine::Sqlite(sqlite::Sqlite::open(url, readers)?)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            // Every statement is prepared once per connection and kept (the API's statements number
            // in the low hundreds, more than sqlx's default cache holds).
            let options: sqlx::postgres::PgConnectOptions = url.parse()?;
            let options = options.statement_cache_capacity(1024);
            // One connection now, so that a database out of reach fails here, at once and with its
            // cause: the pool retries until its timeout, then says only that it timed out.
            let first =
                tokio::time::timeout(CONNECT_TIMEOUT, sqlx::ConnectOptions::connect(&options))
                    .await
                    .map_err(|_| {
                        StoreError::Connect(format!(
                            "no answer in {} seconds",
                            CONNECT_TIMEOUT.as_secs()
                        ))
                    })?
                    .map_err(connect_failed)?;
            sqlx::Connection::close(first)
                .await
                .map_err(connect_failed)?;
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(max_connections)
                // As many warm connections as the cores can keep busy (see `Store::warm_up`), so a burst
                // does not wait for connection set-up.
                .min_connections(max_connections.min(cores * 2))
                // No ping before each use: it was a round trip for every statement. A connection that
                // died fails its statement instead and is discarded; connections are renewed hourly.
                .test_before_acquire(false)
                .max_lifetime(Duration::from_secs(3600))
                .acquire_timeout(ACQUIRE_TIMEOUT)
                // Not `connect_with`, which opens every warm connection, one after another, before it
                // returns: at a server's start that was most of the time to its first statement.
                .connect_lazy_with(options);
            Engine::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let clock_moves = Arc::new(tokio::sync::watch::Sender::new(0));
        let (keys, listener) = match &engine {
            Engine::Postgres(pool) => {
                let cache = Arc::new(key_cache::KeyCache::default());
                let listener = key_cache::spawn_listener(
                    url.to_string(),
                    pool.clone(),
                    Arc::downgrade(&cache),
                    Arc::downgrade(&clock_moves),
                );
                (Some(cache), Some(Arc::new(listener)))
            }
            Engine::Sqlite(sqlite) => (
                key_cache::KeyCache::sqlite(sqlite.path()).map(Arc::new),
                None,
            ),
        };
        Ok(Store {
            engine: Arc::new(engine),
            keys,
            listener,
            clock_moves,
            clock_turns: Arc::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        match *self.engine {
            Engine::Sqlite(_) => Backend::Sqlite,
            Engine::Postgres(_) => Backend::Postgres,
        }
    }

    /// Begins a write transaction. On SQLite it holds the writer (and SQLite's write lock, taken up
    /// front) until it ends, so write transactions run one after another; those that queued together
    /// share one commit.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match &*self.engine {
            Engine::Sqlite(sqlite) => Tx::sqlite(sqlite.begin().await?),
            Engine::Postgres(pool) => Tx::postgres(Box::pin(pool.begin()).await?),
        })
    }

    /// Runs statements separated by semicolons, with nothing bound, outside any transaction (statements
    /// that cannot run in one, such as PostgreSQL's `CREATE DATABASE`).
    pub async fn execute_script(&self, sql: &str) -> Result<()> {
        match &*self.engine {
            Engine::Sqlite(sqlite) => sqlite.execute_script(sql).await,
            Engine::Postgres(pool) => postgres::execute_script(pool, sql).await,
        }
    }

    /// Opens the rest of PostgreSQL's warm connections in the background, all at once, and keeps them
    /// in the pool; a server calls it once it answers, so they open behind its start (on a schema just
    /// created each one rebuilds the catalogue caches) instead of beside or before it. Nothing to do on
    /// SQLite.
    pub fn warm_up(&self) {
        let Engine::Postgres(pool) = &*self.engine else {
            return;
        };
        let pool = pool.clone();
        tokio::spawn(async move {
            let warm = pool.options().get_min_connections() as usize;
            let mut opening = tokio::task::JoinSet::new();
            for _ in 0..warm {
                let pool = pool.clone();
                opening.spawn(async move { pool.acquire().await });
            }
            // Held until every one is open: a connection given back at once would be taken again
            // instead of another being opened.
            let mut open = Vec::with_capacity(warm);
            while let Some(connection) = opening.join_next().await {
                match connection {
                    Ok(Ok(connection)) => open.push(connection),
                    Ok(Err(e)) => tracing::debug!(error = %e, "cannot open a warm connection"),
                    Err(_) => {}
                }
            }
        });
    }

    pub async fn migrate(&self) -> Result<Vec<&'static Migration>> {
        migrate::run(self, || {}).await
    }

    /// [`Store::migrate`], calling `on_empty` first when the database is empty (no migration applied
    /// yet), so that work a first start needs can run beside the migrations.
    pub async fn migrate_with(&self, on_empty: impl FnOnce()) -> Result<Vec<&'static Migration>> {
        migrate::run(self, on_empty).await
    }

    /// The SQLite database's file (none on PostgreSQL or in memory).
    pub(crate) fn sqlite_path(&self) -> Option<&std::path::Path> {
        match &*self.engine {
            Engine::Sqlite(sqlite) => sqlite.path(),
            Engine::Postgres(_) => None,
        }
    }

    /// Whether a Barrack server ever set this database up (its migrations table exists), as opposed to
    /// an empty database.
    pub async fn is_set_up(&self) -> Result<bool> {
        migrate::is_set_up(self).await
    }

    /// Whether the database answers a query within `timeout`. A SQLite file that is no longer at its path
    /// (its volume unmounted, the file removed) counts as unreachable: writes would go nowhere durable.
    pub async fn ping(&self, timeout: Duration) -> Result<()> {
        if let Engine::Sqlite(sqlite) = &*self.engine
            && let Some(path) = sqlite.path()
            && !path.exists()
        {
            return Err(StoreError::Unexpected(format!(
                "the database file {} is gone",
                path.display()
            )));
        }
        match tokio::time::timeout(timeout, self.fetch_one("SELECT 1", &[])).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(StoreError::Unexpected(format!(
                "the database did not answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    /// Tells this process and every other server on the database (see [`key_cache`]) that the account or
    /// one of its keys changed, so none keeps using a cached lookup of them. Every write to `accounts` or
    /// `api_keys` that can change what authenticating a key gives calls this after it commits.
    pub async fn auth_changed(&self, account_id: &str) -> Result<()> {
        self.announce_auth_change(account_id).await
    }

    /// [`Store::auth_changed`] for every account at once (a reset or an import replaced them all).
    pub async fn auth_changed_everywhere(&self) -> Result<()> {
        self.announce_auth_change(key_cache::EVERY_ACCOUNT).await
    }

    /// Forgets the cached lookups of `account` (an account id or [`key_cache::EVERY_ACCOUNT`]) here and
    /// tells the other servers, through SQLite's file of changes or PostgreSQL's `NOTIFY`.
    async fn announce_auth_change(&self, account: &str) -> Result<()> {
        if let Some(keys) = &self.keys {
            keys.forget(account);
            keys.announce().map_err(announce_failed)?;
        }
        if let Engine::Postgres(_) = &*self.engine {
            self.execute(
                "SELECT pg_notify($1, $2)",
                &binds![key_cache::CHANNEL, account],
            )
            .await?;
        }
        Ok(())
    }

    /// (open, idle) connections of PostgreSQL's pool; `None` on SQLite, whose connections are fixed.
    pub fn pool_usage(&self) -> Option<(u32, usize)> {
        match &*self.engine {
            Engine::Postgres(pool) => Some((pool.size(), pool.num_idle())),
            Engine::Sqlite(_) => None,
        }
    }

    pub async fn close(&self) {
        if let Some(listener) = &self.listener {
            listener.stop();
        }
        if let Engine::Postgres(pool) = &*self.engine {
            pool.close().await;
        }
    }
}

/// Each statement on its own: writes commit at once; on SQLite, reads run on a read connection.
///
/// sqlx's futures are large, and every future that awaits a statement would hold one, SQLite's
/// included, and be copied whole each time it moves: they are boxed, so it holds a pointer.
impl Store {
    pub async fn execute(&self, sql: &str, binds: &[Bind<'_>]) -> Result<u64> {
        match &*self.engine {
            Engine::Sqlite(sqlite) => sqlite.execute(sql, binds).await,
            Engine::Postgres(pool) => Box::pin(postgres::execute(pool, sql, binds)).await,
        }
    }

    pub async fn fetch_all(&self, sql: &str, binds: &[Bind<'_>]) -> Result<Vec<Row>> {
        match &*self.engine {
            Engine::Sqlite(sqlite) => sqlite.query(sql, binds, usize::MAX).await,
            Engine::Postgres(pool) => Box::pin(postgres::fetch_all(pool, sql, binds)).await,
        }
    }

    pub async fn fetch_optional(&self, sql: &str, binds: &[Bind<'_>]) -> Result<Option<Row>> {
        match &*self.engine {
            Engine::Sqlite(sqlite) => Ok(sqlite.query(sql, binds, 1).await?.pop()),
            Engine::Postgres(pool) => Box::pin(postgres::fetch_optional(pool, sql, binds)).await,
        }
    }

    pub async fn fetch_one(&self, sql: &str, binds: &[Bind<'_>]) -> Result<Row> {
        self.fetch_optional(sql, binds)
            .await?
            .ok_or_else(|| StoreError::Unexpected("the statement returned no row".into()))
    }
}

impl Db for &Store {
    fn backend(&self) -> Backend {
        Store::backend(self)
    }

    async fn execute(&mut self, sql: &str, binds: &[Bind<'_>]) -> Result<u64> {
        Store::execute(self, sql, binds).await
    }

    async fn fetch_all(&mut self, sql: &str, binds: &[Bind<'_>]) -> Result<Vec<Row>> {
        Store::fetch_all(self, sql, binds).await
    }

    async fn fetch_optional(&mut self, sql: &str, binds: &[Bind<'_>]) -> Result<Option<Row>> {
        Store::fetch_optional(self, sql, binds).await
    }
}

/// SQLite's file of key and account changes could not be written: the other servers on the database
/// may go on using what they cached.
fn announce_failed(e: std::io::Error) -> StoreError {
    StoreError::Unexpected(format!("cannot announce a key or account change: {e}"))
}

/// Hides the password of a database URL for logs and errors: in the user information and in a
/// `password=` query parameter (which PostgreSQL URLs accept too).
/// How long a PostgreSQL connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request waits for a pooled connection before it is answered 503: long enough for a burst
/// to drain, short enough that a database out of reach does not hold clients for half a minute each.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection failed, in one line: the database's message or the cause beneath sqlx's wording,
/// once (sqlx's errors repeat their source's text in their own).
fn connect_failed(e: sqlx::Error) -> StoreError {
    let cause = match &e {
        sqlx::Error::Database(db) => db.message().to_string(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Tls(tls) => format!("TLS: {tls}"),
        other => other.to_string(),
    };
    StoreError::Connect(cause)
}

pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut redacted = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &base[scheme + 3..at];
            // The password masked, when there is one.
            let user = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => userinfo.to_string(),
            };
            format!("{}://{user}@{}", &base[..scheme], &base[at + 1..])
        }
        _ => base.to_string(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_string(),
            })
            .collect();
        redacted = format!("{redacted}?{}", pairs.join("&"));
    }
    redacted
}

#[cfg(test)]
mod tests {
    #[test]
    fn pool_timeouts_and_lost_connections_are_unreachable() {
        use super::StoreError;
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_unreachable());
        assert!(StoreError::Database(sqlx::Error::PoolClosed).is_unreachable());
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(StoreError::Database(sqlx::Error::Io(reset)).is_unreachable());
        assert!(StoreError::Connect("refused".into()).is_unreachable());
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_unreachable());
        assert!(!StoreError::Unexpected("x".into()).is_unreachable());
    }

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
        // No password, nothing masked.
        assert_eq!(
            super::redact_url("postgres://postgres@127.0.0.1:5432/db"),
            "postgres://postgres@127.0.0.1:5432/db"
        );
        assert_eq!(
            super::redact_url("postgres://h/db?user=u&password=hunter2&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
        assert_eq!(
            super::redact_url("sqlite:///tmp/x.db?mode=rwc"),
            "sqlite:///tmp/x.db?mode=rwc"
        );
    }
}

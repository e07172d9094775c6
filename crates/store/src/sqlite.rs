//! SQLite through rusqlite, on the calling thread (see [`crate::db`]).
//!
//! One writer connection, taken in turn behind an async lock: write transactions and statements that
//! write queue there in order, instead of meeting in SQLite's busy handler, which sleeps for milliseconds
//! between tries. Reads outside transactions use connections of their own that only read: WAL mode lets
//! them run beside the writer, and each statement sees every transaction committed before it began. An
//! in-memory database has the writer only.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{CachedStatement, Connection, OpenFlags, ToSql};
use tokio::sync::OwnedMutexGuard;

use crate::db::{Bind, Row, Value};
use crate::{Result, StoreError};

/// Statements kept prepared per connection (filters and `IN (...)` lists make variants of a query).
const STATEMENT_CACHE: usize = 256;
/// How long SQLite waits for another process's lock (a `barrackd admin` command beside the server).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a writer waits for its turn before giving up.
const WRITER_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Sqlite {
    writer: Arc<tokio::sync::Mutex<Connection>>,
    readers: Option<Readers>,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite")
            .field("readers", &self.readers.as_ref().map(|r| &r.path))
            .finish()
    }
}

/// Where a `sqlite:` URL points: `sqlite://PATH`, `sqlite:PATH` or `sqlite::memory:`, with `?mode=rwc`
/// (create when missing), `rw` (the default) or `ro`.
struct Location {
    path: Option<PathBuf>,
    flags: OpenFlags,
}

fn parse_url(url: &str) -> Result<Location> {
    let unsupported = || StoreError::UnsupportedUrl(url.to_string());
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(unsupported)?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        flags = match pair {
            "mode=rwc" => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            "mode=rw" => OpenFlags::SQLITE_OPEN_READ_WRITE,
            "mode=ro" => OpenFlags::SQLITE_OPEN_READ_ONLY,
            "mode=memory" => flags,
            _ => return Err(unsupported()),
        };
    }
    let memory = path.is_empty() || path == ":memory:" || query.contains("mode=memory");
    Ok(Location {
        path: (!memory).then(|| PathBuf::from(path)),
        flags: flags | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    })
}

impl Sqlite {
    /// Opens the database `url` names, switching a file to WAL mode; up to `readers` read connections
    /// are kept.
    pub(crate) fn open(url: &str, readers: usize) -> Result<Sqlite> {
        let location = parse_url(url)?;
        let writer = match &location.path {
            Some(path) => Connection::open_with_flags(path, location.flags)?,
            None => Connection::open_in_memory()?,
        };
        writer.busy_timeout(BUSY_TIMEOUT)?;
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if location.path.is_some() {
            writer.execute_batch("PRAGMA journal_mode = WAL;")?;
        }
        writer.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        Ok(Sqlite {
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            readers: location.path.map(|path| Readers {
                path,
                idle: Mutex::new(Vec::new()),
                max_idle: readers.max(1),
            }),
        })
    }

    async fn writer(&self) -> Result<OwnedMutexGuard<Connection>> {
        tokio::time::timeout(WRITER_TIMEOUT, self.writer.clone().lock_owned())
            .await
            .map_err(|_| {
                StoreError::Busy(format!(
                    "no turn to write in {} s: a write transaction is held that long",
                    WRITER_TIMEOUT.as_secs()
                ))
            })
    }

    /// Begins a write transaction, holding the writer until it ends. `BEGIN IMMEDIATE` takes SQLite's
    /// write lock at once, so another process writing meets the busy timeout here, not at a later upgrade.
    pub(crate) async fn begin(&self) -> Result<WriteTx> {
        let connection = self.writer().await?;
        connection.execute_batch("BEGIN IMMEDIATE")?;
        Ok(WriteTx {
            connection,
            done: false,
        })
    }

    pub(crate) async fn execute(&self, sql: &str, binds: &[Bind<'_>]) -> Result<u64> {
        execute(&*self.writer().await?, sql, binds)
    }

    /// Up to `max_rows` rows: on a read connection when the statement only reads, on the writer when it
    /// writes (`... RETURNING`).
    pub(crate) async fn query(
        &self,
        sql: &str,
        binds: &[Bind<'_>],
        max_rows: usize,
    ) -> Result<Vec<Row>> {
        if let Some(readers) = &self.readers
            && let Some(rows) = readers.query(sql, binds, max_rows)?
        {
            return Ok(rows);
        }
        query(&*self.writer().await?, sql, binds, max_rows)
    }

    pub(crate) async fn execute_script(&self, sql: &str) -> Result<()> {
        Ok(self.writer().await?.execute_batch(sql)?)
    }
}

/// A write transaction on the writer connection; rolled back when dropped uncommitted.
pub(crate) struct WriteTx {
    connection: OwnedMutexGuard<Connection>,
    done: bool,
}

impl WriteTx {
    pub(crate) fn connection(&self) -> &Connection {
        &self.connection
    }

    pub(crate) fn commit(mut self) -> Result<()> {
        self.connection.execute_batch("COMMIT")?;
        self.done = true;
        Ok(())
    }

    pub(crate) fn execute_script(&self, sql: &str) -> Result<()> {
        Ok(self.connection.execute_batch(sql)?)
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if !self.done && !self.connection.is_autocommit() {
            // Nothing to report to: the transaction's work is undone either way, or the connection is
            // broken and the next statement says so.
            let _ = self.connection.execute_batch("ROLLBACK");
        }
    }
}

/// Read-only connections, opened on first use and kept for the next read.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl Readers {
    fn connect(&self) -> Result<Connection> {
        // Opened read-write (a read-only connection could not recover a WAL left by a crash) but refusing
        // writes.
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.execute_batch("PRAGMA query_only = ON;")?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(connection)
    }

    /// The rows of `sql` if it only reads; `None` (nothing run) when it would write.
    fn query(&self, sql: &str, binds: &[Bind<'_>], max_rows: usize) -> Result<Option<Vec<Row>>> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => self.connect()?,
        };
        let result = (|| {
            let mut statement = connection.prepare_cached(sql)?;
            if !statement.readonly() {
                return Ok(None);
            }
            bind(&mut statement, binds)?;
            read_rows(&mut statement, max_rows).map(Some)
        })();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(connection);
        }
        result
    }
}

/// Runs a statement that returns no rows; how many rows it changed.
pub(crate) fn execute(connection: &Connection, sql: &str, binds: &[Bind<'_>]) -> Result<u64> {
    let mut statement = connection.prepare_cached(sql)?;
    bind(&mut statement, binds)?;
    Ok(statement.raw_execute()? as u64)
}

/// Up to `max_rows` rows of a statement.
pub(crate) fn query(
    connection: &Connection,
    sql: &str,
    binds: &[Bind<'_>],
    max_rows: usize,
) -> Result<Vec<Row>> {
    let mut statement = connection.prepare_cached(sql)?;
    bind(&mut statement, binds)?;
    read_rows(&mut statement, max_rows)
}

/// Binds placeholder `$n` to `binds[n - 1]`, wherever and however often it appears.
fn bind(statement: &mut CachedStatement<'_>, binds: &[Bind<'_>]) -> Result<()> {
    for index in 1..=statement.parameter_count() {
        let value = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| binds.get(n.wrapping_sub(1)))
            .ok_or(rusqlite::Error::InvalidParameterCount(index, binds.len()))?;
        statement.raw_bind_parameter(index, value)?;
    }
    Ok(())
}

fn read_rows(statement: &mut CachedStatement<'_>, max_rows: usize) -> Result<Vec<Row>> {
    let width = statement.column_count();
    let mut rows = statement.raw_query();
    let mut out = Vec::new();
    while out.len() < max_rows
        && let Some(row) = rows.next()?
    {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Int(n),
                ValueRef::Text(bytes) => Value::Text(
                    std::str::from_utf8(bytes)
                        .map_err(|e| StoreError::Unexpected(format!("column {i}: {e}")))?
                        .to_owned(),
                ),
                ValueRef::Real(_) | ValueRef::Blob(_) => {
                    return Err(StoreError::Unexpected(format!(
                        "column {i} is neither an integer nor text"
                    )));
                }
            });
        }
        out.push(Row(values));
    }
    Ok(out)
}

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Bind::Int(Some(n)) => ValueRef::Integer(*n),
            Bind::Text(Some(s)) => ValueRef::Text(s.as_bytes()),
            Bind::Int(None) | Bind::Text(None) => ValueRef::Null,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binds;

    #[test]
    fn urls() {
        let file = parse_url("sqlite:///tmp/x.db?mode=rwc").unwrap();
        assert_eq!(file.path, Some(PathBuf::from("/tmp/x.db")));
        assert!(file.flags.contains(OpenFlags::SQLITE_OPEN_CREATE));
        let relative = parse_url("sqlite:data/x.db").unwrap();
        assert_eq!(relative.path, Some(PathBuf::from("data/x.db")));
        assert!(!relative.flags.contains(OpenFlags::SQLITE_OPEN_CREATE));
        assert_eq!(parse_url("sqlite::memory:").unwrap().path, None);
        assert!(parse_url("sqlite://x.db?cache=shared").is_err());
        assert!(parse_url("mysql://x").is_err());
    }

    #[tokio::test]
    async fn reads_see_commits_and_writes_roll_back_when_dropped() {
        let dir = std::env::temp_dir().join(format!("barrack-sqlite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let db = Sqlite::open(&url, 2).unwrap();
        db.execute_script("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER)")
            .await
            .unwrap();
        let tx = db.begin().await.unwrap();
        execute(
            tx.connection(),
            "INSERT INTO t VALUES ($1, $2)",
            &binds!["a", 1],
        )
        .unwrap();
        drop(tx);
        let count = "SELECT COUNT(*) FROM t";
        assert_eq!(db.query(count, &[], 1).await.unwrap()[0].0, [Value::Int(0)]);
        let tx = db.begin().await.unwrap();
        execute(
            tx.connection(),
            "INSERT INTO t VALUES ($1, $2)",
            &binds!["a", 1],
        )
        .unwrap();
        tx.commit().unwrap();
        assert_eq!(db.query(count, &[], 1).await.unwrap()[0].0, [Value::Int(1)]);
        // A write with RETURNING goes to the writer.
        let rows = db
            .query("UPDATE t SET n = n + 1 RETURNING n", &[], 1)
            .await
            .unwrap();
        assert_eq!(rows[0].0, [Value::Int(2)]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

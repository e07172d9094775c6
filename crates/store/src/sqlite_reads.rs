//! Reads answered by SQLite on the calling thread.
//!
//! sqlx runs every SQLite connection on a thread of its own, so each statement crosses to that thread and
//! back; on a loaded two-core machine the crossing (60–90 µs) costs more than the API's hot reads, which
//! SQLite answers from its page cache in microseconds. Those reads (one statement returning one value, see
//! [`crate::sql::json_rows`]) run here instead, on connections of their own that only read: WAL mode lets
//! them run beside the writer, and each statement sees every transaction committed before it began.
//! Writes and transactions stay on the sqlx pool.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};

use crate::StoreError;
use crate::sql::Bind;

/// Statements kept prepared per connection: the hot reads, including their `IN (...)` variants.
const STATEMENT_CACHE: usize = 64;

pub(crate) struct SqliteReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl std::fmt::Debug for SqliteReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReads")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteReads {
    /// Reads of the database file at `path`; connections open on first use and are kept up to
    /// `max_idle`.
    pub(crate) fn new(path: PathBuf, max_idle: usize) -> SqliteReads {
        SqliteReads {
            path,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Read-write open (a read-only one could not recover a WAL left by a crash) but refusing writes.
        connection.execute_batch("PRAGMA query_only = ON;")?;
        connection.busy_timeout(Duration::from_secs(10))?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(connection)
    }

    /// Runs `read` on an idle connection (or a new one) and keeps the connection for the next read.
    fn with_connection<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> crate::Result<T> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => self.connect().map_err(read_error)?,
        };
        let result = read(&connection).map_err(read_error);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(connection);
        }
        result
    }

    /// The first column of the first row `sql` returns (`None` for no row), `$n` placeholders bound to
    /// `binds[n - 1]`.
    pub(crate) fn first<T: rusqlite::types::FromSql>(
        &self,
        sql: &str,
        binds: &[Bind],
    ) -> crate::Result<Option<T>> {
        self.with_connection(|connection| {
            let mut statement = connection.prepare_cached(sql)?;
            for index in 1..=statement.parameter_count() {
                let bind = statement
                    .parameter_name(index)
                    .and_then(|name| name.strip_prefix('$'))
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| binds.get(n.wrapping_sub(1)))
                    .ok_or(rusqlite::Error::InvalidParameterCount(index, binds.len()))?;
                statement.raw_bind_parameter(index, bind)?;
            }
            let mut rows = statement.raw_query();
            rows.next()?.map(|row| row.get(0)).transpose()
        })
    }
}

impl ToSql for Bind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Bind::Text(s) | Bind::OptText(Some(s)) => ValueRef::Text(s.as_bytes()),
            Bind::OptText(None) => ValueRef::Null,
            Bind::Int(i) => ValueRef::Integer(*i),
        }))
    }
}

fn read_error(e: rusqlite::Error) -> StoreError {
    StoreError::SqliteRead(e)
}

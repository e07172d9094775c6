//! SQLite through rusqlite, on the calling thread (see [`crate::db`]).
//!
//! One writer connection, taken in turn behind an async lock: write transactions and statements that
//! write queue there in order, instead of meeting in SQLite's busy handler, which sleeps for milliseconds
//! between tries, and those that queue together share one commit (see [`Writer`]). Reads outside
//! transactions use connections of their own that only read: WAL mode lets them run beside the writer,
//! and each statement sees every transaction committed before it began. An in-memory database has the
//! writer only.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{CachedStatement, Connection, OpenFlags, ToSql};
use tokio::sync::{OwnedMutexGuard, oneshot};

use crate::db::{Bind, Row, Value};
use crate::{Result, StoreError};

/// Statements kept prepared per connection (filters and `IN (...)` lists make variants of a query).
const STATEMENT_CACHE: usize = 256;
/// The writer's page cache, in KiB (readers keep SQLite's default of 2 MiB each).
const WRITER_CACHE_KIB: u32 = 32 * 1024;
/// How long SQLite waits for another process's lock (a `barrackd admin` command beside the server).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a writer waits for its turn before giving up.
const WRITER_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Sqlite {
    writer: Arc<tokio::sync::Mutex<Writer>>,
    /// Callers waiting for the writer: while there are some, a finished transaction leaves its group
    /// open for them to join.
    queued: Arc<AtomicUsize>,
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
/// (create when missing) or `rw` (the default).
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
        let connection = match &location.path {
            Some(path) => Connection::open_with_flags(path, location.flags)?,
            None => Connection::open_in_memory()?,
        };
        connection.busy_timeout(BUSY_TIMEOUT)?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if location.path.is_some() {
            connection.execute_batch("PRAGMA journal_mode = WAL;")?;
        }
        connection.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        // The writer's page cache: 32 MiB instead of SQLite's 2. The meter updates every open period each
        // minute, half its runs in an index's order; with 2 MiB nearly every page it touched was read
        // again from the file (a syscall each), and a million periods took 7 s instead of 4.
        connection.execute_batch(&format!("PRAGMA cache_size = -{};", WRITER_CACHE_KIB))?;
        Ok(Sqlite {
            writer: Arc::new(tokio::sync::Mutex::new(Writer {
                connection,
                group: None,
                commits: 0,
            })),
            queued: Arc::new(AtomicUsize::new(0)),
            readers: location.path.map(|path| Readers {
                path,
                idle: Mutex::new(Vec::new()),
                max_idle: readers.max(1),
            }),
        })
    }

    /// The database file, when it is one (not `:memory:`).
    pub(crate) fn path(&self) -> Option<&std::path::Path> {
        self.readers.as_ref().map(|r| r.path.as_path())
    }

    /// The writer, once it is this caller's turn.
    async fn writer(&self) -> Result<OwnedMutexGuard<Writer>> {
        let _queued = Queued::join(&self.queued);
        tokio::time::timeout(WRITER_TIMEOUT, self.writer.clone().lock_owned())
            .await
            .map_err(|_| {
                StoreError::Busy(format!(
                    "no turn to write in {} s: a write transaction is held that long",
                    WRITER_TIMEOUT.as_secs()
                ))
            })
    }

    /// Begins a write transaction: the writer's group transaction when it opens one, else a savepoint in
    /// the open group. `BEGIN IMMEDIATE` takes SQLite's write lock at once, so another process writing
    /// meets the busy timeout here, not at a later upgrade.
    pub(crate) async fn begin(&self) -> Result<WriteTx> {
        let mut writer = self.writer().await?;
        if writer.group.is_some() && writer.connection.is_autocommit() {
            // SQLite ended the group's transaction itself (a full disk, say): its members hear so.
            writer.finish_group();
        }
        if writer.group.is_none() {
            control(&writer.connection, "BEGIN IMMEDIATE")?;
            writer.group = Some(Vec::new());
            // The group holds no one else's work: undoing this transaction is rolling the group back,
            // and no savepoint (nor its copy of every page changed) is needed.
            return Ok(WriteTx {
                writer: Some(writer),
                queued: self.queued.clone(),
                savepoint: false,
            });
        }
        if let Err(e) = control(&writer.connection, "SAVEPOINT member") {
            writer.end_group_if_idle(&self.queued);
            return Err(e.into());
        }
        Ok(WriteTx {
            writer: Some(writer),
            queued: self.queued.clone(),
            savepoint: true,
        })
    }

    pub(crate) async fn execute(&self, sql: &str, binds: &[Bind<'_>]) -> Result<u64> {
        let tx = self.begin().await?;
        let changed = execute(tx.connection(), sql, binds)?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Up to `max_rows` rows: on a read connection when the statement only reads, in a write transaction
    /// of its own when it writes (`... RETURNING`).
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
        let tx = self.begin().await?;
        let rows = query(tx.connection(), sql, binds, max_rows)?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Runs a script outside any transaction, after the open group commits.
    pub(crate) async fn execute_script(&self, sql: &str) -> Result<()> {
        let mut writer = self.writer().await?;
        writer.finish_group();
        Ok(writer.connection.execute_batch(sql)?)
    }
}

/// The writer connection and the group transaction open on it, if any: the members that have finished
/// their work in it and wait for its `COMMIT`. Write transactions that queue for the writer join the open
/// group, and the last member to finish while no one queues (or the one that fills the group) commits it
/// for all: under load, one commit (and one write of each page changed) serves many transactions.
pub(crate) struct Writer {
    connection: Connection,
    group: Option<Vec<oneshot::Sender<std::result::Result<(), String>>>>,
    /// Groups committed so far.
    commits: u64,
}

/// Members a group takes before it commits even with writers queued: how long a member may wait.
const MAX_GROUP: usize = 8;

impl Writer {
    /// Commits the open group and tells its members how it went.
    fn finish_group(&mut self) {
        let Some(members) = self.group.take() else {
            return;
        };
        self.commits += 1;
        let result = if self.connection.is_autocommit() {
            Err("the database rolled the transaction back".to_string())
        } else {
            control(&self.connection, "COMMIT").map_err(|e| {
                if !self.connection.is_autocommit() {
                    let _ = self.connection.execute_batch("ROLLBACK");
                }
                e.to_string()
            })
        };
        for member in members {
            let _ = member.send(result.clone());
        }
    }

    /// Commits the group when no writer queues to join it.
    fn end_group_if_idle(&mut self, queued: &AtomicUsize) {
        if queued.load(Ordering::SeqCst) == 0 {
            self.finish_group();
        }
    }
}

/// Counts a caller among those waiting for the writer while it waits.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn join(queued: &'a AtomicUsize) -> Queued<'a> {
        queued.fetch_add(1, Ordering::SeqCst);
        Queued(queued)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A write transaction: the first of the writer's group transaction, or a savepoint in it. Committing
/// releases the savepoint and waits for the group's `COMMIT`; dropping it uncommitted rolls back to the
/// savepoint (or the group, which then holds nothing else), undoing this transaction's work alone.
pub(crate) struct WriteTx {
    writer: Option<OwnedMutexGuard<Writer>>,
    queued: Arc<AtomicUsize>,
    /// Whether it is a savepoint in a group opened before it.
    savepoint: bool,
}

impl WriteTx {
    fn writer(&mut self) -> &mut Writer {
        self.writer
            .as_mut()
            .expect("a transaction holds the writer")
    }

    pub(crate) fn connection(&self) -> &Connection {
        &self
            .writer
            .as_ref()
            .expect("a transaction holds the writer")
            .connection
    }

    /// Returns once this transaction's work is committed (with its group's).
    pub(crate) async fn commit(mut self) -> Result<()> {
        let queued = self.queued.clone();
        let savepoint = self.savepoint;
        let writer = self.writer();
        if savepoint && let Err(e) = control(&writer.connection, "RELEASE member") {
            return Err(e.into()); // dropped: rolled back to the savepoint
        }
        let (done, committed) = oneshot::channel();
        let group = writer.group.get_or_insert_with(Vec::new);
        group.push(done);
        if group.len() >= MAX_GROUP {
            writer.finish_group();
        } else {
            writer.end_group_if_idle(&queued);
        }
        // Its turn is over: the next writer joins the group, or the group is committed already.
        drop(self.writer.take());
        match committed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Commit(e)),
            Err(_) => Err(StoreError::Commit("the writer went away".into())),
        }
    }

    pub(crate) fn execute_script(&self, sql: &str) -> Result<()> {
        Ok(self.connection().execute_batch(sql)?)
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        let Some(mut writer) = self.writer.take() else {
            return;
        };
        if !self.savepoint {
            // The group is this transaction's alone: rolled back, it ends.
            if !writer.connection.is_autocommit() {
                let _ = writer.connection.execute_batch("ROLLBACK");
            }
            for member in writer.group.take().unwrap_or_default() {
                let _ = member.send(Err("the transaction was rolled back".into()));
            }
            return;
        }
        if writer.group.is_some() && !writer.connection.is_autocommit() {
            // Undoes this transaction alone; the group's other members keep theirs.
            let undone = writer
                .connection
                .execute_batch("ROLLBACK TO member; RELEASE member");
            if undone.is_err() {
                // The connection is broken: the group cannot commit, and its members hear so.
                let _ = writer.connection.execute_batch("ROLLBACK");
            }
        }
        writer.end_group_if_idle(&self.queued);
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
            let mut statement = connection.prepare_cached(&numbered(sql))?;
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

/// Runs a transaction's control statement (`BEGIN`, `SAVEPOINT`, `RELEASE`, `COMMIT`): every write
/// runs several, so they are prepared once, not parsed each time as a batch would be.
fn control(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.raw_execute()?;
    Ok(())
}

/// Runs a statement that returns no rows; how many rows it changed.
pub(crate) fn execute(connection: &Connection, sql: &str, binds: &[Bind<'_>]) -> Result<u64> {
    let mut statement = connection.prepare_cached(&numbered(sql))?;
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
    let mut statement = connection.prepare_cached(&numbered(sql))?;
    bind(&mut statement, binds)?;
    read_rows(&mut statement, max_rows)
}

/// Binds `?n` (the SQL's `$n`, see [`numbered`]) to `binds[n - 1]`, wherever and however often it
/// appears: a numbered parameter's index is its number, so no parameter is looked up by name (a lookup
/// SQLite does by walking every name, which made binding a statement of thousands of them quadratic).
fn bind(statement: &mut CachedStatement<'_>, binds: &[Bind<'_>]) -> Result<()> {
    for index in 1..=statement.parameter_count() {
        let value = binds
            .get(index - 1)
            .ok_or(rusqlite::Error::InvalidParameterCount(index, binds.len()))?;
        statement.raw_bind_parameter(index, value)?;
    }
    Ok(())
}

/// `sql` with its placeholders `$n` written `?n`, SQLite's numbered parameters (outside quotes only).
fn numbered(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    // Each `$` becomes a `?` in place: both are ASCII, so the text stays UTF-8 and keeps its length.
    let mut bytes = sql.as_bytes().to_vec();
    let mut quote = None;
    for i in 0..bytes.len() {
        match (quote, bytes[i]) {
            (None, q @ (b'\'' | b'"')) => quote = Some(q),
            (Some(q), b) if b == q => quote = None,
            (None, b'$') if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => bytes[i] = b'?',
            _ => {}
        }
    }
    Cow::Owned(String::from_utf8(bytes).expect("ASCII replaced by ASCII"))
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
    use crate::sql::Columns;

    #[test]
    fn placeholders_are_numbered_outside_quotes_only() {
        assert_eq!(numbered("SELECT 1"), "SELECT 1");
        assert_eq!(
            numbered("UPDATE t SET a = $2, b = '$1', \"c$3\" = $10 WHERE id = $1 AND x = '' || $3"),
            "UPDATE t SET a = ?2, b = '$1', \"c$3\" = ?10 WHERE id = ?1 AND x = '' || ?3"
        );
        assert_eq!(numbered("SELECT '$' || $1"), "SELECT '$' || ?1");
    }

    /// Placeholders out of order, used twice, and thousands in one statement bind to their values.
    #[tokio::test]
    async fn placeholders_bind_by_number() {
        let (dir, db) = scratch("binds", "CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER)").await;
        let rows = db
            .query("SELECT $2 || '-$1-' || $1, $1", &binds!["a", "b"], 1)
            .await
            .unwrap();
        assert_eq!(rows[0].text(0).unwrap(), "b-$1-a");
        assert_eq!(rows[0].text(1).unwrap(), "a");
        let count = 3_000;
        let values: Vec<String> = (0..count)
            .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
            .collect();
        let ids: Vec<String> = (0..count).map(|i| format!("id{i}")).collect();
        let mut all = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            all.extend(binds![id, i as i64]);
        }
        let sql = format!("INSERT INTO t (id, n) VALUES {}", values.join(", "));
        assert_eq!(db.execute(&sql, &all).await.unwrap(), count as u64);
        let rows = db
            .query("SELECT id, n FROM t WHERE n = $1", &binds![2_999_i64], 1)
            .await
            .unwrap();
        assert_eq!(rows[0].text(0).unwrap(), "id2999");
        let _ = std::fs::remove_dir_all(dir);
    }

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

    /// A new database file in a directory of its own (removed by the test), with `schema` applied.
    async fn scratch(name: &str, schema: &str) -> (PathBuf, Sqlite) {
        let dir = std::env::temp_dir().join(format!("barrack-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let db = Sqlite::open(&url, 2).unwrap();
        db.execute_script(schema).await.unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn reads_see_commits_and_writes_roll_back_when_dropped() {
        let (dir, db) = scratch(
            "rollback",
            "CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER)",
        )
        .await;
        let insert = || async {
            let tx = db.begin().await.unwrap();
            let sql = "INSERT INTO t VALUES ($1, $2)";
            execute(tx.connection(), sql, &binds!["a", 1]).unwrap();
            tx
        };
        drop(insert().await);
        let count = "SELECT COUNT(*) FROM t";
        assert_eq!(db.query(count, &[], 1).await.unwrap()[0].0, [Value::Int(0)]);
        insert().await.commit().await.unwrap();
        assert_eq!(db.query(count, &[], 1).await.unwrap()[0].0, [Value::Int(1)]);
        // A write with RETURNING goes to the writer.
        let rows = db
            .query("UPDATE t SET n = n + 1 RETURNING n", &[], 1)
            .await
            .unwrap();
        assert_eq!(rows[0].0, [Value::Int(2)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transactions_that_queue_commit_together_and_roll_back_alone() {
        let (dir, db) = scratch("group", "CREATE TABLE t (id INTEGER PRIMARY KEY)").await;
        let db = Arc::new(db);
        let tasks: Vec<_> = (0..200i64)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    let tx = db.begin().await.unwrap();
                    execute(tx.connection(), "INSERT INTO t VALUES ($1)", &binds![i]).unwrap();
                    tokio::task::yield_now().await;
                    if i % 10 == 3 {
                        drop(tx); // rolled back, alone
                        return false;
                    }
                    tx.commit().await.unwrap();
                    // Committed means visible to readers.
                    let seen = db
                        .query("SELECT COUNT(*) FROM t WHERE id = $1", &binds![i], 1)
                        .await
                        .unwrap();
                    assert_eq!(seen[0].0, [Value::Int(1)], "row {i} committed");
                    true
                })
            })
            .collect();
        let mut committed = 0;
        for task in tasks {
            committed += i64::from(task.await.unwrap());
        }
        assert_eq!(committed, 180);
        let commits = db.writer.lock().await.commits;
        assert!(commits < 100, "{commits} commits for 200 transactions");
        let rows = db
            .query("SELECT COUNT(*), SUM(id % 10 = 3) FROM t", &[], 1)
            .await
            .unwrap();
        assert_eq!(rows[0].0, [Value::Int(180), Value::Int(0)]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Statements on either database: SQL with `$n` placeholders, values bound as [`Bind`], rows read by
//! position as [`Row`]. A [`Tx`] is a write transaction; a `&Store` runs a statement on its own.
//!
//! SQLite (through rusqlite) runs every statement on the calling thread: a statement answered from the
//! page cache takes microseconds, less than handing it to another thread and back would. Writers take
//! turns on one connection behind an async lock, so they queue without SQLite's sleeping busy handler;
//! reads outside transactions use read-only connections of their own, beside the writer (WAL).
//! PostgreSQL goes through sqlx's pool.

use std::borrow::Cow;
use std::future::Future;

use crate::sql::Columns;
use crate::{Backend, Result, StoreError, postgres, sqlite};

/// A value bound to a placeholder. NULLs keep their type: PostgreSQL checks a parameter's type against
/// its column's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind<'a> {
    Int(Option<i64>),
    Text(Option<Cow<'a, str>>),
}

impl From<i64> for Bind<'_> {
    fn from(v: i64) -> Self {
        Bind::Int(Some(v))
    }
}

impl From<Option<i64>> for Bind<'_> {
    fn from(v: Option<i64>) -> Self {
        Bind::Int(v)
    }
}

impl From<&Option<i64>> for Bind<'_> {
    fn from(v: &Option<i64>) -> Self {
        Bind::Int(*v)
    }
}

/// Flags are stored as 0 or 1.
impl From<bool> for Bind<'_> {
    fn from(v: bool) -> Self {
        Bind::Int(Some(i64::from(v)))
    }
}

impl<'a> From<&'a str> for Bind<'a> {
    fn from(v: &'a str) -> Self {
        Bind::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'a> From<&'a String> for Bind<'a> {
    fn from(v: &'a String) -> Self {
        Bind::Text(Some(Cow::Borrowed(v)))
    }
}

impl From<String> for Bind<'_> {
    fn from(v: String) -> Self {
        Bind::Text(Some(Cow::Owned(v)))
    }
}

impl<'a> From<Option<&'a str>> for Bind<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Bind::Text(v.map(Cow::Borrowed))
    }
}

impl<'a> From<&'a Option<String>> for Bind<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Bind::Text(v.as_deref().map(Cow::Borrowed))
    }
}

impl From<Option<String>> for Bind<'_> {
    fn from(v: Option<String>) -> Self {
        Bind::Text(v.map(Cow::Owned))
    }
}

/// `[Bind; N]` of the values, in placeholder order: `&binds![id, now]`.
#[macro_export]
macro_rules! binds {
    ($($value:expr),* $(,)?) => {
        [$($crate::db::Bind::from($value)),*]
    };
}

/// A value read from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

/// A row, its values in the order the statement selects them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub(crate) Vec<Value>);

impl Row {
    fn value(&self, i: usize) -> Result<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Unexpected(format!("row has no column {i}")))
    }
}

impl Columns for Row {
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.value(i)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            Value::Int(n) => Err(StoreError::Unexpected(format!(
                "column {i} is the integer {n}, not text"
            ))),
        }
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.value(i)? {
            Value::Null => Ok(None),
            Value::Int(n) => Ok(Some(*n)),
            Value::Text(_) => Err(StoreError::Unexpected(format!(
                "column {i} is text, not an integer"
            ))),
        }
    }
}

/// What runs statements: a transaction ([`Tx`]) or the store itself (`&Store`, each statement on its own).
pub trait Db: Send {
    fn backend(&self) -> Backend;

    /// Runs a statement that returns no rows; how many rows it changed.
    fn execute(
        &mut self,
        sql: &str,
        binds: &[Bind<'_>],
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Every row the statement returns.
    fn fetch_all(
        &mut self,
        sql: &str,
        binds: &[Bind<'_>],
    ) -> impl Future<Output = Result<Vec<Row>>> + Send;

    /// The first row the statement returns, if any.
    fn fetch_optional(
        &mut self,
        sql: &str,
        binds: &[Bind<'_>],
    ) -> impl Future<Output = Result<Option<Row>>> + Send;

    /// The one row the statement returns (an aggregate, `RETURNING` of an upsert).
    fn fetch_one(
        &mut self,
        sql: &str,
        binds: &[Bind<'_>],
    ) -> impl Future<Output = Result<Row>> + Send
    where
        Self: Sized,
    {
        async move {
            self.fetch_optional(sql, binds)
                .await?
                .ok_or_else(|| StoreError::Unexpected("the statement returned no row".into()))
        }
    }
}

/// A write transaction: committed by [`Tx::commit`], rolled back when dropped without it.
pub struct Tx {
    inner: TxInner,
}

enum TxInner {
    Sqlite(sqlite::WriteTx),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    pub(crate) fn sqlite(tx: sqlite::WriteTx) -> Tx {
        Tx {
            inner: TxInner::Sqlite(tx),
        }
    }

    pub(crate) fn postgres(tx: sqlx::Transaction<'static, sqlx::Postgres>) -> Tx {
        Tx {
            inner: TxInner::Postgres(tx),
        }
    }

    pub async fn commit(self) -> Result<()> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.commit().await,
            TxInner::Postgres(tx) => Ok(Box::pin(tx.commit()).await?),
        }
    }

    /// PostgreSQL: runs `sql` (statements with nothing bound) and commits, in one message, so that the
    /// rows the transaction locked in its last step are held for no round trip after it. An error in
    /// `sql` rolls everything back. On SQLite, whose transactions take no round trips, it is refused.
    pub async fn commit_after(self, sql: &str) -> Result<()> {
        match self.inner {
            TxInner::Sqlite(_) => Err(StoreError::Unexpected(
                "commit_after is for PostgreSQL's round trips".into(),
            )),
            TxInner::Postgres(mut tx) => {
                // sqlx still counts the transaction open and ends it with a ROLLBACK when `tx` is
                // dropped, which the pool sends with its check of the connection on its return: the
                // BEGIN gives that ROLLBACK an empty transaction to end, and costs no round trip.
                postgres::execute_script(&mut *tx, &format!("{sql};\nCOMMIT;\nBEGIN")).await
            }
        }
    }

    /// Runs statements separated by semicolons, with nothing bound (migrations).
    pub async fn execute_script(&mut self, sql: &str) -> Result<()> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => tx.execute_script(sql),
            TxInner::Postgres(tx) => postgres::execute_script(&mut **tx, sql).await,
        }
    }
}

/// sqlx's futures are boxed, as [`crate::Store`]'s statements' are.
impl Db for Tx {
    fn backend(&self) -> Backend {
        match self.inner {
            TxInner::Sqlite(_) => Backend::Sqlite,
            TxInner::Postgres(_) => Backend::Postgres,
        }
    }

    async fn execute(&mut self, sql: &str, binds: &[Bind<'_>]) -> Result<u64> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => sqlite::execute(tx.connection(), sql, binds),
            TxInner::Postgres(tx) => Box::pin(postgres::execute(&mut **tx, sql, binds)).await,
        }
    }

    async fn fetch_all(&mut self, sql: &str, binds: &[Bind<'_>]) -> Result<Vec<Row>> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => sqlite::query(tx.connection(), sql, binds, usize::MAX),
            TxInner::Postgres(tx) => Box::pin(postgres::fetch_all(&mut **tx, sql, binds)).await,
        }
    }

    async fn fetch_optional(&mut self, sql: &str, binds: &[Bind<'_>]) -> Result<Option<Row>> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => Ok(sqlite::query(tx.connection(), sql, binds, 1)?.pop()),
            TxInner::Postgres(tx) => {
                Box::pin(postgres::fetch_optional(&mut **tx, sql, binds)).await
            }
        }
    }
}

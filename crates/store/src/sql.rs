//! Helpers for SQL built at run time (filters, conditional updates, pages), and rows read as one JSON
//! document.

use std::sync::OnceLock;

use serde_json::Value;

use crate::db::{Bind, Tx};
use crate::{Backend, Db, Store, StoreError};

/// `$first, $first+1, ...`: `count` numbered placeholders for an `IN (...)` list.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A conditional update of a versioned row: it applies only while the row is still at `generation`, and
/// bumps it, so two writers can never both act on what they read (the loser re-reads and decides again).
pub struct GenerationUpdate<'a> {
    table: &'static str,
    sets: Vec<String>,
    binds: Vec<Bind<'a>>,
}

impl<'a> GenerationUpdate<'a> {
    pub fn new(
        table: &'static str,
        id: &'a str,
        generation: i64,
        now: i64,
    ) -> GenerationUpdate<'a> {
        GenerationUpdate {
            table,
            sets: vec![
                "generation = generation + 1".into(),
                "updated_at = $3".into(),
            ],
            binds: vec![id.into(), generation.into(), now.into()],
        }
    }

    pub fn set(&mut self, column: &str, value: impl Into<Bind<'a>>) {
        self.binds.push(value.into());
        self.sets.push(format!("{column} = ${}", self.binds.len()));
    }

    /// True when the row was at the expected generation and is now changed.
    pub async fn apply(self, tx: &mut Tx) -> crate::Result<bool> {
        let sql = format!(
            "UPDATE {} SET {} WHERE id = $1 AND generation = $2",
            self.table,
            self.sets.join(", ")
        );
        Ok(tx.execute(&sql, &self.binds).await? == 1)
    }
}

/// One page of a filtered listing and the number of rows matching: `condition` uses `$1..$n` for `binds`,
/// and the page's offset takes the next placeholder.
pub struct Listing<'a> {
    pub table: &'static str,
    pub columns: &'static str,
    pub condition: &'a str,
    pub binds: &'a [Bind<'a>],
    pub order: &'static str,
}

impl<'a> Listing<'a> {
    /// The page's rows: found on ids alone (an index walk past the offset) and only then read whole, so
    /// deep pages do not read every row they skip. The offset takes the placeholder after the condition's;
    /// the limit is written out, because SQLite plans for a bound limit's value and so prepares the
    /// statement again each time it is bound.
    fn page_sql(&self, limit: u32) -> String {
        format!(
            "SELECT {columns} FROM {table} WHERE id IN \
             (SELECT id FROM {table} WHERE {condition} ORDER BY {order} LIMIT {limit} OFFSET ${}) ORDER BY {order}",
            self.binds.len() + 1,
            columns = self.columns,
            table = self.table,
            condition = self.condition,
            order = self.order,
        )
    }

    async fn count(&self, store: &Store) -> crate::Result<u64> {
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {}",
            self.table, self.condition
        );
        Ok(store.read_int(&sql, self.binds).await? as u64)
    }

    pub async fn page(
        &self,
        store: &Store,
        offset: u64,
        limit: u32,
    ) -> crate::Result<(Vec<crate::Row>, u64)> {
        let total = self.count(store).await?;
        let binds = self.binds_with_offset(offset);
        let rows = store.fetch_all(&self.page_sql(limit), &binds).await?;
        Ok((rows, total))
    }

    fn binds_with_offset(&self, offset: u64) -> Vec<Bind<'a>> {
        let mut binds = self.binds.to_vec();
        binds.push((offset as i64).into());
        binds
    }

    /// The same page, its rows read as one JSON array of arrays (values in `columns` order): each row of a
    /// wide table costs a copy and a conversion of every value, a JSON document one parse.
    pub async fn page_as_json(
        &self,
        store: &Store,
        offset: u64,
        limit: u32,
    ) -> crate::Result<(Vec<JsonRow>, u64)> {
        let total = self.count(store).await?;
        let binds = self.binds_with_offset(offset);
        let rows = store
            .read_rows(self.columns, &self.page_sql(limit), self.order, &binds)
            .await?;
        Ok((rows, total))
    }
}

/// Wraps `inner` (a SELECT of `columns`) into a query of one text value: its rows as a JSON array of
/// arrays, in `order`.
pub fn json_rows(backend: Backend, columns: &str, inner: &str, order: &str) -> String {
    let rows = rows_aggregate(backend, columns, order);
    match backend {
        Backend::Sqlite => format!("SELECT {rows} FROM ({inner}) AS page"),
        Backend::Postgres => format!("SELECT CAST({rows} AS TEXT) FROM ({inner}) AS page"),
    }
}

/// The aggregate that gathers rows of `columns` into a JSON array of arrays, in `order`.
fn rows_aggregate(backend: Backend, columns: &str, order: &str) -> String {
    match backend {
        Backend::Sqlite => format!("json_group_array(json_array({columns}) ORDER BY {order})"),
        Backend::Postgres => format!("json_agg(json_build_array({columns}) ORDER BY {order})"),
    }
}

/// A SELECT of `columns` whose rows are wanted in `order`, to be read with others (see [`read_row_sets`]).
pub(crate) struct RowSet {
    pub columns: String,
    pub inner: String,
    pub order: &'static str,
}

/// One query whose single text value holds the rows of every set, as a JSON array with an array of rows
/// per set: related reads in one statement instead of one each.
pub(crate) fn row_sets_sql(backend: Backend, sets: &[RowSet]) -> String {
    let parts: Vec<String> = sets
        .iter()
        .map(|set| {
            let rows = rows_aggregate(backend, &set.columns, set.order);
            let select = format!("(SELECT {rows} FROM ({}) AS page)", set.inner);
            match backend {
                // A subquery's value is text to SQLite's JSON functions; json() makes it JSON again.
                Backend::Sqlite => format!("json({select})"),
                Backend::Postgres => select,
            }
        })
        .collect();
    match backend {
        Backend::Sqlite => format!("SELECT json_array({})", parts.join(", ")),
        Backend::Postgres => format!(
            "SELECT CAST(json_build_array({}) AS TEXT)",
            parts.join(", ")
        ),
    }
}

/// A query of one row as one JSON array: `columns` (expressions) of `from` (a FROM clause and its
/// conditions, matching at most one row). No aggregate, so no sort for a single row.
pub fn json_row(backend: Backend, columns: &str, from: &str) -> String {
    match backend {
        Backend::Sqlite => format!("SELECT json_array({columns}) FROM {from}"),
        Backend::Postgres => {
            format!("SELECT CAST(json_build_array({columns}) AS TEXT) FROM {from}")
        }
    }
}

/// How many columns a list such as "a, b, c" names: where the next table's columns start in a joined row.
pub(crate) const fn column_count(columns: &str) -> usize {
    let bytes = columns.as_bytes();
    let (mut count, mut i) = (1, 0);
    while i < bytes.len() {
        if bytes[i] == b',' {
            count += 1;
        }
        i += 1;
    }
    count
}

/// `columns` ("a, b") as columns of the table aliased `alias` ("t.a, t.b").
pub(crate) fn prefixed(columns: &str, alias: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of [`json_rows`] (PostgreSQL answers NULL for none).
pub fn parse_json_rows(json: Option<&str>) -> crate::Result<Vec<JsonRow>> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let rows: Vec<Vec<Value>> = serde_json::from_str(json)
        .map_err(|e| StoreError::Unexpected(format!("rows as JSON: {e}")))?;
    Ok(rows.into_iter().map(JsonRow).collect())
}

/// One row of [`json_rows`], read by position.
pub struct JsonRow(Vec<Value>);

/// A row read by position, whichever way it came: the mapping of a table's columns to its row type is
/// written once for rows read as values and rows read as JSON.
pub trait Columns {
    fn opt_text(&self, i: usize) -> crate::Result<Option<String>>;
    fn opt_int(&self, i: usize) -> crate::Result<Option<i64>>;

    fn text(&self, i: usize) -> crate::Result<String> {
        self.opt_text(i)?
            .ok_or_else(|| StoreError::Unexpected(format!("column {i} is NULL")))
    }

    fn int(&self, i: usize) -> crate::Result<i64> {
        self.opt_int(i)?
            .ok_or_else(|| StoreError::Unexpected(format!("column {i} is NULL")))
    }

    /// A 0/1 column.
    fn flag(&self, i: usize) -> crate::Result<bool> {
        Ok(self.int(i)? != 0)
    }
}

impl JsonRow {
    fn value(&self, i: usize) -> crate::Result<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Unexpected(format!("row has no column {i}")))
    }
}

impl Columns for JsonRow {
    fn opt_text(&self, i: usize) -> crate::Result<Option<String>> {
        match self.value(i)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(StoreError::Unexpected(format!(
                "column {i} is {other}, not text"
            ))),
        }
    }

    fn opt_int(&self, i: usize) -> crate::Result<Option<i64>> {
        match self.value(i)? {
            Value::Null => Ok(None),
            Value::Number(n) => n.as_i64().map(Some).ok_or_else(|| {
                StoreError::Unexpected(format!("column {i} is {n}, not an integer"))
            }),
            other => Err(StoreError::Unexpected(format!(
                "column {i} is {other}, not an integer"
            ))),
        }
    }
}

impl Store {
    /// The rows of `inner` (a SELECT of `columns` whose `$n` placeholders take `binds`) in `order`, read as
    /// one value (see [`json_rows`]).
    pub(crate) async fn read_rows(
        &self,
        columns: &str,
        inner: &str,
        order: &str,
        binds: &[Bind<'_>],
    ) -> crate::Result<Vec<JsonRow>> {
        let sql = json_rows(self.backend(), columns, inner, order);
        let json = self.read_text(&sql, binds).await?;
        parse_json_rows(json.as_deref())
    }

    /// The rows of each set of a query built by [`row_sets_sql`], in the sets' order.
    pub(crate) async fn read_row_sets(
        &self,
        sql: &str,
        binds: &[Bind<'_>],
    ) -> crate::Result<Vec<Vec<JsonRow>>> {
        let json = self
            .read_text(sql, binds)
            .await?
            .ok_or_else(|| StoreError::Unexpected("no row for row sets".into()))?;
        // PostgreSQL aggregates no rows to NULL.
        let sets: Vec<Option<Vec<Vec<Value>>>> = serde_json::from_str(&json)
            .map_err(|e| StoreError::Unexpected(format!("row sets as JSON: {e}")))?;
        Ok(sets
            .into_iter()
            .map(|rows| rows.unwrap_or_default().into_iter().map(JsonRow).collect())
            .collect())
    }

    /// The single row (or none) of a query built by [`json_row`].
    pub(crate) async fn read_row(
        &self,
        sql: &str,
        binds: &[Bind<'_>],
    ) -> crate::Result<Option<JsonRow>> {
        let json = self.read_text(sql, binds).await?;
        json.map(|json| {
            serde_json::from_str(&json)
                .map(JsonRow)
                .map_err(|e| StoreError::Unexpected(format!("row as JSON: {e}")))
        })
        .transpose()
    }

    /// The integer `sql` returns (a count).
    pub(crate) async fn read_int(&self, sql: &str, binds: &[Bind<'_>]) -> crate::Result<i64> {
        self.fetch_one(sql, binds).await?.int(0)
    }

    /// The text in the first column of the first row of `sql`, if there is a row.
    async fn read_text(&self, sql: &str, binds: &[Bind<'_>]) -> crate::Result<Option<String>> {
        match self.fetch_optional(sql, binds).await? {
            Some(row) => row.opt_text(0),
            None => Ok(None),
        }
    }
}

/// SQL built once per backend: the hot reads' text, which formatting on every request showed in profiles.
pub(crate) struct SqlOnce {
    sqlite: OnceLock<String>,
    postgres: OnceLock<String>,
}

impl SqlOnce {
    pub(crate) const fn new() -> SqlOnce {
        SqlOnce {
            sqlite: OnceLock::new(),
            postgres: OnceLock::new(),
        }
    }

    pub(crate) fn get(&self, backend: Backend, build: impl FnOnce(Backend) -> String) -> &str {
        let cell = match backend {
            Backend::Sqlite => &self.sqlite,
            Backend::Postgres => &self.postgres,
        };
        cell.get_or_init(|| build(backend))
    }
}

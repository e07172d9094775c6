//! Helpers for SQL built at run time (filters): values bound to numbered placeholders, and rows read as one
//! JSON document.

use serde_json::Value;

use crate::{Backend, StoreError};

/// A value bound into dynamically built SQL (placeholders numbered by the builder).
#[derive(Debug, Clone)]
pub enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;
type AnyScalar<'q, T> = sqlx::query::QueryScalar<'q, sqlx::Any, T, sqlx::any::AnyArguments>;

impl Bind {
    pub fn apply<'q>(&self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        match self {
            Bind::Text(s) => query.bind(s.clone()),
            Bind::OptText(s) => query.bind(s.clone()),
            Bind::Int(i) => query.bind(*i),
        }
    }

    pub(crate) fn apply_scalar<'q, T>(&self, query: AnyScalar<'q, T>) -> AnyScalar<'q, T> {
        match self {
            Bind::Text(s) => query.bind(s.clone()),
            Bind::OptText(s) => query.bind(s.clone()),
            Bind::Int(i) => query.bind(*i),
        }
    }
}

/// A conditional update of a versioned row: it applies only while the row is still at `generation`, and
/// bumps it, so two writers can never both act on what they read (the loser re-reads and decides again).
pub struct GenerationUpdate {
    table: &'static str,
    sets: Vec<String>,
    binds: Vec<Bind>,
}

impl GenerationUpdate {
    pub fn new(table: &'static str, id: &str, generation: i64, now: i64) -> GenerationUpdate {
        GenerationUpdate {
            table,
            sets: vec![
                "generation = generation + 1".into(),
                "updated_at = $3".into(),
            ],
            binds: vec![
                Bind::Text(id.to_string()),
                Bind::Int(generation),
                Bind::Int(now),
            ],
        }
    }

    pub fn set(&mut self, column: &str, value: Bind) {
        self.binds.push(value);
        self.sets.push(format!("{column} = ${}", self.binds.len()));
    }

    /// True when the row was at the expected generation and is now changed.
    pub async fn apply(self, tx: &mut sqlx::AnyConnection) -> crate::Result<bool> {
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE {} SET {} WHERE id = $1 AND generation = $2",
            self.table,
            self.sets.join(", ")
        ));
        let mut query = sqlx::query(sql);
        for bind in &self.binds {
            query = bind.apply(query);
        }
        Ok(query.execute(&mut *tx).await?.rows_affected() == 1)
    }
}

/// One page of a filtered listing and the number of rows matching: `condition` uses `$1..$n` for `binds`,
/// and the page's limit and offset take the next two placeholders.
pub struct Listing<'a> {
    pub table: &'static str,
    pub columns: &'static str,
    pub condition: &'a str,
    pub binds: &'a [Bind],
    pub order: &'static str,
}

impl Listing<'_> {
    /// The page's rows: found on ids alone (an index walk past the offset) and only then read whole, so
    /// deep pages do not read every row they skip. Limit and offset follow the condition's placeholders.
    fn page_sql(&self) -> String {
        let n = self.binds.len();
        format!(
            "SELECT {columns} FROM {table} WHERE id IN \
             (SELECT id FROM {table} WHERE {condition} ORDER BY {order} LIMIT ${} OFFSET ${}) ORDER BY {order}",
            n + 1,
            n + 2,
            columns = self.columns,
            table = self.table,
            condition = self.condition,
            order = self.order,
        )
    }

    async fn count(&self, pool: &sqlx::AnyPool) -> crate::Result<u64> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {} WHERE {}",
            self.table, self.condition
        ));
        let mut count = sqlx::query_scalar::<_, i64>(sql);
        for bind in self.binds {
            count = bind.apply_scalar(count);
        }
        Ok(count.fetch_one(pool).await? as u64)
    }

    pub async fn page(
        &self,
        pool: &sqlx::AnyPool,
        offset: u64,
        limit: u32,
    ) -> crate::Result<(Vec<sqlx::any::AnyRow>, u64)> {
        let total = self.count(pool).await?;
        let sql = sqlx::AssertSqlSafe(self.page_sql());
        let mut query = sqlx::query(sql);
        for bind in self.binds {
            query = bind.apply(query);
        }
        let rows = query
            .bind(i64::from(limit))
            .bind(offset as i64)
            .fetch_all(pool)
            .await?;
        Ok((rows, total))
    }

    /// The same page, its rows read as one JSON array of arrays (values in `columns` order): each row of a
    /// wide table costs a copy and a conversion of every value, a JSON document one parse.
    pub async fn page_as_json(
        &self,
        pool: &sqlx::AnyPool,
        backend: Backend,
        offset: u64,
        limit: u32,
    ) -> crate::Result<(Vec<JsonRow>, u64)> {
        let total = self.count(pool).await?;
        let page = self.page_sql();
        let sql = sqlx::AssertSqlSafe(json_rows(backend, self.columns, &page, self.order));
        let mut query = sqlx::query_scalar::<_, Option<String>>(sql);
        for bind in self.binds {
            query = bind.apply_scalar(query);
        }
        let json = query
            .bind(i64::from(limit))
            .bind(offset as i64)
            .fetch_one(pool)
            .await?;
        Ok((parse_json_rows(json.as_deref())?, total))
    }
}

/// Wraps `inner` (a SELECT of `columns`) into a query of one text value: its rows as a JSON array of
/// arrays, in `order`.
pub fn json_rows(backend: Backend, columns: &str, inner: &str, order: &str) -> String {
    match backend {
        Backend::Sqlite => format!(
            "SELECT json_group_array(json_array({columns}) ORDER BY {order}) FROM ({inner}) AS page"
        ),
        Backend::Postgres => format!(
            "SELECT CAST(json_agg(json_build_array({columns}) ORDER BY {order}) AS TEXT) FROM ({inner}) AS page"
        ),
    }
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

impl JsonRow {
    fn value(&self, i: usize) -> crate::Result<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Unexpected(format!("row has no column {i}")))
    }

    pub fn text(&self, i: usize) -> crate::Result<String> {
        self.opt_text(i)?
            .ok_or_else(|| StoreError::Unexpected(format!("column {i} is NULL")))
    }

    pub fn opt_text(&self, i: usize) -> crate::Result<Option<String>> {
        match self.value(i)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(StoreError::Unexpected(format!(
                "column {i} is {other}, not text"
            ))),
        }
    }

    pub fn int(&self, i: usize) -> crate::Result<i64> {
        self.opt_int(i)?
            .ok_or_else(|| StoreError::Unexpected(format!("column {i} is NULL")))
    }

    pub fn opt_int(&self, i: usize) -> crate::Result<Option<i64>> {
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

    /// A 0/1 column.
    pub fn flag(&self, i: usize) -> crate::Result<bool> {
        Ok(self.int(i)? != 0)
    }
}

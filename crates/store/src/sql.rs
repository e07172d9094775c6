//! Helpers for SQL built at run time (filters, conditional updates, pages), and related row sets read as
//! one JSON document.

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

/// `INSERT INTO table (columns) VALUES ($1, ...)`, a placeholder per column, for binds in column order.
pub(crate) fn insert_sql(table: &str, columns: &str) -> String {
    format!(
        "INSERT INTO {table} ({columns}) VALUES ({})",
        placeholders(1, column_count(columns))
    )
}

/// [`insert_sql`] for a row under a new random id: a taken id inserts nothing (the caller sees no row
/// changed and draws another) instead of failing, while other unique violations (a name's) still do.
pub(crate) fn insert_new_sql(table: &str, columns: &str) -> String {
    format!("{} ON CONFLICT (id) DO NOTHING", insert_sql(table, columns))
}

/// Holds row `id` of `table` at `generation` until the caller's transaction ends, without changing it:
/// what the transaction does on the strength of that row commits before any change of the row can, or
/// the row changed since it was read and this is false (the caller reads again and decides again).
pub(crate) async fn hold_generation(
    tx: &mut Tx,
    table: &str,
    id: &str,
    generation: i64,
) -> crate::Result<bool> {
    let sql =
        format!("UPDATE {table} SET generation = generation WHERE id = $1 AND generation = $2");
    Ok(tx.execute(&sql, &crate::binds![id, generation]).await? == 1)
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
    /// What the page's ids and the count are read from, when not `table` alone.
    pub source: Option<Source<'a>>,
}

/// A join that starts from a narrower table (labels), whose other columns the condition may name.
pub struct Source<'a> {
    pub from: &'a str,
    /// The listed table's id in `from`.
    pub id: &'a str,
    /// `order` in the join's own columns, when they give it without a sort.
    pub order: Option<&'static str>,
}

impl Listing<'_> {
    /// The page's rows: found on ids alone (an index walk past the offset) and only then read whole, so
    /// deep pages do not read every row they skip. The offset takes the placeholder after the condition's;
    /// the limit is written out, because SQLite plans for a bound limit's value and so prepares the
    /// statement again each time it is bound.
    fn page_sql(&self, limit: u32) -> String {
        format!(
            "SELECT {columns} FROM {table} WHERE id IN \
             (SELECT {id} FROM {source} WHERE {condition} ORDER BY {walk} LIMIT {limit} OFFSET ${}) ORDER BY {order}",
            self.binds.len() + 1,
            columns = self.columns,
            table = self.table,
            id = self
                .source
                .as_ref()
                .map_or_else(|| format!("{}.id", self.table), |s| s.id.to_string()),
            source = self.source.as_ref().map_or(self.table, |s| s.from),
            condition = self.condition,
            walk = self
                .source
                .as_ref()
                .and_then(|s| s.order)
                .unwrap_or(self.order),
            order = self.order,
        )
    }

    async fn count(&self, store: &Store) -> crate::Result<u64> {
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {}",
            self.source.as_ref().map_or(self.table, |s| s.from),
            self.condition
        );
        Ok(store.read_int(&sql, self.binds).await? as u64)
    }

    /// The page's rows and how many rows match.
    pub async fn page(
        &self,
        store: &Store,
        offset: u64,
        limit: u32,
    ) -> crate::Result<(Vec<crate::Row>, u64)> {
        let total = self.count(store).await?;
        Ok((self.rows(store, offset, limit).await?, total))
    }

    /// The page's rows alone, for callers that know the total some cheaper way.
    pub async fn rows(
        &self,
        store: &Store,
        offset: u64,
        limit: u32,
    ) -> crate::Result<Vec<crate::Row>> {
        let mut binds = self.binds.to_vec();
        binds.push((offset as i64).into());
        store.fetch_all(&self.page_sql(limit), &binds).await
    }
}

/// A SELECT of `columns` whose rows are wanted in `order`, to be read with others (see [`RowSets`]).
pub(crate) struct RowSet {
    pub columns: String,
    pub inner: String,
    pub order: &'static str,
}

/// Related reads as one statement whose single text value holds every row of every set, as a JSON array
/// of `[set, row]` pairs: one round trip instead of one each. The sets are one `UNION ALL` under one
/// aggregate, which PostgreSQL starts several times faster than an aggregate per set, each sorting its
/// own rows; the rows are put in each set's order here instead, the same on both databases (text by its
/// bytes, integers by value, NULL last).
pub(crate) struct RowSets {
    sql: String,
    /// Per set, the positions of its `order` columns among its `columns`.
    orders: Vec<Vec<usize>>,
}

impl RowSets {
    pub(crate) fn new(backend: Backend, sets: &[RowSet]) -> RowSets {
        let branches: Vec<String> = sets
            .iter()
            .enumerate()
            .map(|(n, set)| {
                let row = match backend {
                    Backend::Sqlite => format!("json_array({})", set.columns),
                    Backend::Postgres => format!("json_build_array({})", set.columns),
                };
                format!("SELECT {n} AS s, {row} AS x FROM ({}) AS set{n}", set.inner)
            })
            .collect();
        let union = branches.join(" UNION ALL ");
        let sql = match backend {
            // A subquery's value is text to SQLite's JSON functions; json() makes it JSON again.
            Backend::Sqlite => {
                format!("SELECT json_group_array(json_array(s, json(x))) FROM ({union}) AS sets")
            }
            // No rows aggregate to NULL.
            Backend::Postgres => format!(
                "SELECT COALESCE(CAST(json_agg(json_build_array(s, x)) AS TEXT), '[]') \
                 FROM ({union}) AS sets"
            ),
        };
        let orders = sets
            .iter()
            .map(|set| {
                let columns: Vec<&str> = set.columns.split(", ").collect();
                set.order
                    .split(", ")
                    .map(|name| {
                        columns.iter().position(|c| *c == name).unwrap_or_else(|| {
                            panic!("row set orders by {name}, not among {}", set.columns)
                        })
                    })
                    .collect()
            })
            .collect();
        RowSets { sql, orders }
    }

    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }

    /// The rows of each set from the statement's value, in the sets' order, each set in its own order.
    pub(crate) fn read(&self, json: &str) -> crate::Result<Vec<Vec<JsonRow>>> {
        let pairs: Vec<(usize, Vec<Value>)> = serde_json::from_str(json)
            .map_err(|e| StoreError::Unexpected(format!("row sets as JSON: {e}")))?;
        let mut sets: Vec<Vec<JsonRow>> = self.orders.iter().map(|_| Vec::new()).collect();
        for (set, row) in pairs {
            sets.get_mut(set)
                .ok_or_else(|| StoreError::Unexpected(format!("no row set {set}")))?
                .push(JsonRow(row));
        }
        for (rows, order) in sets.iter_mut().zip(&self.orders) {
            rows.sort_by(|a, b| {
                order
                    .iter()
                    .map(|&i| value_order(a.0.get(i), b.0.get(i)))
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        }
        Ok(sets)
    }
}

/// The order of two column values of a row set: integers by value, text by its bytes, NULL last.
fn value_order(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Some(Value::Number(a)), Some(Value::Number(b))) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => a
                .as_f64()
                .partial_cmp(&b.as_f64())
                .unwrap_or(Ordering::Equal),
        },
        (Some(Value::String(a)), Some(Value::String(b))) => a.as_bytes().cmp(b.as_bytes()),
        (None | Some(Value::Null), None | Some(Value::Null)) => Ordering::Equal,
        (None | Some(Value::Null), _) => Ordering::Greater,
        (_, None | Some(Value::Null)) => Ordering::Less,
        _ => Ordering::Equal,
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

/// One row of a row set (see [`RowSets`]), read by position.
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
    /// The rows of each set of `sets` (see [`RowSets`]).
    pub(crate) async fn read_row_sets(
        &self,
        sets: &RowSets,
        binds: &[Bind<'_>],
    ) -> crate::Result<Vec<Vec<JsonRow>>> {
        sets.read(&self.fetch_one(sets.sql(), binds).await?.text(0)?)
    }

    /// The integer `sql` returns (a count).
    pub(crate) async fn read_int(&self, sql: &str, binds: &[Bind<'_>]) -> crate::Result<i64> {
        self.fetch_one(sql, binds).await?.int(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets() -> RowSets {
        RowSets::new(
            Backend::Postgres,
            &[
                RowSet {
                    columns: "owner, at, id".into(),
                    inner: "SELECT owner, at, id FROM a".into(),
                    order: "owner, at, id",
                },
                RowSet {
                    columns: "id, name".into(),
                    inner: "SELECT id, name FROM b".into(),
                    order: "name",
                },
            ],
        )
    }

    fn ids(rows: &[JsonRow], column: usize) -> Vec<Value> {
        rows.iter().map(|r| r.0[column].clone()).collect()
    }

    #[test]
    fn rows_come_out_in_each_sets_order_whatever_order_they_arrive_in() {
        let json = r#"[[1, ["b2", null]], [0, ["x", 10, "c"]], [0, ["x", 9, "z"]], [1, ["b1", "Z"]],
            [0, ["w", 11, "a"]], [0, ["x", 10, "b"]], [1, ["b3", "a"]]]"#;
        let read = sets().read(json).unwrap();
        assert_eq!(
            ids(&read[0], 2),
            ["a", "z", "b", "c"].map(Value::from),
            "by owner, then time (as a number: 9 before 10), then id"
        );
        assert_eq!(
            ids(&read[1], 0),
            ["b1", "b3", "b2"].map(Value::from),
            "text by its bytes (Z before a), NULL last"
        );
    }

    #[test]
    fn no_rows_read_as_empty_sets_and_an_unknown_set_is_an_error() {
        let read = sets().read("[]").unwrap();
        assert_eq!(read.len(), 2);
        assert!(read.iter().all(Vec::is_empty));
        assert!(sets().read(r#"[[2, ["x"]]]"#).is_err());
    }

    #[test]
    fn every_set_is_one_branch_of_one_aggregate() {
        let sql = sets().sql().to_string();
        assert_eq!(sql.matches("json_agg").count(), 1, "{sql}");
        assert_eq!(sql.matches("UNION ALL").count(), 1, "{sql}");
    }
}

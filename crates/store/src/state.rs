//! The whole state of an installation as one document, and clearing it, read from the schema itself:
//! every table the catalogue lists (but the migrations' own), in the order their foreign keys need, so a
//! table added by a later migration is covered without code here changing.
//!
//! The document is JSON lines: a header naming the format and the schema version, then for each table a
//! line with its columns followed by a line per row (a JSON array of integers, strings and nulls, the
//! only values the schema holds), and an end line with the counts, so a cut-off file is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};

use serde_json::{Value as Json, json};

use crate::db::{Bind, Value};
use crate::sql::{Columns, placeholders};
use crate::{Backend, Db, MIGRATIONS, Result, Store, StoreError, Tx, binds};

/// What the first line of a state document says it is.
pub const STATE_FORMAT: &str = "barrack-state";
/// The version of the document's layout (its schema version is the database's).
pub const STATE_FORMAT_VERSION: i64 = 1;
/// Rows read per statement while exporting, so a large table is never held whole.
pub const EXPORT_PAGE: i64 = 5_000;
/// The migrations' own table: its rows are the schema version the header carries.
const MIGRATIONS_TABLE: &str = "schema_migrations";
/// Tables that hold rows only while a statement runs (PostgreSQL's notes of changes to the open periods'
/// rate counts, which the statement folds into them): never state, and only one backend has them.
const TRANSIENT_TABLES: [&str; 1] = ["open_period_rate_changes"];
/// Tables of counts that triggers keep as other tables' rows come and go: emptying those tables moves
/// the counts (below zero where a count was emptied first), so a reset empties these last.
const COUNT_TABLES: [&str; 2] = ["instance_heading_counts", "open_period_rates"];

/// The schema version of this build: the last migration's number.
pub fn schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// A table as the catalogue describes it.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    /// In the table's order, with whether each holds integers (else text).
    pub columns: Vec<(String, bool)>,
    /// The primary key's columns, which order the rows of an export.
    pub key: Vec<String>,
    /// Tables this one's foreign keys point at.
    pub references: BTreeSet<String>,
}

/// Rows per table, of an export or an import.
#[derive(Debug, Clone, Default)]
pub struct StateCounts {
    pub tables: BTreeMap<String, u64>,
}

impl StateCounts {
    pub fn rows(&self) -> u64 {
        self.tables.values().sum()
    }
}

/// Why an import was refused, or what broke it.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{0}")]
    Refused(String),
    #[error("cannot read the state document: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn refused(message: impl Into<String>) -> StateError {
    StateError::Refused(message.into())
}

impl Store {
    /// Every table but the migrations', parents before the tables that refer to them.
    pub async fn tables(&self) -> Result<Vec<Table>> {
        let mut db = self;
        tables(&mut db).await
    }

    /// Whether any table holds a row (the migrations' table aside).
    pub async fn holds_state(&self) -> Result<bool> {
        for table in self.tables().await? {
            let sql = format!("SELECT 1 FROM {} LIMIT 1", table.name);
            if self.fetch_optional(&sql, &[]).await?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Other sessions connected to this database (a running server): PostgreSQL reports them; a SQLite
    /// file does not, so `None` there.
    pub async fn other_sessions(&self, own_application: &str) -> Result<Option<i64>> {
        if self.backend() != Backend::Postgres {
            return Ok(None);
        }
        let count = self
            .read_int(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM pg_stat_activity WHERE datname = current_database() \
                 AND pid <> pg_backend_pid() AND application_name IS DISTINCT FROM $1",
                &binds![own_application],
            )
            .await?;
        Ok(Some(count))
    }

    /// Writes the whole state to `out`; the rows written per table. It is read in one transaction, so a
    /// server running meanwhile cannot leave a balance apart from its ledger in it (on SQLite its writes
    /// wait for the export; on PostgreSQL the export reads one snapshot).
    pub async fn export_state(
        &self,
        out: &mut impl Write,
        exported_at: &str,
    ) -> std::result::Result<StateCounts, StateError> {
        let mut tx = self.begin().await?;
        if tx.backend() == Backend::Postgres {
            tx.execute(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                &[],
            )
            .await?;
        }
        let tables = tables(&mut tx).await?;
        let header = json!({
            "format": STATE_FORMAT,
            "format_version": STATE_FORMAT_VERSION,
            "schema_version": schema_version(),
            "exported_at": exported_at,
            "source_backend": self.backend().name(),
        });
        writeln!(out, "{header}")?;
        let mut counts = StateCounts::default();
        for table in &tables {
            let names: Vec<&str> = table.columns.iter().map(|(n, _)| n.as_str()).collect();
            writeln!(out, "{}", json!({"table": table.name, "columns": names}))?;
            let mut written = 0u64;
            let mut after: Option<Vec<Bind<'static>>> = None;
            loop {
                let sql = page_sql(table, &names, after.is_some());
                let rows = tx.fetch_all(&sql, after.as_deref().unwrap_or(&[])).await?;
                for row in &rows {
                    let values: Vec<Json> = row
                        .0
                        .iter()
                        .map(|v| match v {
                            Value::Null => Json::Null,
                            Value::Int(n) => Json::from(*n),
                            Value::Text(s) => Json::from(s.as_str()),
                        })
                        .collect();
                    writeln!(out, "{}", Json::Array(values))?;
                }
                written += rows.len() as u64;
                match rows.last() {
                    Some(last) if !table.key.is_empty() && rows.len() as i64 == EXPORT_PAGE => {
                        after = Some(key_binds(table, &names, last)?);
                    }
                    _ => break,
                }
            }
            counts.tables.insert(table.name.clone(), written);
        }
        writeln!(
            out,
            "{}",
            json!({"end": true, "tables": tables.len(), "rows": counts.rows()})
        )?;
        out.flush()?;
        Ok(counts)
    }

    /// Reads a state document into this database, in one transaction: all of it or nothing. A database
    /// holding state is refused unless `replace`, which empties it first. Triggers are held off while the
    /// rows go in, since the rows they derive are in the document too.
    pub async fn import_state(
        &self,
        input: impl BufRead,
        replace: bool,
    ) -> std::result::Result<StateCounts, StateError> {
        let mut lines = input.lines();
        let header = lines
            .next()
            .transpose()?
            .ok_or_else(|| refused("the file is empty, not a Barrack state document"))?;
        check_header(&header)?;
        if !replace && self.holds_state().await? {
            return Err(refused(
                "the database already holds state: import into an empty database, or pass --replace \
                 to discard what it holds",
            ));
        }
        let tables = self.tables().await?;
        let by_name: BTreeMap<&str, &Table> = tables.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut tx = self.begin().await?;
        let held = hold_triggers(&mut tx, &tables).await?;
        for table in tables.iter().rev() {
            tx.execute(&format!("DELETE FROM {}", table.name), &[])
                .await?;
        }
        let mut counts = StateCounts::default();
        let mut current: Option<(&Table, Vec<usize>, String)> = None;
        let mut ended = false;
        for (number, line) in lines.enumerate() {
            let line = line?;
            let at = number + 2;
            if ended {
                if line.trim().is_empty() {
                    continue;
                }
                return Err(refused(format!("line {at}: text after the end line")));
            }
            let parsed: Json = serde_json::from_str(&line)
                .map_err(|e| refused(format!("line {at} is not JSON: {e}")))?;
            match parsed {
                Json::Array(values) => {
                    let Some((table, types, sql)) = &current else {
                        return Err(refused(format!("line {at}: a row before any table line")));
                    };
                    if values.len() != types.len() {
                        return Err(refused(format!(
                            "line {at}: {} values for the {} columns of {}",
                            values.len(),
                            types.len(),
                            table.name
                        )));
                    }
                    let row_binds = values
                        .iter()
                        .zip(types)
                        .map(|(value, &column)| bind_value(value, &table.columns[column]))
                        .collect::<std::result::Result<Vec<_>, String>>()
                        .map_err(|e| refused(format!("line {at} ({}): {e}", table.name)))?;
                    tx.execute(sql, &row_binds).await?;
                    *counts.tables.entry(table.name.clone()).or_default() += 1;
                }
                Json::Object(object) if object.get("end") == Some(&Json::Bool(true)) => {
                    let rows = object.get("rows").and_then(Json::as_u64);
                    if rows != Some(counts.rows()) {
                        return Err(refused(format!(
                            "the end line counts {} rows, the file holds {}",
                            rows.map_or("no".into(), |n| n.to_string()),
                            counts.rows()
                        )));
                    }
                    ended = true;
                }
                Json::Object(object) => {
                    let name = object.get("table").and_then(Json::as_str).ok_or_else(|| {
                        refused(format!("line {at}: neither a row, a table nor the end"))
                    })?;
                    let table = by_name.get(name).ok_or_else(|| {
                        refused(format!(
                            "the file holds a table {name} this database does not have"
                        ))
                    })?;
                    if counts.tables.contains_key(name) {
                        return Err(refused(format!("line {at}: table {name} appears twice")));
                    }
                    counts.tables.insert(name.to_string(), 0);
                    let columns: Vec<&str> = object
                        .get("columns")
                        .and_then(Json::as_array)
                        .map(|c| c.iter().filter_map(Json::as_str).collect())
                        .unwrap_or_default();
                    let ours: BTreeSet<&str> =
                        table.columns.iter().map(|(n, _)| n.as_str()).collect();
                    let theirs: BTreeSet<&str> = columns.iter().copied().collect();
                    if ours != theirs || columns.len() != theirs.len() {
                        return Err(refused(format!(
                            "table {name} has the columns {columns:?} in the file but {ours:?} here"
                        )));
                    }
                    let types = columns
                        .iter()
                        .map(|c| table.columns.iter().position(|(n, _)| n == c).unwrap_or(0))
                        .collect();
                    let sql = format!(
                        "INSERT INTO {name} ({}) VALUES ({})",
                        columns.join(", "),
                        placeholders(1, columns.len())
                    );
                    current = Some((table, types, sql));
                }
                _ => return Err(refused(format!("line {at}: neither a row nor a table"))),
            }
        }
        if !ended {
            return Err(refused(
                "the file ends before its end line: it was cut off; export it again",
            ));
        }
        let missing: Vec<&str> = tables
            .iter()
            .map(|t| t.name.as_str())
            .filter(|name| !counts.tables.contains_key(*name))
            .collect();
        if !missing.is_empty() {
            return Err(refused(format!(
                "the file lacks the tables {missing:?} of this schema"
            )));
        }
        release_triggers(&mut tx, held).await?;
        tx.commit().await?;
        self.auth_changed_everywhere().await?;
        Ok(counts)
    }

    /// Empties every table but the operators' accounts and their API keys, and the simulation clock
    /// (time never runs backwards); returns the number of resets so far, which replicas compare to learn
    /// of it, and the operators kept.
    pub async fn reset_state(&self) -> Result<(i64, u64)> {
        let tables = self.tables().await?;
        let mut tx = self.begin().await?;
        for table in tables.iter().rev() {
            let sql = match table.name.as_str() {
                "accounts" => "DELETE FROM accounts WHERE is_admin = 0".to_string(),
                "api_keys" => "DELETE FROM api_keys WHERE account_id IN \
                               (SELECT id FROM accounts WHERE is_admin = 0)"
                    .to_string(),
                "simulation_clock" => continue,
                name if COUNT_TABLES.contains(&name) => continue,
                name => format!("DELETE FROM {name}"),
            };
            tx.execute(&sql, &[]).await?;
        }
        for name in COUNT_TABLES {
            tx.execute(&format!("DELETE FROM {name}"), &[]).await?;
        }
        let resets = tx
            .fetch_one(
                "INSERT INTO simulation_clock (id, offset_ms, resets) VALUES (1, 0, 1) ON CONFLICT (id) \
                 DO UPDATE SET resets = simulation_clock.resets + 1 RETURNING resets",
                &[],
            )
            .await?
            .int(0)?;
        let operators = tx
            .fetch_one("SELECT CAST(COUNT(*) AS BIGINT) FROM accounts", &[])
            .await?
            .int(0)?;
        tx.commit().await?;
        self.auth_changed_everywhere().await?;
        Ok((resets, operators as u64))
    }
}

/// The statement reading a table's next page: in primary-key order, after the last row read (keyset
/// paging, so each page is an index seek however far into the table it is). A table without a primary
/// key is read whole in one statement, ordered by all its columns.
fn page_sql(table: &Table, names: &[&str], after_a_page: bool) -> String {
    if table.key.is_empty() {
        return format!(
            "SELECT {} FROM {} ORDER BY {}",
            names.join(", "),
            table.name,
            names.join(", ")
        );
    }
    let key = table.key.join(", ");
    let condition = if after_a_page {
        format!(" WHERE ({key}) > ({})", placeholders(1, table.key.len()))
    } else {
        String::new()
    };
    format!(
        "SELECT {} FROM {}{condition} ORDER BY {key} LIMIT {EXPORT_PAGE}",
        names.join(", "),
        table.name
    )
}

/// The primary key of `row` (of the columns `names`) as binds for the next page's condition.
fn key_binds(table: &Table, names: &[&str], row: &crate::Row) -> Result<Vec<Bind<'static>>> {
    table
        .key
        .iter()
        .map(|column| {
            let at = names.iter().position(|n| n == column).ok_or_else(|| {
                StoreError::Unexpected(format!("{}: no key column {column}", table.name))
            })?;
            Ok(match &row.0[at] {
                Value::Int(n) => Bind::Int(Some(*n)),
                Value::Text(s) => Bind::Text(Some(s.clone().into())),
                Value::Null => {
                    return Err(StoreError::Unexpected(format!(
                        "{}: a NULL in its primary key column {column}",
                        table.name
                    )));
                }
            })
        })
        .collect()
}

fn check_header(line: &str) -> std::result::Result<(), StateError> {
    let header: Json = serde_json::from_str(line)
        .map_err(|_| refused("the first line is not JSON: not a Barrack state document"))?;
    if header.get("format").and_then(Json::as_str) != Some(STATE_FORMAT) {
        return Err(refused(
            "not a Barrack state document (no \"format\": \"barrack-state\")",
        ));
    }
    let format = header.get("format_version").and_then(Json::as_i64);
    if format != Some(STATE_FORMAT_VERSION) {
        return Err(refused(format!(
            "the document is of format version {}; this barrackd reads version {STATE_FORMAT_VERSION}",
            format.map_or("(none)".into(), |v| v.to_string())
        )));
    }
    let schema = header.get("schema_version").and_then(Json::as_i64);
    if schema != Some(schema_version()) {
        return Err(refused(format!(
            "the document holds state of schema version {}, this barrackd's schema is version {}: \
             import it with the barrackd version that exported it",
            schema.map_or("(none)".into(), |v| v.to_string()),
            schema_version()
        )));
    }
    Ok(())
}

/// A JSON value as the bind of a column: integers into integer columns, strings into text ones, and
/// NULLs typed as their column (PostgreSQL checks).
fn bind_value(
    value: &Json,
    (name, integer): &(String, bool),
) -> std::result::Result<Bind<'static>, String> {
    match (value, integer) {
        (Json::Null, true) => Ok(Bind::Int(None)),
        (Json::Null, false) => Ok(Bind::Text(None)),
        (Json::Number(n), true) => n
            .as_i64()
            .map(|n| Bind::Int(Some(n)))
            .ok_or_else(|| format!("{name} is {n}, not a 64-bit integer")),
        (Json::String(s), false) => Ok(Bind::Text(Some(s.clone().into()))),
        (other, true) => Err(format!("{name} holds integers, not {other}")),
        (other, false) => Err(format!("{name} holds text, not {other}")),
    }
}

/// What the catalogue says, in dependency order.
async fn tables(db: &mut impl Db) -> Result<Vec<Table>> {
    let backend = db.backend();
    let names_sql = match backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = \
             current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
        }
    };
    let mut found = Vec::new();
    for row in db.fetch_all(names_sql, &[]).await? {
        let name = row.text(0)?;
        if name == MIGRATIONS_TABLE || TRANSIENT_TABLES.contains(&name.as_str()) {
            continue;
        }
        found.push(describe(db, backend, name).await?);
    }
    order_by_references(found)
}

async fn describe(db: &mut impl Db, backend: Backend, name: String) -> Result<Table> {
    let (columns_sql, key_sql, references_sql) = match backend {
        Backend::Sqlite => (
            "SELECT name, type FROM pragma_table_info($1) ORDER BY cid",
            "SELECT name FROM pragma_table_info($1) WHERE pk > 0 ORDER BY pk",
            "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list($1)",
        ),
        Backend::Postgres => (
            "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            "SELECT CAST(k.column_name AS TEXT) FROM information_schema.table_constraints c \
             JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name \
             AND k.table_schema = c.table_schema AND k.table_name = c.table_name \
             WHERE c.table_schema = current_schema() AND c.table_name = $1 \
             AND c.constraint_type = 'PRIMARY KEY' ORDER BY k.ordinal_position",
            "SELECT DISTINCT CAST(u.table_name AS TEXT) FROM information_schema.table_constraints c \
             JOIN information_schema.constraint_column_usage u ON u.constraint_name = c.constraint_name \
             AND u.constraint_schema = c.constraint_schema \
             WHERE c.table_schema = current_schema() AND c.table_name = $1 \
             AND c.constraint_type = 'FOREIGN KEY'",
        ),
    };
    let columns = db
        .fetch_all(columns_sql, &binds![&name])
        .await?
        .iter()
        .map(|r| Ok((r.text(0)?, r.text(1)?.to_ascii_uppercase().contains("INT"))))
        .collect::<Result<Vec<_>>>()?;
    let key = db
        .fetch_all(key_sql, &binds![&name])
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<Vec<_>>>()?;
    let references = db
        .fetch_all(references_sql, &binds![&name])
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<BTreeSet<_>>>()?;
    Ok(Table {
        name,
        columns,
        key,
        references,
    })
}

/// Parents first: a table comes after every table its foreign keys point at (a reference to itself
/// aside).
fn order_by_references(mut pending: Vec<Table>) -> Result<Vec<Table>> {
    let mut ordered: Vec<Table> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let placed: BTreeSet<String> = ordered.iter().map(|t| t.name.clone()).collect();
        let ready = pending.iter().position(|t| {
            t.references
                .iter()
                .all(|r| *r == t.name || placed.contains(r))
        });
        let Some(index) = ready else {
            return Err(StoreError::Unexpected(format!(
                "the foreign keys of {:?} form a cycle",
                pending.iter().map(|t| &t.name).collect::<Vec<_>>()
            )));
        };
        ordered.push(pending.remove(index));
    }
    Ok(ordered)
}

/// Triggers taken out of the way of an import, to put back before it commits.
enum HeldTriggers {
    /// SQLite's trigger definitions, dropped inside the transaction and created again.
    Sqlite(Vec<(String, String)>),
    /// PostgreSQL's tables whose user triggers are disabled.
    Postgres(Vec<String>),
}

async fn hold_triggers(tx: &mut Tx, tables: &[Table]) -> Result<HeldTriggers> {
    match tx.backend() {
        Backend::Sqlite => {
            let rows = tx
                .fetch_all(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name",
                    &[],
                )
                .await?;
            let mut held = Vec::new();
            for row in rows {
                let (name, sql) = (row.text(0)?, row.text(1)?);
                tx.execute_script(&format!("DROP TRIGGER {name}")).await?;
                held.push((name, sql));
            }
            Ok(HeldTriggers::Sqlite(held))
        }
        Backend::Postgres => {
            let mut held = Vec::new();
            for table in tables {
                tx.execute_script(&format!("ALTER TABLE {} DISABLE TRIGGER USER", table.name))
                    .await?;
                held.push(table.name.clone());
            }
            Ok(HeldTriggers::Postgres(held))
        }
    }
}

async fn release_triggers(tx: &mut Tx, held: HeldTriggers) -> Result<()> {
    match held {
        HeldTriggers::Sqlite(triggers) => {
            for (_, sql) in triggers {
                tx.execute_script(&sql).await?;
            }
        }
        HeldTriggers::Postgres(tables) => {
            for table in tables {
                tx.execute_script(&format!("ALTER TABLE {table} ENABLE TRIGGER USER"))
                    .await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, references: &[&str]) -> Table {
        Table {
            name: name.into(),
            columns: vec![],
            key: vec![],
            references: references.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn parents_come_before_the_tables_that_refer_to_them() {
        let ordered = order_by_references(vec![
            table("rules", &["firewalls", "rules"]),
            table("firewalls", &["accounts"]),
            table("accounts", &[]),
        ])
        .unwrap();
        let names: Vec<&str> = ordered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["accounts", "firewalls", "rules"]);
        assert!(order_by_references(vec![table("a", &["b"]), table("b", &["a"])]).is_err());
    }

    #[test]
    fn a_document_of_another_schema_is_refused_by_name() {
        let other =
            json!({"format": STATE_FORMAT, "format_version": 1, "schema_version": 1}).to_string();
        let error = check_header(&other).unwrap_err().to_string();
        assert!(error.contains("schema version 1"), "{error}");
        assert!(check_header("{\"format\": \"tar\"}").is_err());
        let ours = json!({"format": STATE_FORMAT, "format_version": 1, "schema_version": schema_version()});
        check_header(&ours.to_string()).unwrap();
    }
}

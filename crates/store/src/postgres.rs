//! PostgreSQL through sqlx (see [`crate::db`]).

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Column, Postgres, Row as _, TypeInfo, ValueRef};

use crate::db::{Bind, Row, Value};
use crate::{Result, StoreError};

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

fn query<'q>(sql: &str, binds: &[Bind<'_>]) -> Query<'q> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in binds {
        query = match bind {
            Bind::Int(n) => query.bind(*n),
            Bind::Text(s) => query.bind(s.as_deref()),
        };
    }
    query
}

pub(crate) async fn execute<'e>(
    db: impl sqlx::PgExecutor<'e>,
    sql: &str,
    binds: &[Bind<'_>],
) -> Result<u64> {
    Ok(query(sql, binds).execute(db).await?.rows_affected())
}

pub(crate) async fn fetch_all<'e>(
    db: impl sqlx::PgExecutor<'e>,
    sql: &str,
    binds: &[Bind<'_>],
) -> Result<Vec<Row>> {
    query(sql, binds)
        .fetch_all(db)
        .await?
        .iter()
        .map(row_of)
        .collect()
}

pub(crate) async fn fetch_optional<'e>(
    db: impl sqlx::PgExecutor<'e>,
    sql: &str,
    binds: &[Bind<'_>],
) -> Result<Option<Row>> {
    query(sql, binds)
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(row_of)
        .transpose()
}

/// Statements separated by semicolons, nothing bound (migrations, `CREATE DATABASE`).
pub(crate) async fn execute_script<'e>(db: impl sqlx::PgExecutor<'e>, sql: &str) -> Result<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(db).await?;
    Ok(())
}

/// The schema keeps to integers and text (times in epoch milliseconds, money in micro-units, flags as
/// 0/1), so those are the values a row can hold. Each value is decoded from its bytes once, by the type
/// its column says (`try_get` would look the column up and check the type again for every value).
fn row_of(row: &PgRow) -> Result<Row> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            values.push(Value::Null);
            continue;
        }
        values.push(match column.type_info().name() {
            "INT8" => Value::Int(decode::<i64>(raw, column)?),
            "INT4" => Value::Int(i64::from(decode::<i32>(raw, column)?)),
            "INT2" => Value::Int(i64::from(decode::<i16>(raw, column)?)),
            "BOOL" => Value::Int(i64::from(decode::<bool>(raw, column)?)),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => {
                Value::Text(decode::<&str>(raw, column)?.to_owned())
            }
            other => {
                return Err(StoreError::Unexpected(format!(
                    "column {} is of type {other}: cast it to BIGINT or TEXT",
                    column.name()
                )));
            }
        });
    }
    Ok(Row(values))
}

fn decode<'r, T: sqlx::Decode<'r, Postgres>>(
    raw: sqlx::postgres::PgValueRef<'r>,
    column: &sqlx::postgres::PgColumn,
) -> Result<T> {
    T::decode(raw).map_err(|e| {
        StoreError::Unexpected(format!("column {} does not decode: {e}", column.name()))
    })
}

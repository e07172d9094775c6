//! The SQLite and PostgreSQL migrations build the same schema: tables, columns, nullability, indexes.

use std::collections::BTreeSet;

use barrack_store::Store;
use sqlx::Row;

use crate::common::{Db, TestDatabase, postgres_url};

type Column = (String, String, String, bool);
type Index = (String, String, bool, String);

async fn sqlite_schema(store: &Store) -> (BTreeSet<Column>, BTreeSet<Index>) {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let mut columns = BTreeSet::new();
    let mut indexes = BTreeSet::new();
    for table in tables {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info('{table}')"
        ));
        for row in sqlx::query(sql).fetch_all(store.pool()).await.unwrap() {
            let (name, kind, notnull, pk): (String, String, i64, i64) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            columns.insert((
                table.clone(),
                name,
                normalize_type(&kind),
                notnull == 1 || pk > 0,
            ));
        }
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT name, \"unique\", origin FROM pragma_index_list('{table}')"
        ));
        for row in sqlx::query(sql).fetch_all(store.pool()).await.unwrap() {
            let (name, unique, origin): (String, i64, String) =
                (row.get(0), row.get(1), row.get(2));
            if origin != "c" {
                continue; // primary keys and UNIQUE constraints are compared as columns
            }
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_index_info('{name}') ORDER BY seqno"
            ));
            let cols: Vec<String> = sqlx::query_scalar(sql)
                .fetch_all(store.pool())
                .await
                .unwrap();
            indexes.insert((table.clone(), name, unique == 1, cols.join(",")));
        }
    }
    (columns, indexes)
}

async fn postgres_schema(store: &Store) -> (BTreeSet<Column>, BTreeSet<Index>) {
    let mut columns = BTreeSet::new();
    let rows = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
         WHERE table_schema = 'public'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    for row in rows {
        let (table, name, kind, nullable): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        columns.insert((table, name, normalize_type(&kind), nullable == "NO"));
    }
    let mut indexes = BTreeSet::new();
    let rows = sqlx::query(
        "SELECT t.relname::text, i.relname::text, CAST(CASE WHEN ix.indisunique THEN 1 ELSE 0 END AS BIGINT), \
         array_to_string(ARRAY(SELECT a.attname FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord), ',') \
         FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public' AND NOT ix.indisprimary",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    for row in rows {
        let (table, name, unique, cols): (String, String, i64, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        indexes.insert((table, name, unique == 1, cols));
    }
    (columns, indexes)
}

fn normalize_type(kind: &str) -> String {
    match kind.to_lowercase().as_str() {
        "integer" | "bigint" | "int" => "integer".into(),
        "text" | "character varying" => "text".into(),
        other => other.into(),
    }
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_build_the_same_schema() {
    if postgres_url().is_none() {
        eprintln!("BARRACK_TEST_POSTGRES_URL is not set: schema parity not checked");
        return;
    }
    let sqlite_db = TestDatabase::create(Db::Sqlite).await;
    let postgres_db = TestDatabase::create(Db::Postgres).await;
    let sqlite = Store::connect(&sqlite_db.url, 2).await.unwrap();
    let postgres = Store::connect(&postgres_db.url, 2).await.unwrap();
    assert_eq!(
        sqlite.migrate().await.unwrap().len(),
        barrack_store::MIGRATIONS.len()
    );
    assert_eq!(
        postgres.migrate().await.unwrap().len(),
        barrack_store::MIGRATIONS.len()
    );
    assert!(
        sqlite.migrate().await.unwrap().is_empty(),
        "migrating twice applies nothing"
    );

    let (sqlite_columns, sqlite_indexes) = sqlite_schema(&sqlite).await;
    let (postgres_columns, postgres_indexes) = postgres_schema(&postgres).await;
    assert!(sqlite_columns.len() > 20);
    assert_eq!(
        sqlite_columns
            .symmetric_difference(&postgres_columns)
            .collect::<Vec<_>>(),
        Vec::<&Column>::new(),
        "columns differ"
    );
    assert_eq!(
        sqlite_indexes
            .symmetric_difference(&postgres_indexes)
            .collect::<Vec<_>>(),
        Vec::<&Index>::new(),
        "indexes differ"
    );
    sqlite.close().await;
    postgres.close().await;
    sqlite_db.drop_database().await;
    postgres_db.drop_database().await;
}

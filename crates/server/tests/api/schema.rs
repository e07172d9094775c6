//! The SQLite and PostgreSQL migrations build the same schema: tables, columns, nullability, indexes.

use std::collections::BTreeSet;

use barrack_store::Store;
use barrack_store::sql::Columns;

use crate::common::{Db, TestDatabase};

type Column = (String, String, String, bool);
type Index = (String, String, bool, String);

async fn sqlite_schema(store: &Store) -> (BTreeSet<Column>, BTreeSet<Index>) {
    let tables: Vec<String> = store
        .fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.text(0).unwrap())
        .collect();
    let mut columns = BTreeSet::new();
    let mut indexes = BTreeSet::new();
    for table in tables {
        let sql = format!("SELECT name, type, \"notnull\", pk FROM pragma_table_info('{table}')");
        for row in store.fetch_all(&sql, &[]).await.unwrap() {
            let (name, kind, notnull, pk) = (
                row.text(0).unwrap(),
                row.text(1).unwrap(),
                row.int(2).unwrap(),
                row.int(3).unwrap(),
            );
            columns.insert((
                table.clone(),
                name,
                normalize_type(&kind),
                notnull == 1 || pk > 0,
            ));
        }
        let sql = format!("SELECT name, \"unique\", origin FROM pragma_index_list('{table}')");
        for row in store.fetch_all(&sql, &[]).await.unwrap() {
            let (name, unique, origin) = (
                row.text(0).unwrap(),
                row.int(1).unwrap(),
                row.text(2).unwrap(),
            );
            if origin != "c" {
                continue; // primary keys and UNIQUE constraints are compared as columns
            }
            let sql = format!("SELECT name FROM pragma_index_info('{name}') ORDER BY seqno");
            let cols: Vec<String> = store
                .fetch_all(&sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.text(0).unwrap())
                .collect();
            indexes.insert((table.clone(), name, unique == 1, cols.join(",")));
        }
    }
    (columns, indexes)
}

async fn postgres_schema(store: &Store) -> (BTreeSet<Column>, BTreeSet<Index>) {
    let mut columns = BTreeSet::new();
    let rows = store
        .fetch_all(
            "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
             FROM information_schema.columns WHERE table_schema = 'public'",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let text = |i| row.text(i).unwrap();
        let (table, name, kind, nullable) = (text(0), text(1), text(2), text(3));
        columns.insert((table, name, normalize_type(&kind), nullable == "NO"));
    }
    let mut indexes = BTreeSet::new();
    let rows = store
        .fetch_all(
        "SELECT t.relname::text, i.relname::text, CAST(CASE WHEN ix.indisunique THEN 1 ELSE 0 END AS BIGINT), \
         array_to_string(ARRAY(SELECT a.attname FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord), ',') \
         FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public' AND NOT ix.indisprimary",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let (table, name, unique, cols) = (
            row.text(0).unwrap(),
            row.text(1).unwrap(),
            row.int(2).unwrap(),
            row.text(3).unwrap(),
        );
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
    if !crate::common::postgres_available(
        "schema::sqlite_and_postgres_migrations_build_the_same_schema",
    ) {
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

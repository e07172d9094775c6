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

/// PostgreSQL's only table of its own: the notes its row triggers leave for its statement triggers to fold
/// into the open periods' rate counts (SQLite has no statement triggers, and updates counts in place).
const POSTGRES_ONLY: [&str; 1] = ["open_period_rate_changes"];

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
        if POSTGRES_ONLY.contains(&table.as_str()) {
            continue;
        }
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

/// The rows of the three tables SQLite's 0031 rebuilds, each as one line of quoted values, and their
/// indexes with their SQL.
async fn rebuilt_tables(store: &Store) -> Vec<String> {
    let queries = [
        "SELECT quote(account_id) || ',' || quote(currency) || ',' || quote(amount_micros) || ',' || \
         quote(updated_at) FROM balances ORDER BY account_id, currency",
        "SELECT quote(id) || ',' || quote(account_id) || ',' || quote(currency) || ',' || quote(kind) || ',' || \
         quote(amount_micros) || ',' || quote(balance_after_micros) || ',' || quote(description) || ',' || \
         quote(idempotency_key) || ',' || quote(created_by) || ',' || quote(created_at) \
         FROM ledger_entries ORDER BY id",
        "SELECT quote(id) || ',' || quote(account_id) || ',' || quote(request_id) || ',' || quote(model) || ',' || \
         quote(input_tokens) || ',' || quote(output_tokens) || ',' || quote(cost_micros) || ',' || \
         quote(currency) || ',' || quote(status) || ',' || quote(stream) || ',' || quote(ledger_entry_id) || \
         ',' || quote(created_at) FROM ai_requests ORDER BY id",
        "SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_master \
         WHERE tbl_name IN ('balances', 'ledger_entries', 'ai_requests') AND type <> 'table' ORDER BY name",
    ];
    let mut lines = Vec::new();
    for sql in queries {
        for row in store.fetch_all(sql, &[]).await.unwrap() {
            lines.push(row.text(0).unwrap());
        }
    }
    lines
}

/// SQLite's 0031 rebuilds `balances`, `ledger_entries` and `ai_requests` to write their CHECKs as
/// equalities. Run again over rows, as over a database in use, it keeps every row, index and foreign key,
/// and the constraints refuse what they refused before.
#[tokio::test]
async fn sqlite_0031_rebuild_keeps_rows_indexes_and_constraints() {
    let db = TestDatabase::create(Db::Sqlite).await;
    let store = Store::connect(&db.url, 1).await.unwrap();
    store.migrate().await.unwrap();
    store
        .execute_script(
            "INSERT INTO accounts (id, email, password_hash, name, created_at, updated_at) \
             VALUES ('acc-1', 'a@example.com', 'x', 'A', 1, 1);
             INSERT INTO balances VALUES ('acc-1', 'USD', 5, 1), ('acc-1', 'INR', 7, 1);
             INSERT INTO ledger_entries (id, account_id, currency, kind, amount_micros, balance_after_micros, \
             description, idempotency_key, created_by, created_at) VALUES \
             ('l1', 'acc-1', 'USD', 'grant', 10, 10, 'g', 'k1', NULL, 1), \
             ('l2', 'acc-1', 'USD', 'usage', -5, 5, 'u', 'ai:r1', NULL, 2), \
             ('l3', 'acc-1', 'INR', 'adjustment', 7, 7, 'a', NULL, 'op', 3);
             INSERT INTO ai_requests VALUES ('q1', 'acc-1', 'r1', 'm', 1, 2, 5, 'USD', 'completed', 0, 'l2', 2), \
             ('q2', 'acc-1', 'r2', 'm', 1, 0, 0, 'EUR', 'failed', 1, NULL, 3);",
        )
        .await
        .unwrap();
    let before = rebuilt_tables(&store).await;
    // 7 rows; 7 indexes: the three primary keys', two of ledger_entries, two of ai_requests.
    assert_eq!(before.len(), 7 + 7, "{before:#?}");
    let rebuild = barrack_store::MIGRATIONS
        .iter()
        .find(|m| m.version == 31)
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.execute_script(rebuild.sqlite).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(rebuilt_tables(&store).await, before);
    let definitions = store
        .fetch_all(
            "SELECT sql FROM sqlite_master WHERE type = 'table' \
             AND name IN ('balances', 'ledger_entries', 'ai_requests')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(definitions.len(), 3);
    for definition in definitions {
        let sql = definition.text(0).unwrap();
        assert!(!sql.contains("IN ('"), "{sql}");
    }

    // Every value each constraint allowed is still allowed; anything else, a used idempotency key, a
    // request id recorded before or an unknown account is refused.
    for (sql, ok) in [
        ("INSERT INTO balances VALUES ('acc-1', 'EUR', 0, 1)", true),
        ("INSERT INTO balances VALUES ('acc-1', 'GBP', 0, 1)", false),
        ("INSERT INTO balances VALUES ('nobody', 'USD', 0, 1)", false),
        (
            "INSERT INTO ledger_entries VALUES ('l4', 'acc-1', 'EUR', 'deposit', 1, 1, 'd', NULL, NULL, 4), \
             ('l5', 'acc-1', 'EUR', 'refund', 1, 2, 'r', NULL, NULL, 4)",
            true,
        ),
        (
            "INSERT INTO ledger_entries VALUES ('l6', 'acc-1', 'EUR', 'bonus', 1, 1, 'b', NULL, NULL, 4)",
            false,
        ),
        (
            "INSERT INTO ledger_entries VALUES ('l6', 'acc-1', 'usd', 'grant', 1, 1, 'b', NULL, NULL, 4)",
            false,
        ),
        (
            "INSERT INTO ledger_entries VALUES ('l6', 'acc-1', 'USD', 'grant', 1, 1, 'b', 'k1', NULL, 4)",
            false,
        ),
        (
            "INSERT INTO ai_requests VALUES ('q3', 'acc-1', 'r3', 'm', 1, 0, 0, 'INR', 'cancelled', 1, NULL, 4)",
            true,
        ),
        (
            "INSERT INTO ai_requests VALUES ('q4', 'acc-1', 'r4', 'm', 1, 0, 0, 'USD', 'done', 1, NULL, 4)",
            false,
        ),
        (
            "INSERT INTO ai_requests VALUES ('q4', 'acc-1', 'r1', 'm', 1, 0, 0, 'USD', 'failed', 1, NULL, 4)",
            false,
        ),
        (
            "INSERT INTO ai_requests VALUES ('q4', 'nobody', 'r4', 'm', 1, 0, 0, 'USD', 'failed', 1, NULL, 4)",
            false,
        ),
    ] {
        assert_eq!(store.execute(sql, &[]).await.is_ok(), ok, "{sql}");
    }
    store.close().await;
}

/// PostgreSQL's admission functions hold the store's statements word for word (migration 0038): a
/// statement changed in the store without a migration that writes it into its function would leave
/// deploys on PostgreSQL checking something else than on SQLite.
#[tokio::test]
async fn postgres_functions_hold_the_stores_statements() {
    if !crate::common::postgres_available("schema::postgres_functions_hold_the_stores_statements") {
        return;
    }
    let db = TestDatabase::create(Db::Postgres).await;
    let store = Store::connect(&db.url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let statements = barrack_store::admission::postgres_function_statements();
    assert_eq!(statements.len(), 5);
    for (function, statement) in statements {
        let source = store
            .fetch_all(
                "SELECT prosrc FROM pg_proc WHERE proname = $1",
                &barrack_store::binds![function],
            )
            .await
            .unwrap();
        assert_eq!(source.len(), 1, "one function {function}");
        let source = words(&source[0].text(0).unwrap());
        assert!(
            source.contains(&words(&statement)),
            "{function} does not hold the store's statement\n  {statement}\nbut\n  {source}"
        );
    }
    store.close().await;
    db.drop_database().await;
}

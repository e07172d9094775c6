//! AI chat calls: what each delivered and cost, written with its ledger entry in one transaction.

use std::sync::LazyLock;

use crate::ledger::{self, LedgerEntryRow};
use crate::sql::{Columns, Listing, insert_sql};
use crate::{Backend, Bind, Db, Result, Row, Store, binds};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiRequestRow {
    pub id: String,
    pub account_id: String,
    /// The request id of the call (unique: a call is recorded at most once).
    pub request_id: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: i64,
    pub currency: String,
    /// `completed`, `cancelled` (the client went away) or `failed` (the model backend did).
    pub status: String,
    pub stream: bool,
    pub ledger_entry_id: Option<String>,
    pub created_at: i64,
}

/// Per-model totals of a time range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiUsageRow {
    pub model: String,
    pub currency: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: i64,
}

const COLUMNS: &str = "id, account_id, request_id, model, input_tokens, output_tokens, cost_micros, currency, \
                       status, stream, ledger_entry_id, created_at";

fn from_row(row: &Row) -> Result<AiRequestRow> {
    Ok(AiRequestRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        request_id: row.text(2)?,
        model: row.text(3)?,
        input_tokens: row.int(4)?,
        output_tokens: row.int(5)?,
        cost_micros: row.int(6)?,
        currency: row.text(7)?,
        status: row.text(8)?,
        stream: row.int(9)? != 0,
        ledger_entry_id: row.opt_text(10)?,
        created_at: row.int(11)?,
    })
}

/// What an AI call in flight may still cost, held against its account's balance until it is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiHold {
    pub id: String,
    pub account_id: String,
    pub currency: String,
    pub micros: i64,
    /// When a hold its call never settled (its server stopped) stops counting.
    pub expires_at: i64,
}

/// Whether [`Store::hold_ai_call`] held the call's worst case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AiHeld {
    Held,
    /// Refused: the balance less the other calls' holds, which is less than the call's worst case.
    Short {
        available: i64,
    },
}

impl Store {
    /// Holds `hold.micros` of the account's balance for a call, unless the balance, less what the
    /// account's other calls in flight hold, falls short of it (or is not above zero). One transaction
    /// holding the balance's row (PostgreSQL locks it; SQLite's writer is held already), so that calls
    /// admitted at once by any number of servers see each other's holds. Lapsed holds of the account go
    /// on the way.
    pub async fn hold_ai_call(&self, hold: &AiHold, now: i64) -> Result<AiHeld> {
        let mut tx = self.begin().await?;
        let lock = match tx.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        };
        let balance = tx
            .fetch_optional(
                &format!(
                    "SELECT amount_micros FROM balances WHERE account_id = $1 AND currency = $2{lock}"
                ),
                &binds![&hold.account_id, &hold.currency],
            )
            .await?
            .map(|row| row.int(0))
            .transpose()?
            .unwrap_or(0);
        tx.execute(
            "DELETE FROM ai_holds WHERE account_id = $1 AND expires_at <= $2",
            &binds![&hold.account_id, now],
        )
        .await?;
        let held = tx
            .fetch_one(
                "SELECT CAST(COALESCE(SUM(micros), 0) AS BIGINT) FROM ai_holds \
                 WHERE account_id = $1 AND currency = $2",
                &binds![&hold.account_id, &hold.currency],
            )
            .await?
            .int(0)?;
        let available = balance - held;
        if balance <= 0 || available < hold.micros {
            return Ok(AiHeld::Short { available });
        }
        tx.execute(
            "INSERT INTO ai_holds (id, account_id, currency, micros, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &binds![
                &hold.id,
                &hold.account_id,
                &hold.currency,
                hold.micros,
                hold.expires_at
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(AiHeld::Held)
    }

    /// Lets a settled call's hold go.
    pub async fn release_ai_hold(&self, id: &str) -> Result<()> {
        self.execute("DELETE FROM ai_holds WHERE id = $1", &binds![id])
            .await?;
        Ok(())
    }

    /// Records a call and, when it cost anything, appends its `usage` ledger entry, in one transaction
    /// that also lets the call's `hold` go (so the balance is never held and charged for it at once).
    /// Returns the call as recorded: this one, with its ledger entry's id, or, changing nothing but the
    /// hold, the one recorded before under the same request id.
    ///
    /// Ids have 6 random characters, so the row's id can be taken already: it then gets another from
    /// `fresh_request_id` (the ledger entry's, from `fresh_id`).
    pub async fn record_ai_request(
        &self,
        request: &AiRequestRow,
        charge: Option<&LedgerEntryRow>,
        hold: Option<&str>,
        fresh_id: fn() -> String,
        fresh_request_id: fn() -> String,
    ) -> Result<AiRequestRow> {
        if let Some(recorded) = self
            .try_record_ai_request(request, charge, hold, fresh_id, fresh_request_id)
            .await?
        {
            return Ok(recorded);
        }
        if let Some(hold) = hold {
            self.release_ai_hold(hold).await?;
        }
        self.ai_request_by_request_id(&request.request_id)
            .await?
            .ok_or_else(|| {
                crate::StoreError::Unexpected(format!(
                    "AI request {} is recorded neither anew nor before",
                    request.request_id
                ))
            })
    }

    /// The write of [`Store::record_ai_request`]; `None`, changing nothing, when the request id was
    /// recorded before.
    async fn try_record_ai_request(
        &self,
        request: &AiRequestRow,
        charge: Option<&LedgerEntryRow>,
        hold: Option<&str>,
        fresh_id: fn() -> String,
        fresh_request_id: fn() -> String,
    ) -> Result<Option<AiRequestRow>> {
        // Every call is settled here: its SQL is written once.
        static INSERT: LazyLock<String> = LazyLock::new(|| {
            format!(
                "{} ON CONFLICT DO NOTHING",
                insert_sql("ai_requests", COLUMNS)
            )
        });
        let mut tx = self.begin().await?;
        let mut row = request.clone();
        // The call's row goes in first, naming the entry it will have: a request id recorded before (a
        // replay) is found before anything is written, and the entry's key, made of the request id, is
        // then new, so the ledger need not look for it.
        row.ledger_entry_id = charge.map(|entry| entry.id.clone());
        let mut attempts = 0;
        loop {
            let inserted = tx
                .execute(
                    &INSERT,
                    &binds![
                        &row.id,
                        &row.account_id,
                        &row.request_id,
                        &row.model,
                        row.input_tokens,
                        row.output_tokens,
                        row.cost_micros,
                        &row.currency,
                        &row.status,
                        row.stream,
                        &row.ledger_entry_id,
                        row.created_at,
                    ],
                )
                .await?;
            if inserted == 1 {
                break;
            }
            // No conflict target: a request id recorded before and a taken id both insert nothing,
            // without aborting the transaction on PostgreSQL. Only the first means "recorded before".
            let recorded = tx
                .fetch_optional(
                    "SELECT id FROM ai_requests WHERE request_id = $1",
                    &binds![&row.request_id],
                )
                .await?;
            attempts += 1;
            if recorded.is_some() || attempts >= 16 {
                return match recorded {
                    Some(_) => Ok(None),
                    None => Err(crate::StoreError::Unique(format!(
                        "AI request id {} (no free id after {attempts} attempts)",
                        row.id
                    ))),
                };
            }
            row.id = fresh_request_id();
        }
        if let Some(entry) = charge {
            // Dropping the transaction (a key used after all) rolls the call's row back with it.
            let Some(appended) = ledger::append_unchecked(&mut tx, entry, fresh_id).await? else {
                return Ok(None);
            };
            if appended.id != entry.id {
                // The entry's id was taken: it went in under another.
                tx.execute(
                    "UPDATE ai_requests SET ledger_entry_id = $2 WHERE id = $1",
                    &binds![&row.id, &appended.id],
                )
                .await?;
                row.ledger_entry_id = Some(appended.id);
            }
        }
        if let Some(hold) = hold {
            tx.execute("DELETE FROM ai_holds WHERE id = $1", &binds![hold])
                .await?;
        }
        tx.commit().await?;
        Ok(Some(row))
    }

    /// A page of the account's calls in `[from_ms, to_ms)`, newest first, and how many there are.
    pub async fn ai_requests(
        &self,
        account_id: &str,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<AiRequestRow>, u64)> {
        let (condition, binds) = range_condition(account_id, from_ms, to_ms);
        let listing = Listing {
            table: "ai_requests",
            columns: COLUMNS,
            condition: &condition,
            binds: &binds,
            order: "created_at DESC, id DESC",
            source: None,
        };
        let (rows, total) = listing.page(self, offset, limit).await?;
        Ok((rows.iter().map(from_row).collect::<Result<_>>()?, total))
    }

    /// The account's totals per model and currency in `[from_ms, to_ms)`, by model name.
    pub async fn ai_usage(
        &self,
        account_id: &str,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> Result<Vec<AiUsageRow>> {
        let (condition, binds) = range_condition(account_id, from_ms, to_ms);
        let sql = format!(
            "SELECT model, currency, COUNT(*), CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), \
             CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) \
             FROM ai_requests WHERE {condition} GROUP BY model, currency ORDER BY model, currency"
        );
        let rows = self.fetch_all(&sql, &binds).await?;
        rows.iter()
            .map(|r| {
                Ok(AiUsageRow {
                    model: r.text(0)?,
                    currency: r.text(1)?,
                    requests: r.int(2)?,
                    input_tokens: r.int(3)?,
                    output_tokens: r.int(4)?,
                    cost_micros: r.int(5)?,
                })
            })
            .collect()
    }

    /// The call recorded under a request id, if any.
    pub async fn ai_request_by_request_id(&self, request_id: &str) -> Result<Option<AiRequestRow>> {
        let sql = format!("SELECT {COLUMNS} FROM ai_requests WHERE request_id = $1");
        let row = self.fetch_optional(&sql, &binds![request_id]).await?;
        row.as_ref().map(from_row).transpose()
    }
}

fn range_condition(
    account_id: &str,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> (String, Vec<Bind<'_>>) {
    let mut conditions = vec!["account_id = $1".to_string()];
    let mut binds: Vec<Bind> = vec![account_id.into()];
    if let Some(from) = from_ms {
        binds.push(from.into());
        conditions.push(format!("created_at >= ${}", binds.len()));
    }
    if let Some(to) = to_ms {
        binds.push(to.into());
        conditions.push(format!("created_at < ${}", binds.len()));
    }
    (conditions.join(" AND "), binds)
}

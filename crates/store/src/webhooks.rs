//! Webhooks of accounts, and the deliveries of events to them.

use crate::sql::{Columns, insert_sql};
use crate::{Db, Result, Row, Store, binds};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    pub id: String,
    pub account_id: String,
    pub url: String,
    /// A JSON array of event types; empty for every event.
    pub event_types: String,
    pub secret: String,
    pub created_at: i64,
}

const COLUMNS: &str = "id, account_id, url, event_types, secret, created_at";

fn from_row(row: &Row) -> Result<WebhookRow> {
    Ok(WebhookRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        url: row.text(2)?,
        event_types: row.text(3)?,
        secret: row.text(4)?,
        created_at: row.int(5)?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: String,
    pub webhook_id: String,
    pub account_id: String,
    pub event_id: String,
    pub event_type: String,
    /// The JSON document sent, the same at every attempt.
    pub body: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub response_status: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<i64>,
    pub replay_of: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, account_id, event_id, event_type, body, status, attempts, \
                                response_status, last_error, next_attempt_at, replay_of, created_at, updated_at";

fn delivery_from_row(row: &Row) -> Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: row.text(0)?,
        webhook_id: row.text(1)?,
        account_id: row.text(2)?,
        event_id: row.text(3)?,
        event_type: row.text(4)?,
        body: row.text(5)?,
        status: row.text(6)?,
        attempts: row.int(7)?,
        response_status: row.opt_int(8)?,
        last_error: row.opt_text(9)?,
        next_attempt_at: row.opt_int(10)?,
        replay_of: row.opt_text(11)?,
        created_at: row.int(12)?,
        updated_at: row.int(13)?,
    })
}

pub async fn insert(db: &mut impl Db, w: &WebhookRow) -> Result<()> {
    let sql = insert_sql("webhooks", COLUMNS);
    db.execute(
        &sql,
        &binds![
            &w.id,
            &w.account_id,
            &w.url,
            &w.event_types,
            &w.secret,
            w.created_at
        ],
    )
    .await?;
    Ok(())
}

/// The account's webhooks, inside the transaction that writes an event (to fan it out).
pub async fn for_account(db: &mut impl Db, account_id: &str) -> Result<Vec<WebhookRow>> {
    let sql =
        format!("SELECT {COLUMNS} FROM webhooks WHERE account_id = $1 ORDER BY created_at, id");
    let rows = db.fetch_all(&sql, &binds![account_id]).await?;
    rows.iter().map(from_row).collect()
}

pub async fn count_for_account(db: &mut impl Db, account_id: &str) -> Result<u64> {
    let row = db
        .fetch_one(
            "SELECT COUNT(*) FROM webhooks WHERE account_id = $1",
            &binds![account_id],
        )
        .await?;
    Ok(row.int(0)? as u64)
}

pub async fn insert_delivery(db: &mut impl Db, d: &DeliveryRow) -> Result<()> {
    let sql = insert_sql("webhook_deliveries", DELIVERY_COLUMNS);
    db.execute(
        &sql,
        &binds![
            &d.id,
            &d.webhook_id,
            &d.account_id,
            &d.event_id,
            &d.event_type,
            &d.body,
            &d.status,
            d.attempts,
            d.response_status,
            &d.last_error,
            d.next_attempt_at,
            &d.replay_of,
            d.created_at,
            d.updated_at,
        ],
    )
    .await?;
    Ok(())
}

/// The outcome of one attempt at a delivery.
pub struct Attempt<'a> {
    pub status: &'a str,
    pub response_status: Option<i64>,
    pub last_error: Option<&'a str>,
    pub next_attempt_at: Option<i64>,
}

impl Store {
    pub async fn webhooks(&self, account_id: &str) -> Result<Vec<WebhookRow>> {
        for_account(&mut &*self, account_id).await
    }

    /// The account's webhook `id`; `None` for another account's.
    pub async fn webhook(&self, account_id: &str, id: &str) -> Result<Option<WebhookRow>> {
        let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1 AND account_id = $2");
        let row = self.fetch_optional(&sql, &binds![id, account_id]).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Removes a webhook and its delivery log; false when the account has no such webhook.
    pub async fn delete_webhook(&self, account_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let deleted = tx
            .execute(
                "DELETE FROM webhooks WHERE id = $1 AND account_id = $2",
                &binds![id, account_id],
            )
            .await?;
        if deleted == 1 {
            tx.execute(
                "DELETE FROM webhook_deliveries WHERE webhook_id = $1",
                &binds![id],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(deleted == 1)
    }

    /// A page of a webhook's deliveries, newest first, with how many there are.
    pub async fn webhook_deliveries(
        &self,
        webhook_id: &str,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<DeliveryRow>, u64)> {
        let total = self
            .read_int(
                "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1",
                &binds![webhook_id],
            )
            .await?;
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        );
        let rows = self
            .fetch_all(&sql, &binds![webhook_id, i64::from(limit), offset as i64])
            .await?;
        Ok((
            rows.iter().map(delivery_from_row).collect::<Result<_>>()?,
            total as u64,
        ))
    }

    pub async fn webhook_delivery(&self, id: &str) -> Result<Option<DeliveryRow>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1");
        let row = self.fetch_optional(&sql, &binds![id]).await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    /// Records an attempt at a pending delivery; false when it was no longer pending.
    pub async fn record_delivery_attempt(
        &self,
        id: &str,
        attempt: &Attempt<'_>,
        now: i64,
    ) -> Result<bool> {
        let done = self
            .execute(
                "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, response_status = $3, \
                 last_error = $4, next_attempt_at = $5, updated_at = $6 WHERE id = $1 AND status = 'pending'",
                &binds![
                    id,
                    attempt.status,
                    attempt.response_status,
                    attempt.last_error,
                    attempt.next_attempt_at,
                    now
                ],
            )
            .await?;
        Ok(done == 1)
    }

    /// Deletes up to `limit` settled (delivered or failed) deliveries made before `before`, oldest first;
    /// how many went.
    pub async fn prune_webhook_deliveries(&self, before: i64, limit: u32) -> Result<u64> {
        self.execute(
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
             WHERE created_at < $1 AND status <> 'pending' ORDER BY created_at, id LIMIT $2)",
            &binds![before, i64::from(limit)],
        )
        .await
    }
}

//! Firewalls, their rules and their attachments to instances. Firewall state changes are conditional on
//! the generation the caller read, and bump it; so are attachment changes, on the attachment's own.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::instances::{RULE_COLUMNS, RuleRow, rule_from};
use crate::sql::{Bind, GenerationUpdate, Listing, RowSet, placeholders, prefixed};
use crate::{Backend, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub description: String,
    pub tier: String,
    pub region: String,
    /// `CREATING`, `SUCCESS`, `ERROR` or `DELETED`.
    pub status: String,
    pub status_reason: Option<String>,
    pub generation: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

const COLUMNS: &str = "id, account_id, name, description, tier, region, status, status_reason, generation, \
     created_at, updated_at, deleted_at";

fn from_row(row: &AnyRow) -> Result<FirewallRow> {
    Ok(FirewallRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        tier: row.try_get("tier")?,
        region: row.try_get("region")?,
        status: row.try_get("status")?,
        status_reason: row.try_get("status_reason")?,
        generation: row.try_get("generation")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

/// Inserts a firewall; a name the account already uses (among firewalls not deleted) is
/// `StoreError::Unique`.
pub async fn insert(tx: &mut AnyConnection, f: &FirewallRow) -> Result<()> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO firewalls ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ));
    sqlx::query(sql)
        .bind(&f.id)
        .bind(&f.account_id)
        .bind(&f.name)
        .bind(&f.description)
        .bind(&f.tier)
        .bind(&f.region)
        .bind(&f.status)
        .bind(&f.status_reason)
        .bind(f.generation)
        .bind(f.created_at)
        .bind(f.updated_at)
        .bind(f.deleted_at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Fields a firewall change sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct FirewallChange {
    pub status: Option<String>,
    pub status_reason: Option<Option<String>>,
    pub deleted_at: Option<i64>,
}

/// Applies `change` if the firewall is still at `generation`, bumping it; false when someone else changed
/// the firewall first (the caller re-reads and decides again). An empty change only bumps the generation:
/// what rule and attachment changes do, so that two of them never decide on the same reading.
pub async fn update(
    tx: &mut AnyConnection,
    id: &str,
    generation: i64,
    change: &FirewallChange,
    now: i64,
) -> Result<bool> {
    let mut update = GenerationUpdate::new("firewalls", id, generation, now);
    if let Some(status) = &change.status {
        update.set("status", Bind::Text(status.clone()));
    }
    if let Some(reason) = &change.status_reason {
        update.set("status_reason", Bind::OptText(reason.clone()));
    }
    if let Some(at) = change.deleted_at {
        update.set("deleted_at", Bind::Int(at));
    }
    update.apply(tx).await
}

/// Bumps the generation whatever it is, and returns the new one: workers recording an attachment's
/// outcome as an event of its firewall (the event's sequence). `None` for an unknown firewall.
pub async fn bump(tx: &mut AnyConnection, id: &str, now: i64) -> Result<Option<i64>> {
    let generation: Option<i64> = sqlx::query_scalar(
        "UPDATE firewalls SET generation = generation + 1, updated_at = $2 WHERE id = $1 RETURNING generation",
    )
    .bind(id)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(generation)
}

/// Reads a firewall inside a transaction.
pub async fn get(tx: &mut AnyConnection, id: &str) -> Result<Option<FirewallRow>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM firewalls WHERE id = $1"));
    let row = sqlx::query(sql).bind(id).fetch_optional(&mut *tx).await?;
    row.as_ref().map(from_row).transpose()
}

/// Serialises the writers that count an account's resources before adding one (the firewall limit):
/// PostgreSQL locks the account's row until the transaction ends; SQLite's write transactions are serial
/// already.
pub async fn lock_account(
    tx: &mut AnyConnection,
    backend: Backend,
    account_id: &str,
) -> Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Firewalls of the account not deleted, inside a transaction.
pub async fn count_live(tx: &mut AnyConnection, account_id: &str) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM firewalls WHERE account_id = $1 AND status <> 'DELETED'",
    )
    .bind(account_id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(n as u64)
}

/// Adds a rule to a firewall, at `position` (see [`next_rule_position`]).
pub async fn insert_rule(
    tx: &mut AnyConnection,
    firewall_id: &str,
    rule: &RuleRow,
    position: i64,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO firewall_rules (id, firewall_id, direction, ethertype, protocol, port_range_min, \
         port_range_max, remote_ip_prefix, position, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&rule.id)
    .bind(firewall_id)
    .bind(&rule.direction)
    .bind(&rule.ethertype)
    .bind(&rule.protocol)
    .bind(rule.port_range_min)
    .bind(rule.port_range_max)
    .bind(&rule.remote_ip_prefix)
    .bind(position)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The position after the firewall's last rule.
pub async fn next_rule_position(tx: &mut AnyConnection, firewall_id: &str) -> Result<i64> {
    let last: Option<i64> =
        sqlx::query_scalar("SELECT MAX(position) FROM firewall_rules WHERE firewall_id = $1")
            .bind(firewall_id)
            .fetch_one(&mut *tx)
            .await?;
    Ok(last.map_or(0, |p| p + 1))
}

/// False when the firewall has no rule with that id.
pub async fn delete_rule(tx: &mut AnyConnection, firewall_id: &str, rule_id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM firewall_rules WHERE id = $1 AND firewall_id = $2")
        .bind(rule_id)
        .bind(firewall_id)
        .execute(&mut *tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A firewall's attachment to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRow {
    pub firewall_id: String,
    pub instance_id: String,
    pub account_id: String,
    /// `ATTACHING`, `SUCCESS`, `ERROR` or `DETACHING`.
    pub status: String,
    pub status_reason: Option<String>,
    pub generation: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const ATTACHMENT_COLUMNS: &str = "firewall_id, instance_id, account_id, status, status_reason, generation, created_at, updated_at";

fn attachment_from(row: &AnyRow, first: usize) -> Result<AttachmentRow> {
    Ok(AttachmentRow {
        firewall_id: row.try_get(first)?,
        instance_id: row.try_get(first + 1)?,
        account_id: row.try_get(first + 2)?,
        status: row.try_get(first + 3)?,
        status_reason: row.try_get(first + 4)?,
        generation: row.try_get(first + 5)?,
        created_at: row.try_get(first + 6)?,
        updated_at: row.try_get(first + 7)?,
    })
}

pub async fn insert_attachment(tx: &mut AnyConnection, a: &AttachmentRow) -> Result<()> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO firewall_attachments ({ATTACHMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ));
    sqlx::query(sql)
        .bind(&a.firewall_id)
        .bind(&a.instance_id)
        .bind(&a.account_id)
        .bind(&a.status)
        .bind(&a.status_reason)
        .bind(a.generation)
        .bind(a.created_at)
        .bind(a.updated_at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Sets an attachment's status and reason if it is still at `generation`, bumping it.
pub async fn update_attachment(
    tx: &mut AnyConnection,
    a: &AttachmentRow,
    status: &str,
    reason: Option<&str>,
    now: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE firewall_attachments SET status = $3, status_reason = $4, generation = generation + 1, \
         updated_at = $5 WHERE firewall_id = $1 AND instance_id = $2 AND generation = $6",
    )
    .bind(&a.firewall_id)
    .bind(&a.instance_id)
    .bind(status)
    .bind(reason)
    .bind(now)
    .bind(a.generation)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends an attachment if it is still at the generation it was read at.
pub async fn delete_attachment(tx: &mut AnyConnection, a: &AttachmentRow) -> Result<bool> {
    let done = sqlx::query(
        "DELETE FROM firewall_attachments WHERE firewall_id = $1 AND instance_id = $2 AND generation = $3",
    )
    .bind(&a.firewall_id)
    .bind(&a.instance_id)
    .bind(a.generation)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Every attachment of an instance (firewalls deleted or not), oldest first, inside a transaction.
pub async fn attachments_of_instance(
    tx: &mut AnyConnection,
    instance_id: &str,
) -> Result<Vec<AttachmentRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM firewall_attachments WHERE instance_id = $1 \
         ORDER BY created_at, firewall_id"
    ));
    let rows = sqlx::query(sql)
        .bind(instance_id)
        .fetch_all(&mut *tx)
        .await?;
    rows.iter().map(|r| attachment_from(r, 0)).collect()
}

/// Every attachment of a firewall, oldest first, inside a transaction.
pub async fn attachments_of_firewall(
    tx: &mut AnyConnection,
    firewall_id: &str,
) -> Result<Vec<AttachmentRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM firewall_attachments WHERE firewall_id = $1 \
         ORDER BY created_at, instance_id"
    ));
    let rows = sqlx::query(sql)
        .bind(firewall_id)
        .fetch_all(&mut *tx)
        .await?;
    rows.iter().map(|r| attachment_from(r, 0)).collect()
}

/// The rules an instance should have programmed, as (source, rule): its own (source `instance`), then
/// those of every firewall attached to it (source the firewall's id) except the ones being detached and
/// deleted firewalls. In a stable order: own rules oldest first, then by attachment and rule age.
pub async fn effective_rules(
    tx: &mut AnyConnection,
    instance_id: &str,
) -> Result<Vec<(String, RuleRow)>> {
    let own = sqlx::AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM instance_security_rules WHERE instance_id = $1 ORDER BY created_at, id"
    ));
    let mut rules = Vec::new();
    for row in sqlx::query(own)
        .bind(instance_id)
        .fetch_all(&mut *tx)
        .await?
    {
        rules.push(("instance".to_string(), rule_from(&row, 0)?));
    }
    let attached = sqlx::AssertSqlSafe(format!(
        "SELECT a.firewall_id, {} FROM firewall_attachments a \
         JOIN firewalls f ON f.id = a.firewall_id JOIN firewall_rules r ON r.firewall_id = a.firewall_id \
         WHERE a.instance_id = $1 AND a.status <> 'DETACHING' AND f.status <> 'DELETED' \
         ORDER BY a.created_at, a.firewall_id, r.position, r.id",
        prefixed(RULE_COLUMNS, "r")
    ));
    for row in sqlx::query(attached)
        .bind(instance_id)
        .fetch_all(&mut *tx)
        .await?
    {
        rules.push((row.try_get(0)?, rule_from(&row, 1)?));
    }
    Ok(rules)
}

/// Whether an instance has rules of its own or firewalls attached: whether a new machine for it needs
/// rules programmed.
pub async fn has_rules_or_attachments(tx: &mut AnyConnection, instance_id: &str) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM instance_security_rules WHERE instance_id = $1) \
         + (SELECT COUNT(*) FROM firewall_attachments WHERE instance_id = $1)",
    )
    .bind(instance_id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(n > 0)
}

/// An attachment with what a firewall's details show of its instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedInstance {
    pub attachment: AttachmentRow,
    pub instance_name: String,
    pub instance_status: String,
    pub instance_region: String,
}

#[derive(Debug, Clone, Default)]
pub struct FirewallFilter {
    pub region: Option<String>,
}

impl Store {
    /// A firewall of the account (another account's is `None`, like a missing one).
    pub async fn firewall(&self, account_id: &str, id: &str) -> Result<Option<FirewallRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM firewalls WHERE id = $1 AND account_id = $2"
        ));
        let row = sqlx::query(sql)
            .bind(id)
            .bind(account_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Any firewall, for workers.
    pub async fn firewall_by_id(&self, id: &str) -> Result<Option<FirewallRow>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM firewalls WHERE id = $1"));
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A page of the account's firewalls not deleted, newest first, and how many there are.
    pub async fn firewalls(
        &self,
        account_id: &str,
        filter: &FirewallFilter,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<FirewallRow>, u64)> {
        // Spelled as in the partial index `firewalls_account_live`.
        let mut condition = "account_id = $1 AND status <> 'DELETED'".to_string();
        let mut binds = vec![Bind::Text(account_id.to_string())];
        if let Some(region) = &filter.region {
            binds.push(Bind::Text(region.clone()));
            condition.push_str(" AND region = $2");
        }
        let listing = Listing {
            table: "firewalls",
            columns: COLUMNS,
            condition: &condition,
            binds: &binds,
            order: "created_at DESC, id DESC",
        };
        let (rows, total) = listing.page(self, offset, limit).await?;
        Ok((rows.iter().map(from_row).collect::<Result<_>>()?, total))
    }

    /// A firewall's rules, oldest first.
    pub async fn firewall_rules(&self, firewall_id: &str) -> Result<Vec<RuleRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM firewall_rules WHERE firewall_id = $1 ORDER BY position, id"
        ));
        let rows = sqlx::query(sql)
            .bind(firewall_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| rule_from(r, 0)).collect()
    }

    /// The rules of several firewalls in one query, as (firewall id, rule), each firewall's oldest first.
    pub async fn rules_of_firewalls(&self, ids: &[String]) -> Result<Vec<(String, RuleRow)>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT firewall_id, {RULE_COLUMNS} FROM firewall_rules WHERE firewall_id IN ({}) \
             ORDER BY firewall_id, position, id",
            placeholders(1, ids.len())
        ));
        let mut query = sqlx::query(sql);
        for id in ids {
            query = query.bind(id.as_str());
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, rule_from(r, 1)?)))
            .collect()
    }

    /// How many rules each of the firewalls has (firewalls without rules are absent).
    pub async fn rule_counts(&self, ids: &[String]) -> Result<Vec<(String, i64)>> {
        self.counts(
            "SELECT firewall_id, COUNT(*) FROM firewall_rules WHERE firewall_id IN ({}) GROUP BY firewall_id",
            ids,
        )
        .await
    }

    /// How many instances not deleted each of the firewalls is attached to (or being attached to or
    /// detached from).
    pub async fn attachment_counts(&self, ids: &[String]) -> Result<Vec<(String, i64)>> {
        self.counts(
            "SELECT a.firewall_id, COUNT(*) FROM firewall_attachments a JOIN instances i ON i.id = a.instance_id \
             WHERE a.firewall_id IN ({}) AND i.status <> 'DELETED' GROUP BY a.firewall_id",
            ids,
        )
        .await
    }

    async fn counts(&self, template: &str, ids: &[String]) -> Result<Vec<(String, i64)>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let placeholders = placeholders(1, ids.len());
        let sql = sqlx::AssertSqlSafe(template.replace("{}", &placeholders));
        let mut query = sqlx::query(sql);
        for id in ids {
            query = query.bind(id.as_str());
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The instances not deleted a firewall is attached to (or being attached to or detached from), with
    /// their name, status and region, oldest attachment first.
    pub async fn firewall_instances(&self, firewall_id: &str) -> Result<Vec<AttachedInstance>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {}, i.name, i.status, i.region FROM firewall_attachments a JOIN instances i ON i.id = a.instance_id \
             WHERE a.firewall_id = $1 AND i.status <> 'DELETED' ORDER BY a.created_at, a.instance_id",
            prefixed(ATTACHMENT_COLUMNS, "a")
        ));
        let rows = sqlx::query(sql)
            .bind(firewall_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AttachedInstance {
                    attachment: attachment_from(r, 0)?,
                    instance_name: r.try_get(8)?,
                    instance_status: r.try_get(9)?,
                    instance_region: r.try_get(10)?,
                })
            })
            .collect()
    }

    /// The firewalls not deleted attached to an instance (or being attached or detached), with the
    /// attachment, oldest attachment first.
    pub async fn instance_firewalls(
        &self,
        instance_id: &str,
    ) -> Result<Vec<(FirewallRow, AttachmentRow)>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {}, {} FROM firewall_attachments a JOIN firewalls f ON f.id = a.firewall_id \
             WHERE a.instance_id = $1 AND f.status <> 'DELETED' ORDER BY a.created_at, a.firewall_id",
            prefixed(COLUMNS, "f"),
            prefixed(ATTACHMENT_COLUMNS, "a")
        ));
        let rows = sqlx::query(sql)
            .bind(instance_id)
            .fetch_all(self.pool())
            .await?;
        let width = COLUMNS.split(", ").count();
        rows.iter()
            .map(|r| Ok((from_row(r)?, attachment_from(r, width)?)))
            .collect()
    }

    /// Attachments that have ended on their own: of instances that are deleted, and failed ones of
    /// firewalls that are deleted. For the reconciler.
    pub async fn ended_attachments(&self) -> Result<Vec<AttachmentRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM firewall_attachments a JOIN instances i ON i.id = a.instance_id \
             JOIN firewalls f ON f.id = a.firewall_id \
             WHERE i.status = 'DELETED' OR (f.status = 'DELETED' AND a.status = 'ERROR') \
             ORDER BY a.firewall_id, a.instance_id",
            prefixed(ATTACHMENT_COLUMNS, "a")
        ));
        let rows = sqlx::query(sql).fetch_all(self.pool()).await?;
        rows.iter().map(|r| attachment_from(r, 0)).collect()
    }
}

/// The firewall rules in force on the instances whose ids `ids` names as placeholders, as (instance id,
/// firewall id, rule, ...): those of attachments not being detached, of firewalls not deleted; in each
/// instance's order.
pub(crate) fn rules_of_instances(ids: &str) -> RowSet {
    RowSet {
        // Named as the inner query's columns, which the order refers to.
        columns: format!("instance_id, firewall_id, {RULE_COLUMNS}, attached_at, position"),
        inner: format!(
            "SELECT a.instance_id, a.firewall_id, {}, a.created_at AS attached_at, r.position \
             FROM firewall_attachments a \
             JOIN firewalls f ON f.id = a.firewall_id JOIN firewall_rules r ON r.firewall_id = a.firewall_id \
             WHERE a.instance_id IN ({ids}) AND a.status <> 'DETACHING' AND f.status <> 'DELETED'",
            prefixed(RULE_COLUMNS, "r"),
        ),
        order: "instance_id, attached_at, firewall_id, position, id",
    }
}

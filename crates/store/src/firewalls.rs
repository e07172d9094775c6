//! Firewalls, their rules and their attachments to instances. Firewall state changes are conditional on
//! the generation the caller read, and bump it; so are attachment changes, on the attachment's own.

use crate::instances::{RULE_COLUMNS, RuleRow, rule_from};
use crate::sql::{
    Columns, GenerationUpdate, Listing, RowSet, column_count, insert_new_sql, insert_sql,
    placeholders, prefixed,
};
use crate::{Backend, Bind, Db, Result, Row, Store, Tx, binds};

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

fn from_row(row: &Row) -> Result<FirewallRow> {
    Ok(FirewallRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        name: row.text(2)?,
        description: row.text(3)?,
        tier: row.text(4)?,
        region: row.text(5)?,
        status: row.text(6)?,
        status_reason: row.opt_text(7)?,
        generation: row.int(8)?,
        created_at: row.int(9)?,
        updated_at: row.int(10)?,
        deleted_at: row.opt_int(11)?,
    })
}

/// Inserts a firewall; false, writing nothing, when its id is taken (six random characters: the caller
/// draws another). A name the account already uses (among firewalls not deleted) is still
/// `StoreError::Unique`.
pub async fn insert(tx: &mut Tx, f: &FirewallRow) -> Result<bool> {
    let sql = insert_new_sql("firewalls", COLUMNS);
    let inserted = tx
        .execute(
            &sql,
            &binds![
                &f.id,
                &f.account_id,
                &f.name,
                &f.description,
                &f.tier,
                &f.region,
                &f.status,
                &f.status_reason,
                f.generation,
                f.created_at,
                f.updated_at,
                f.deleted_at
            ],
        )
        .await?;
    Ok(inserted == 1)
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
    tx: &mut Tx,
    id: &str,
    generation: i64,
    change: &FirewallChange,
    now: i64,
) -> Result<bool> {
    let mut update = GenerationUpdate::new("firewalls", id, generation, now);
    if let Some(status) = &change.status {
        update.set("status", status);
    }
    if let Some(reason) = &change.status_reason {
        update.set("status_reason", reason);
    }
    if let Some(at) = change.deleted_at {
        update.set("deleted_at", at);
    }
    update.apply(tx).await
}

/// Bumps the generation whatever it is, and returns the new one: workers recording an attachment's
/// outcome as an event of its firewall (the event's sequence). `None` for an unknown firewall.
pub async fn bump(tx: &mut Tx, id: &str, now: i64) -> Result<Option<i64>> {
    let row = tx
        .fetch_optional(
            "UPDATE firewalls SET generation = generation + 1, updated_at = $2 WHERE id = $1 RETURNING generation",
            &binds![id, now],
        )
        .await?;
    row.map(|r| r.int(0)).transpose()
}

/// Reads a firewall inside a transaction.
pub async fn get(tx: &mut Tx, id: &str) -> Result<Option<FirewallRow>> {
    let sql = format!("SELECT {COLUMNS} FROM firewalls WHERE id = $1");
    let row = tx.fetch_optional(&sql, &binds![id]).await?;
    row.as_ref().map(from_row).transpose()
}

/// Serialises the writers that count an account's resources before adding one (the firewall limit):
/// PostgreSQL locks the account's row until the transaction ends, in the mode that leaves rows pointing
/// at the account free to be written meanwhile; SQLite's write transactions are serial already.
pub async fn lock_account(tx: &mut Tx, account_id: &str) -> Result<()> {
    if tx.backend() == Backend::Postgres {
        tx.fetch_optional(
            "SELECT id FROM accounts WHERE id = $1 FOR NO KEY UPDATE",
            &binds![account_id],
        )
        .await?;
    }
    Ok(())
}

/// Firewalls of the account not deleted, inside a transaction.
pub async fn count_live(tx: &mut Tx, account_id: &str) -> Result<u64> {
    let n = tx
        .fetch_one(
            "SELECT COUNT(*) FROM firewalls WHERE account_id = $1 AND status <> 'DELETED'",
            &binds![account_id],
        )
        .await?
        .int(0)?;
    Ok(n as u64)
}

/// Adds a rule to a firewall, at `position` (see [`next_rule_position`]). False, with nothing written,
/// when the rule's id is taken (ids are random: the caller draws another).
pub async fn insert_rule(
    tx: &mut Tx,
    firewall_id: &str,
    rule: &RuleRow,
    position: i64,
    now: i64,
) -> Result<bool> {
    let inserted = tx.execute(
        "INSERT INTO firewall_rules (id, firewall_id, direction, ethertype, protocol, port_range_min, \
         port_range_max, remote_ip_prefix, position, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (id) DO NOTHING",
        &binds![
            &rule.id,
            firewall_id,
            &rule.direction,
            &rule.ethertype,
            &rule.protocol,
            rule.port_range_min,
            rule.port_range_max,
            &rule.remote_ip_prefix,
            position,
            now
        ],
    )
    .await?;
    Ok(inserted == 1)
}

/// The position after the firewall's last rule.
pub async fn next_rule_position(tx: &mut Tx, firewall_id: &str) -> Result<i64> {
    let last = tx
        .fetch_one(
            "SELECT MAX(position) FROM firewall_rules WHERE firewall_id = $1",
            &binds![firewall_id],
        )
        .await?
        .opt_int(0)?;
    Ok(last.map_or(0, |p| p + 1))
}

/// False when the firewall has no rule with that id.
pub async fn delete_rule(tx: &mut Tx, firewall_id: &str, rule_id: &str) -> Result<bool> {
    let done = tx
        .execute(
            "DELETE FROM firewall_rules WHERE id = $1 AND firewall_id = $2",
            &binds![rule_id, firewall_id],
        )
        .await?;
    Ok(done == 1)
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

fn attachment_from(row: &Row, first: usize) -> Result<AttachmentRow> {
    Ok(AttachmentRow {
        firewall_id: row.text(first)?,
        instance_id: row.text(first + 1)?,
        account_id: row.text(first + 2)?,
        status: row.text(first + 3)?,
        status_reason: row.opt_text(first + 4)?,
        generation: row.int(first + 5)?,
        created_at: row.int(first + 6)?,
        updated_at: row.int(first + 7)?,
    })
}

pub async fn insert_attachment(tx: &mut Tx, a: &AttachmentRow) -> Result<()> {
    let sql = insert_sql("firewall_attachments", ATTACHMENT_COLUMNS);
    tx.execute(
        &sql,
        &binds![
            &a.firewall_id,
            &a.instance_id,
            &a.account_id,
            &a.status,
            &a.status_reason,
            a.generation,
            a.created_at,
            a.updated_at
        ],
    )
    .await?;
    Ok(())
}

/// Sets an attachment's status and reason if it is still at `generation`, bumping it.
pub async fn update_attachment(
    tx: &mut Tx,
    a: &AttachmentRow,
    status: &str,
    reason: Option<&str>,
    now: i64,
) -> Result<bool> {
    let done = tx.execute("UPDATE firewall_attachments SET status = $3, status_reason = $4, generation = generation + 1, \
         updated_at = $5 WHERE firewall_id = $1 AND instance_id = $2 AND generation = $6",
            &binds![&a.firewall_id, &a.instance_id, status, reason, now, a.generation]).await?;
    Ok(done == 1)
}

/// Ends an attachment if it is still at the generation it was read at.
pub async fn delete_attachment(tx: &mut Tx, a: &AttachmentRow) -> Result<bool> {
    let done = tx.execute("DELETE FROM firewall_attachments WHERE firewall_id = $1 AND instance_id = $2 AND generation = $3",
            &binds![&a.firewall_id, &a.instance_id, a.generation]).await?;
    Ok(done == 1)
}

/// Every attachment of an instance (firewalls deleted or not), oldest first, inside a transaction.
pub async fn attachments_of_instance(tx: &mut Tx, instance_id: &str) -> Result<Vec<AttachmentRow>> {
    let sql = format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM firewall_attachments WHERE instance_id = $1 \
         ORDER BY created_at, firewall_id"
    );
    let rows = tx.fetch_all(&sql, &binds![instance_id]).await?;
    rows.iter().map(|r| attachment_from(r, 0)).collect()
}

/// Every attachment of a firewall, oldest first, inside a transaction.
pub async fn attachments_of_firewall(tx: &mut Tx, firewall_id: &str) -> Result<Vec<AttachmentRow>> {
    let sql = format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM firewall_attachments WHERE firewall_id = $1 \
         ORDER BY created_at, instance_id"
    );
    let rows = tx.fetch_all(&sql, &binds![firewall_id]).await?;
    rows.iter().map(|r| attachment_from(r, 0)).collect()
}

/// The rules an instance should have programmed, as (source, rule): its own (source `instance`), then
/// those of every firewall attached to it (source the firewall's id) except the ones being detached and
/// deleted firewalls. In a stable order: own rules oldest first, then by attachment and rule age.
pub async fn effective_rules(
    db: &mut impl Db,
    instance_id: &str,
) -> Result<Vec<(String, RuleRow)>> {
    let own = format!(
        "SELECT {RULE_COLUMNS} FROM instance_security_rules WHERE instance_id = $1 ORDER BY created_at, id"
    );
    let mut rules = Vec::new();
    for row in db.fetch_all(&own, &binds![instance_id]).await? {
        rules.push(("instance".to_string(), rule_from(&row, 0)?));
    }
    let attached = format!(
        "SELECT a.firewall_id, {} FROM firewall_attachments a \
         JOIN firewalls f ON f.id = a.firewall_id JOIN firewall_rules r ON r.firewall_id = a.firewall_id \
         WHERE a.instance_id = $1 AND a.status <> 'DETACHING' AND f.status <> 'DELETED' \
         ORDER BY a.created_at, a.firewall_id, r.position, r.id",
        prefixed(RULE_COLUMNS, "r")
    );
    for row in db.fetch_all(&attached, &binds![instance_id]).await? {
        rules.push((row.text(0)?, rule_from(&row, 1)?));
    }
    Ok(rules)
}

/// Whether an instance has rules of its own or firewalls attached: whether a new machine for it needs
/// rules programmed.
pub async fn has_rules_or_attachments(tx: &mut Tx, instance_id: &str) -> Result<bool> {
    let n = tx
        .fetch_one(
            "SELECT (SELECT COUNT(*) FROM instance_security_rules WHERE instance_id = $1) \
             + (SELECT COUNT(*) FROM firewall_attachments WHERE instance_id = $1)",
            &binds![instance_id],
        )
        .await?
        .int(0)?;
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
    /// Only those carrying every one of these labels.
    pub labels: Vec<crate::labels::LabelSelector>,
}

impl Store {
    /// A firewall of the account (another account's is `None`, like a missing one).
    pub async fn firewall(&self, account_id: &str, id: &str) -> Result<Option<FirewallRow>> {
        let sql = format!("SELECT {COLUMNS} FROM firewalls WHERE id = $1 AND account_id = $2");
        let row = self.fetch_optional(&sql, &binds![id, account_id]).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Any firewall, for workers.
    pub async fn firewall_by_id(&self, id: &str) -> Result<Option<FirewallRow>> {
        let sql = format!("SELECT {COLUMNS} FROM firewalls WHERE id = $1");
        let row = self.fetch_optional(&sql, &binds![id]).await?;
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
        let mut binds: Vec<Bind> = vec![account_id.into()];
        if let Some(region) = &filter.region {
            binds.push(region.into());
            condition.push_str(" AND region = $2");
        }
        for label in crate::labels::conditions(&filter.labels, "firewall", "id", "$1", &mut binds) {
            condition.push_str(" AND ");
            condition.push_str(&label);
        }
        let listing = Listing {
            table: "firewalls",
            columns: COLUMNS,
            condition: &condition,
            binds: &binds,
            order: "created_at DESC, id DESC",
            source: None,
        };
        let (rows, total) = listing.page(self, offset, limit).await?;
        Ok((rows.iter().map(from_row).collect::<Result<_>>()?, total))
    }

    /// A firewall's rules, oldest first.
    pub async fn firewall_rules(&self, firewall_id: &str) -> Result<Vec<RuleRow>> {
        let sql = format!(
            "SELECT {RULE_COLUMNS} FROM firewall_rules WHERE firewall_id = $1 ORDER BY position, id"
        );
        let rows = self.fetch_all(&sql, &binds![firewall_id]).await?;
        rows.iter().map(|r| rule_from(r, 0)).collect()
    }

    /// The rules of several firewalls in one query, as (firewall id, rule), each firewall's oldest first.
    pub async fn rules_of_firewalls(&self, ids: &[String]) -> Result<Vec<(String, RuleRow)>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let sql = format!(
            "SELECT firewall_id, {RULE_COLUMNS} FROM firewall_rules WHERE firewall_id IN ({}) \
             ORDER BY firewall_id, position, id",
            placeholders(1, ids.len())
        );
        let binds: Vec<Bind> = ids.iter().map(Bind::from).collect();
        let rows = self.fetch_all(&sql, &binds).await?;
        rows.iter()
            .map(|r| Ok((r.text(0)?, rule_from(r, 1)?)))
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
        let sql = template.replace("{}", &placeholders);
        let binds: Vec<Bind> = ids.iter().map(Bind::from).collect();
        let rows = self.fetch_all(&sql, &binds).await?;
        rows.iter().map(|r| Ok((r.text(0)?, r.int(1)?))).collect()
    }

    /// The instances not deleted a firewall is attached to (or being attached to or detached from), with
    /// their name, status and region, oldest attachment first.
    pub async fn firewall_instances(&self, firewall_id: &str) -> Result<Vec<AttachedInstance>> {
        let sql = format!(
            "SELECT {}, i.name, i.status, i.region FROM firewall_attachments a JOIN instances i ON i.id = a.instance_id \
             WHERE a.firewall_id = $1 AND i.status <> 'DELETED' ORDER BY a.created_at, a.instance_id",
            prefixed(ATTACHMENT_COLUMNS, "a")
        );
        let rows = self.fetch_all(&sql, &binds![firewall_id]).await?;
        rows.iter()
            .map(|r| {
                Ok(AttachedInstance {
                    attachment: attachment_from(r, 0)?,
                    instance_name: r.text(8)?,
                    instance_status: r.text(9)?,
                    instance_region: r.text(10)?,
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
        let sql = format!(
            "SELECT {}, {} FROM firewall_attachments a JOIN firewalls f ON f.id = a.firewall_id \
             WHERE a.instance_id = $1 AND f.status <> 'DELETED' ORDER BY a.created_at, a.firewall_id",
            prefixed(COLUMNS, "f"),
            prefixed(ATTACHMENT_COLUMNS, "a")
        );
        let rows = self.fetch_all(&sql, &binds![instance_id]).await?;
        let width = column_count(COLUMNS);
        rows.iter()
            .map(|r| Ok((from_row(r)?, attachment_from(r, width)?)))
            .collect()
    }

    /// Attachments that have ended on their own: of instances that are deleted, and failed ones of
    /// firewalls that are deleted. For the reconciler.
    pub async fn ended_attachments(&self) -> Result<Vec<AttachmentRow>> {
        let sql = format!(
            "SELECT {} FROM firewall_attachments a JOIN instances i ON i.id = a.instance_id \
             JOIN firewalls f ON f.id = a.firewall_id \
             WHERE i.status = 'DELETED' OR (f.status = 'DELETED' AND a.status = 'ERROR') \
             ORDER BY a.firewall_id, a.instance_id",
            prefixed(ATTACHMENT_COLUMNS, "a")
        );
        let rows = self.fetch_all(&sql, &[]).await?;
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

//! Labels of instances, volumes, snapshots, images and firewalls: a row per `key=value`, and the list
//! condition that selects resources by them through the `labels_lookup` index.

use std::collections::{BTreeMap, HashMap};

use crate::sql::{Columns, RowSet, placeholders};
use crate::{Bind, Db, Result, Store, binds};

/// A resource's labels, in key order.
pub type Labels = BTreeMap<String, String>;

/// One `?label=` of a list: the key is present, or has this value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    pub key: String,
    pub value: Option<String>,
}

/// Replaces the labels of a resource with `labels`, in the caller's transaction; the resource, a row of
/// `table`, is already written (its `created_at` is copied into each label).
pub async fn replace(
    db: &mut impl Db,
    resource_type: &str,
    table: &'static str,
    resource_id: &str,
    account_id: &str,
    labels: &Labels,
) -> Result<()> {
    db.execute(
        "DELETE FROM labels WHERE resource_type = $1 AND resource_id = $2",
        &binds![resource_type, resource_id],
    )
    .await?;
    for (key, value) in labels {
        let sql = format!(
            "INSERT INTO labels (resource_type, resource_id, account_id, label_key, label_value, \
             resource_created_at) VALUES ($1, $2, $3, $4, $5, (SELECT created_at FROM {table} WHERE id = $2))"
        );
        db.execute(
            &sql,
            &binds![resource_type, resource_id, account_id, key, value],
        )
        .await?;
    }
    Ok(())
}

/// The conditions on `id_column` that keep the resources carrying every selector (ANDed), each a walk
/// of `labels_lookup` from the account (bound at `account`, a placeholder such as `$1`); their values are
/// pushed onto `binds`.
pub fn conditions<'a>(
    selectors: impl IntoIterator<Item = &'a LabelSelector>,
    resource_type: &'static str,
    id_column: &str,
    account: &str,
    binds: &mut Vec<Bind<'a>>,
) -> Vec<String> {
    selectors
        .into_iter()
        .map(|selector| {
            binds.push(selector.key.as_str().into());
            let mut condition = format!(
                "{id_column} IN (SELECT resource_id FROM labels WHERE account_id = {account} \
                 AND resource_type = '{resource_type}' AND label_key = ${}",
                binds.len()
            );
            if let Some(value) = &selector.value {
                binds.push(value.as_str().into());
                condition.push_str(&format!(" AND label_value = ${}", binds.len()));
            }
            condition.push(')');
            condition
        })
        .collect()
}

/// The labels of the resources `ids` (placeholders or a subquery) names, to be read with other sets.
pub(crate) fn of_resources(resource_type: &'static str, ids: &str) -> RowSet {
    RowSet {
        columns: "resource_id, label_key, label_value".into(),
        inner: format!(
            "SELECT resource_id, label_key, label_value FROM labels \
             WHERE resource_type = '{resource_type}' AND resource_id IN ({ids})"
        ),
        order: "resource_id, label_key",
    }
}

/// Gathers rows of (resource id, key, value) into each resource's labels.
pub(crate) fn gather<R: Columns>(rows: &[R]) -> Result<HashMap<String, Labels>> {
    let mut labels: HashMap<String, Labels> = HashMap::new();
    for row in rows {
        labels
            .entry(row.text(0)?)
            .or_default()
            .insert(row.text(1)?, row.text(2)?);
    }
    Ok(labels)
}

impl Store {
    /// The labels of several resources of one type, by id (a resource without labels is absent).
    pub async fn labels_of(
        &self,
        resource_type: &'static str,
        ids: &[String],
    ) -> Result<HashMap<String, Labels>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut binds: Vec<Bind> = vec![resource_type.into()];
        binds.extend(ids.iter().map(Bind::from));
        let sql = format!(
            "SELECT resource_id, label_key, label_value FROM labels \
             WHERE resource_type = $1 AND resource_id IN ({}) ORDER BY resource_id, label_key",
            placeholders(2, ids.len())
        );
        gather(&self.fetch_all(&sql, &binds).await?)
    }
}

/// Locks the account's live resource `id` of `table` for a change of its labels, in the caller's
/// transaction (an update that changes nothing still holds the row on PostgreSQL, so two changes of one
/// resource's labels take turns); false when the account has no such resource.
pub async fn lock_resource(
    db: &mut impl Db,
    table: &'static str,
    id: &str,
    account_id: &str,
) -> Result<bool> {
    let sql = format!(
        "UPDATE {table} SET updated_at = updated_at \
         WHERE id = $1 AND account_id = $2 AND lower(status) <> 'deleted'"
    );
    Ok(db.execute(&sql, &binds![id, account_id]).await? == 1)
}

/// The labels of one resource, in the caller's transaction.
pub async fn of_resource(
    db: &mut impl Db,
    resource_type: &str,
    resource_id: &str,
) -> Result<Labels> {
    let rows = db
        .fetch_all(
            "SELECT resource_id, label_key, label_value FROM labels \
             WHERE resource_type = $1 AND resource_id = $2 ORDER BY label_key",
            &binds![resource_type, resource_id],
        )
        .await?;
    Ok(gather(&rows)?.remove(resource_id).unwrap_or_default())
}

/// A list filtered by labels, read from the labels first: `labels CROSS JOIN {table}` (SQLite keeps that
/// order; PostgreSQL plans its own) with one selector as the join's condition and the others as
/// [`conditions`]. The list then reads the labelled rows only, a walk of `labels_lookup`, instead of
/// walking every row of the account and probing its labels.
pub struct LabelDriven {
    /// The list's `FROM`.
    pub source: String,
    /// The listed resource's id in `source`.
    pub id: String,
    pub conditions: Vec<String>,
    /// The list's `created_at DESC, id DESC` in the labels' own columns; read off the index when a
    /// `key=value` selector drives, so the page is the first rows of the walk, with no sort of every match.
    pub newest_first: &'static str,
}

/// How a [`LabelDriven`] list reads.
#[derive(Clone, Copy)]
pub struct Drive {
    /// Only labels of resources not deleted (`live`).
    pub live_only: bool,
    /// From the labels alone, without the resource's table: the list filters on nothing else, and
    /// `live_only` stands for the resource's own status and account.
    pub alone: bool,
}

/// The [`LabelDriven`] list of `selectors`; `None` without selectors.
pub fn driving<'a>(
    selectors: &'a [LabelSelector],
    resource_type: &'static str,
    table: &'static str,
    account: &str,
    drive: Drive,
    binds: &mut Vec<Bind<'a>>,
) -> Option<LabelDriven> {
    // A `key=value` selector drives where there is one: its walk is in the list's order.
    let driver = selectors
        .iter()
        .position(|s| s.value.is_some())
        .unwrap_or(0);
    let first = selectors.get(driver)?;
    let rest = selectors
        .iter()
        .enumerate()
        .filter(move |(i, _)| *i != driver)
        .map(|(_, s)| s);
    binds.push(first.key.as_str().into());
    let mut walk = format!(
        "labels.account_id = {account} AND labels.resource_type = '{resource_type}' \
         AND labels.label_key = ${}",
        binds.len()
    );
    if let Some(value) = &first.value {
        binds.push(value.as_str().into());
        walk.push_str(&format!(" AND labels.label_value = ${}", binds.len()));
    }
    if drive.live_only {
        walk.push_str(" AND labels.live = 1");
    }
    let (source, id) = if drive.alone {
        ("labels".to_string(), "labels.resource_id".to_string())
    } else {
        walk.push_str(&format!(" AND labels.resource_id = {table}.id"));
        (format!("labels CROSS JOIN {table}"), format!("{table}.id"))
    };
    let mut all = vec![walk];
    all.extend(conditions(rest, resource_type, &id, account, binds));
    Some(LabelDriven {
        source,
        id,
        conditions: all,
        newest_first: "labels.resource_created_at DESC, labels.resource_id DESC",
    })
}

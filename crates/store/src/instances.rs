//! Instances. Every state change is conditional on the generation the caller read, and bumps it.

use std::sync::LazyLock;

use crate::sql::{
    Columns, GenerationUpdate, JsonRow, Listing, RowSet, RowSets, Source, insert_new_sql,
    placeholders,
};
use crate::volumes::VolumeRow;
use crate::{Bind, Db, Result, Store, Tx, binds};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub vm_name: String,
    pub tier: String,
    pub region: String,
    pub gpu_model: String,
    pub gpu_count: i64,
    pub vcpus: i64,
    pub ram_gb: i64,
    pub storage_gb: i64,
    pub os_volume_type: String,
    pub boot_source: String,
    pub operating_system: Option<String>,
    pub boot_volume_id: Option<String>,
    pub source_snapshot_id: Option<String>,
    pub ssh_key_id: Option<String>,
    pub ssh_public_key: Option<String>,
    pub script_id: Option<String>,
    pub startup_script: Option<String>,
    pub cloud_init: Option<String>,
    pub public_ip: bool,
    pub ip_address: Option<String>,
    pub status: String,
    pub status_reason: Option<String>,
    pub host: Option<String>,
    /// The host port forwarded to the guest's SSH port, when the driver forwards one (then `ip_address` is
    /// the host that forwards it).
    pub ssh_port: Option<i64>,
    /// GPUs this instance holds from its region's capacity right now.
    pub gpus_allocated: i64,
    pub currency: String,
    pub generation: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

const COLUMNS: &str = "id, account_id, name, vm_name, tier, region, gpu_model, gpu_count, vcpus, ram_gb, storage_gb, \
     os_volume_type, boot_source, operating_system, boot_volume_id, source_snapshot_id, ssh_key_id, ssh_public_key, \
     script_id, startup_script, cloud_init, public_ip, ip_address, status, status_reason, host, gpus_allocated, \
     currency, generation, created_at, updated_at, deleted_at, ssh_port";

/// An instance from a row of `COLUMNS`, in that order.
fn from_row(row: &impl Columns) -> Result<InstanceRow> {
    Ok(InstanceRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        name: row.text(2)?,
        vm_name: row.text(3)?,
        tier: row.text(4)?,
        region: row.text(5)?,
        gpu_model: row.text(6)?,
        gpu_count: row.int(7)?,
        vcpus: row.int(8)?,
        ram_gb: row.int(9)?,
        storage_gb: row.int(10)?,
        os_volume_type: row.text(11)?,
        boot_source: row.text(12)?,
        operating_system: row.opt_text(13)?,
        boot_volume_id: row.opt_text(14)?,
        source_snapshot_id: row.opt_text(15)?,
        ssh_key_id: row.opt_text(16)?,
        ssh_public_key: row.opt_text(17)?,
        script_id: row.opt_text(18)?,
        startup_script: row.opt_text(19)?,
        cloud_init: row.opt_text(20)?,
        public_ip: row.flag(21)?,
        ip_address: row.opt_text(22)?,
        status: row.text(23)?,
        status_reason: row.opt_text(24)?,
        host: row.opt_text(25)?,
        gpus_allocated: row.int(26)?,
        currency: row.text(27)?,
        generation: row.int(28)?,
        created_at: row.int(29)?,
        updated_at: row.int(30)?,
        deleted_at: row.opt_int(31)?,
        ssh_port: row.opt_int(32)?,
    })
}

/// Writes a new instance; false, writing nothing, when its id is taken. Ids have six random characters,
/// so with a million instances about one new id in two thousand is; the caller draws another. A name the
/// account already uses is still a [`crate::StoreError::Unique`].
pub async fn insert(db: &mut impl Db, i: &InstanceRow) -> Result<bool> {
    let sql = insert_new_sql("instances", COLUMNS);
    let inserted = db
        .execute(
            &sql,
            &binds![
                &i.id,
                &i.account_id,
                &i.name,
                &i.vm_name,
                &i.tier,
                &i.region,
                &i.gpu_model,
                i.gpu_count,
                i.vcpus,
                i.ram_gb,
                i.storage_gb,
                &i.os_volume_type,
                &i.boot_source,
                &i.operating_system,
                &i.boot_volume_id,
                &i.source_snapshot_id,
                &i.ssh_key_id,
                &i.ssh_public_key,
                &i.script_id,
                &i.startup_script,
                &i.cloud_init,
                i.public_ip,
                &i.ip_address,
                &i.status,
                &i.status_reason,
                &i.host,
                i.gpus_allocated,
                &i.currency,
                i.generation,
                i.created_at,
                i.updated_at,
                i.deleted_at,
                i.ssh_port,
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// Fields a state change sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct InstanceChange {
    pub status: Option<String>,
    pub status_reason: Option<Option<String>>,
    pub host: Option<Option<String>>,
    pub ip_address: Option<Option<String>>,
    pub ssh_port: Option<Option<i64>>,
    pub public_ip: Option<bool>,
    pub gpus_allocated: Option<i64>,
    pub deleted_at: Option<i64>,
}

/// Applies `change` if the instance is still at `generation`, bumping it; false when someone else changed
/// the instance first (the caller re-reads and decides again).
pub async fn update(
    tx: &mut Tx,
    id: &str,
    generation: i64,
    change: &InstanceChange,
    now: i64,
) -> Result<bool> {
    let mut update = GenerationUpdate::new("instances", id, generation, now);
    if let Some(status) = &change.status {
        update.set("status", status);
    }
    if let Some(reason) = &change.status_reason {
        update.set("status_reason", reason);
    }
    if let Some(host) = &change.host {
        update.set("host", host);
    }
    if let Some(ip) = &change.ip_address {
        update.set("ip_address", ip);
    }
    if let Some(port) = &change.ssh_port {
        update.set("ssh_port", port);
    }
    if let Some(public_ip) = change.public_ip {
        update.set("public_ip", public_ip);
    }
    if let Some(gpus) = change.gpus_allocated {
        update.set("gpus_allocated", gpus);
    }
    if let Some(at) = change.deleted_at {
        update.set("deleted_at", at);
    }
    update.apply(tx).await
}

/// Makes the OS disk of instance `id` `size_gb` large when the instance boots from volume `volume_id`
/// (that volume grew): the disk is the volume. Not a state change, so the generation stays; false when
/// the instance does not boot from that volume.
pub async fn set_boot_volume_size(
    tx: &mut Tx,
    id: &str,
    volume_id: &str,
    size_gb: i64,
    now: i64,
) -> Result<bool> {
    let changed = tx
        .execute(
            "UPDATE instances SET storage_gb = $1, updated_at = $2 WHERE id = $3 AND boot_volume_id = $4",
            &binds![size_gb, now, id, volume_id],
        )
        .await?;
    Ok(changed == 1)
}

/// Reads an instance inside a transaction.
pub async fn get(tx: &mut Tx, id: &str) -> Result<Option<InstanceRow>> {
    let sql = format!("SELECT {COLUMNS} FROM instances WHERE id = $1");
    let row = tx.fetch_optional(&sql, &binds![id]).await?;
    row.as_ref().map(from_row).transpose()
}

#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    pub status: Option<String>,
    pub region: Option<String>,
    pub gpu_model: Option<String>,
    pub name_contains: Option<String>,
    /// Only instances carrying every one of these labels.
    pub labels: Vec<crate::labels::LabelSelector>,
    /// Hide DELETED instances unless the status filter asks for them.
    pub include_deleted: bool,
}

impl InstanceFilter {
    /// Whether the filter keeps every instance not deleted: the list whose total the triggers of
    /// `account_instance_counts` keep.
    fn is_all_live(&self) -> bool {
        self.status.is_none()
            && self.region.is_none()
            && self.gpu_model.is_none()
            && self.name_contains.is_none()
            && self.labels.is_empty()
            && !self.include_deleted
    }
}

impl Store {
    /// An instance of the account (another account's is `None`, like a missing one).
    pub async fn instance(&self, account_id: &str, id: &str) -> Result<Option<InstanceRow>> {
        // The API's hottest read: its SQL is written once.
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!("SELECT {COLUMNS} FROM instances WHERE id = $1 AND account_id = $2")
        });
        self.fetch_optional(&SQL, &binds![id, account_id])
            .await?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    /// Any instance, for workers and reconcilers.
    pub async fn instance_by_id(&self, id: &str) -> Result<Option<InstanceRow>> {
        let sql = format!("SELECT {COLUMNS} FROM instances WHERE id = $1");
        let row = self.fetch_optional(&sql, &binds![id]).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Those of `ids` whose instances are live (neither deleted nor failed): what still holds its GPUs.
    pub async fn live_instance_ids(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashSet<String>> {
        let json = serde_json::to_string(ids).expect("ids serialize");
        let listed = match self.backend() {
            crate::Backend::Sqlite => "SELECT value FROM json_each($1)",
            crate::Backend::Postgres => "SELECT jsonb_array_elements_text($1::JSONB)",
        };
        let rows = self
            .fetch_all(
                &format!(
                    "SELECT id FROM instances WHERE id IN ({listed}) \
                     AND status NOT IN ('DELETED', 'ERROR')"
                ),
                &binds![json],
            )
            .await?;
        rows.iter().map(|row| row.text(0)).collect()
    }

    /// A page of the account's instances, newest first, and how many match.
    pub async fn instances(
        &self,
        account_id: &str,
        filter: &InstanceFilter,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<InstanceRow>, u64)> {
        // Qualified: a list filtered by labels reads from a join with `labels`, which has the column too.
        let mut conditions = vec!["instances.account_id = $1".to_string()];
        if !filter.include_deleted {
            // Spelled as in the partial index `instances_account_live`, so both databases use it.
            conditions.push("status <> 'DELETED'".into());
        }
        let mut binds: Vec<Bind> = vec![account_id.into()];
        let mut push = |condition: &str, value| {
            binds.push(value);
            conditions.push(condition.replace('?', &format!("${}", binds.len())));
        };
        if let Some(status) = &filter.status {
            push("status = ?", status.into());
        }
        if let Some(region) = &filter.region {
            push("region = ?", region.into());
        }
        if let Some(model) = &filter.gpu_model {
            push("gpu_model = ?", model.into());
        }
        if let Some(name) = &filter.name_contains {
            let pattern = format!(
                "%{}%",
                name.to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            push("lower(name) LIKE ? ESCAPE '\\'", pattern.into());
        }
        // Live instances filtered by labels alone: the labels' own `live` says what the instance's status
        // would, so the list is a walk of `labels_lookup` that never reads an instance it does not show.
        let labels_alone = binds.len() == 1 && !filter.include_deleted;
        let driven = crate::labels::driving(
            &filter.labels,
            "instance",
            "instances",
            "$1",
            crate::labels::Drive {
                live_only: !filter.include_deleted,
                alone: labels_alone,
            },
            &mut binds,
        );
        let source = driven.map(|driven| {
            if labels_alone {
                conditions.clear();
            }
            conditions.extend(driven.conditions);
            (driven.source, driven.id, driven.newest_first)
        });
        let condition = conditions.join(" AND ");
        let listing = Listing {
            table: "instances",
            columns: COLUMNS,
            condition: &condition,
            binds: &binds,
            order: "created_at DESC, id DESC",
            source: source.as_ref().map(|(from, id, order)| Source {
                from,
                id,
                order: Some(order),
            }),
        };
        let (rows, total) = if filter.is_all_live() {
            let rows = listing.rows(self, offset, limit).await?;
            (rows, self.live_instance_count(account_id).await?)
        } else {
            listing.page(self, offset, limit).await?
        };
        Ok((rows.iter().map(from_row).collect::<Result<_>>()?, total))
    }

    /// A page of the account's instances as [`Store::instances`] reads it, with what their views show
    /// besides the rows. On PostgreSQL the list without filters, the usual one, is one statement (see
    /// [`live_page_sql`]) instead of three round trips; SQLite's statements cost no round trip, and there
    /// the one statement measured slower than the three.
    pub async fn instance_page(
        &self,
        account_id: &str,
        filter: &InstanceFilter,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<InstanceRow>, u64, InstanceChildren)> {
        if !filter.is_all_live() || self.backend() != crate::Backend::Postgres {
            let (rows, total) = self.instances(account_id, filter, offset, limit).await?;
            let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
            let children = self.instance_children(&ids).await?;
            return Ok((rows, total, children));
        }
        static CHILDREN: LazyLock<RowSets> = LazyLock::new(|| {
            RowSets::new(
                crate::Backend::Postgres,
                &children_sets("SELECT id FROM listed"),
            )
        });
        let children = &*CHILDREN;
        let sql = live_page_sql(limit, children);
        let found = self
            .fetch_all(&sql, &binds![account_id, offset as i64])
            .await?;
        let Some(first) = found.first() else {
            // Past the last page (or no instances): the total still answers.
            let total = self.live_instance_count(account_id).await?;
            return Ok((Vec::new(), total, InstanceChildren::default()));
        };
        let total = first.int(LIVE_PAGE_TOTAL)? as u64;
        let sets: [Vec<JsonRow>; 5] = children
            .read(&first.text(LIVE_PAGE_TOTAL + 1)?)?
            .try_into()
            .map_err(|_| crate::StoreError::Unexpected("expected five row sets".into()))?;
        let rows = found.iter().map(from_row).collect::<Result<_>>()?;
        Ok((rows, total, children_from(sets)?))
    }

    /// How many instances not deleted the account has.
    pub async fn live_instance_count(&self, account_id: &str) -> Result<u64> {
        let row = self
            .fetch_optional(
                "SELECT live FROM account_instance_counts WHERE account_id = $1",
                &binds![account_id],
            )
            .await?;
        Ok(row.map(|r| r.int(0)).transpose()?.unwrap_or(0) as u64)
    }

    /// One account's instances in one of `statuses`, oldest first (through the account's index of live
    /// instances, whatever the size of the table).
    pub async fn account_instances_with_status(
        &self,
        account_id: &str,
        statuses: &[&str],
    ) -> Result<Vec<InstanceRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM instances WHERE account_id = $1 AND status <> 'DELETED' \
             AND status IN ({}) ORDER BY created_at, id",
            placeholders(2, statuses.len())
        );
        let mut binds = vec![Bind::from(account_id)];
        binds.extend(statuses.iter().map(|s| Bind::from(*s)));
        let rows = self.fetch_all(&sql, &binds).await?;
        rows.iter().map(from_row).collect()
    }

    /// GPUs held by live instances and by deploy holds per region and model: what capacity allocations
    /// must equal.
    pub async fn gpus_held(&self) -> Result<Vec<(String, String, i64)>> {
        let rows = self
            .fetch_all(
                "SELECT region, gpu_model, CAST(SUM(n) AS BIGINT) FROM ( \
                 SELECT region, gpu_model, gpus_allocated AS n FROM instances WHERE gpus_allocated > 0 \
                 UNION ALL SELECT region, gpu_model, gpu_count AS n FROM deploy_holds WHERE state = 'held' \
                 ) held GROUP BY region, gpu_model ORDER BY region, gpu_model",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?, r.int(2)?)))
            .collect()
    }
}

/// What the compute driver is told of an instance: where its machine is and in which state. Sweeps over
/// every instance read these five columns, not the whole row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRow {
    pub id: String,
    pub status: String,
    pub region: String,
    pub gpu_count: i64,
    pub host: Option<String>,
}

impl Store {
    /// GPUs held by instances on each host, by host name, as the database records them.
    pub async fn gpus_used_by_host(&self) -> Result<std::collections::HashMap<String, i64>> {
        self.fetch_all(
            "SELECT host, CAST(SUM(gpus_allocated) AS BIGINT) FROM instances \
             WHERE host IS NOT NULL AND gpus_allocated > 0 GROUP BY host",
            &[],
        )
        .await?
        .iter()
        .map(|row| Ok((row.text(0)?, row.int(1)?)))
        .collect()
    }

    /// Up to `limit` instances' [`MachineRow`]s in one of `statuses` whose ids sort after `after`, in id
    /// order (see [`MachineSweep`]).
    pub async fn machines_with_status_after(
        &self,
        statuses: &[&str],
        after: &str,
        limit: usize,
    ) -> Result<Vec<MachineRow>> {
        let sql = format!(
            "SELECT id, status, region, gpu_count, host FROM instances WHERE status IN ({}) AND id > ${} \
             ORDER BY id LIMIT ${}",
            placeholders(1, statuses.len()),
            statuses.len() + 1,
            statuses.len() + 2
        );
        let mut binds: Vec<Bind> = statuses.iter().map(|s| Bind::from(*s)).collect();
        binds.push(Bind::from(after));
        binds.push(Bind::from(limit as i64));
        let rows = self.fetch_all(&sql, &binds).await?;
        rows.iter()
            .map(|r| {
                Ok(MachineRow {
                    id: r.text(0)?,
                    status: r.text(1)?,
                    region: r.text(2)?,
                    gpu_count: r.int(3)?,
                    host: r.opt_text(4)?,
                })
            })
            .collect()
    }
}

/// Walks every instance in some states a page at a time, in id order, so that a sweep over a million
/// instances holds one page of [`MachineRow`]s in memory; instances changed behind the cursor are seen by
/// the next sweep.
pub struct MachineSweep<'a> {
    statuses: &'a [&'a str],
    after: String,
    done: bool,
}

impl<'a> MachineSweep<'a> {
    /// Rows read at a time.
    const PAGE: usize = 2_000;

    pub fn new(statuses: &'a [&'a str]) -> MachineSweep<'a> {
        MachineSweep {
            statuses,
            after: String::new(),
            done: false,
        }
    }

    /// Whether the last page read was the sweep's last.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next page; `None` once the sweep is over.
    pub async fn next(&mut self, store: &Store) -> Result<Option<Vec<MachineRow>>> {
        if self.done {
            return Ok(None);
        }
        let page = store
            .machines_with_status_after(self.statuses, &self.after, Self::PAGE)
            .await?;
        self.done = page.len() < Self::PAGE;
        match page.last() {
            Some(last) => {
                self.after = last.id.clone();
                Ok(Some(page))
            }
            None => Ok(None),
        }
    }
}

/// One of an instance's own security rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRow {
    pub id: String,
    pub direction: String,
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
}

/// Adds a rule to an instance: (direction, ethertype, protocol), (port min, port max), remote prefix.
/// False, with nothing written, when the id is taken (ids are random: the caller draws another).
pub async fn insert_rule(
    tx: &mut Tx,
    id: &str,
    instance_id: &str,
    (direction, ethertype, protocol): (&str, &str, Option<&str>),
    (port_min, port_max): (Option<i64>, Option<i64>),
    remote_ip_prefix: Option<&str>,
    now: i64,
) -> Result<bool> {
    let inserted = tx.execute(
        "INSERT INTO instance_security_rules (id, instance_id, direction, ethertype, protocol, port_range_min, \
         port_range_max, remote_ip_prefix, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (id) DO NOTHING",
        &binds![
            id,
            instance_id,
            direction,
            ethertype,
            protocol,
            port_min,
            port_max,
            remote_ip_prefix,
            now
        ],
    )
    .await?;
    Ok(inserted == 1)
}

/// Removes one of an instance's own rules; false when it has no rule with that id.
pub async fn delete_rule(tx: &mut Tx, instance_id: &str, rule_id: &str) -> Result<bool> {
    let done = tx
        .execute(
            "DELETE FROM instance_security_rules WHERE id = $1 AND instance_id = $2",
            &binds![rule_id, instance_id],
        )
        .await?;
    Ok(done == 1)
}

/// An instance's security rules, oldest first (in a transaction holding the account's lock, what a new rule
/// is checked against).
pub async fn rules_of(db: &mut impl Db, instance_id: &str) -> Result<Vec<RuleRow>> {
    let sql = format!(
        "SELECT {RULE_COLUMNS} FROM instance_security_rules WHERE instance_id = $1 ORDER BY created_at, id"
    );
    let rows = db.fetch_all(&sql, &binds![instance_id]).await?;
    rows.iter().map(|r| rule_from(r, 0)).collect()
}

impl Store {
    /// (status, count) of the instances not deleted (read from the live index, not the table).
    pub async fn live_instances_by_state(&self) -> Result<Vec<(String, i64)>> {
        let rows = self
            .fetch_all(
                "SELECT status, COUNT(*) FROM instances WHERE status <> 'DELETED' GROUP BY status \
                 ORDER BY status",
                &[],
            )
            .await?;
        rows.iter().map(|r| Ok((r.text(0)?, r.int(1)?))).collect()
    }
}

impl Store {
    pub async fn instance_rules(&self, instance_id: &str) -> Result<Vec<RuleRow>> {
        rules_of(&mut &*self, instance_id).await
    }

    /// The rules, volumes and firewall rules of several instances (what their views show besides the
    /// rows), in one statement.
    pub async fn instance_children(&self, instance_ids: &[String]) -> Result<InstanceChildren> {
        if instance_ids.is_empty() {
            return Ok(InstanceChildren::default());
        }
        // Every set names the same ids with the same placeholders.
        let ids = placeholders(1, instance_ids.len());
        let binds: Vec<Bind> = instance_ids.iter().map(Bind::from).collect();
        let sets = RowSets::new(self.backend(), &children_sets(&ids));
        let sets: [Vec<JsonRow>; 5] = self
            .read_row_sets(&sets, &binds)
            .await?
            .try_into()
            .map_err(|_| crate::StoreError::Unexpected("expected five row sets".into()))?;
        children_from(sets)
    }

    /// The account's instance and what its view shows besides its row, in one round trip (the API's
    /// hottest read).
    pub async fn instance_with_children(
        &self,
        account_id: &str,
        id: &str,
    ) -> Result<Option<(InstanceRow, InstanceChildren)>> {
        static SETS: LazyLock<[RowSets; 2]> = LazyLock::new(|| {
            [crate::Backend::Sqlite, crate::Backend::Postgres].map(|backend| {
                let mut sets = vec![RowSet {
                    columns: COLUMNS.to_string(),
                    inner: format!(
                        "SELECT {COLUMNS} FROM instances WHERE id = $1 AND account_id = $2"
                    ),
                    order: "id",
                }];
                sets.extend(children_sets("$1"));
                RowSets::new(backend, &sets)
            })
        });
        let sets = match self.backend() {
            crate::Backend::Sqlite => &SETS[0],
            crate::Backend::Postgres => &SETS[1],
        };
        let [instance, rules, volumes, firewall_rules, labels, leases]: [Vec<JsonRow>; 6] = self
            .read_row_sets(sets, &binds![id, account_id])
            .await?
            .try_into()
            .map_err(|_| crate::StoreError::Unexpected("expected six row sets".into()))?;
        // Another account's instance: its children were read by id, and are dropped with it.
        let Some(row) = instance.first() else {
            return Ok(None);
        };
        Ok(Some((
            from_row(row)?,
            children_from([rules, volumes, firewall_rules, labels, leases])?,
        )))
    }
}

/// Where the total stands in a row of [`live_page_sql`], after the instance's `COLUMNS`; the row sets of
/// the page's children follow it, in the page's first row.
const LIVE_PAGE_TOTAL: usize = crate::sql::column_count(COLUMNS);

/// One page of the account's (`$1`) live instances, newest first, from the offset `$2`, in one
/// PostgreSQL statement: each row is the instance's `COLUMNS`, then how many live instances the account
/// has (the count the triggers of `account_instance_counts` keep), then, in the first row only, the row
/// sets of the page's children ([`children_sets`]); no row past the last page.
///
/// The page starts at the instance at the offset, found by a walk of the account's live index
/// (`instances_account_live`, its entries alone) from the newest end, or, for a page in the older half,
/// from the oldest end, which is the shorter walk there (`counted` says which, and how far). The page is
/// then a range of that index from that instance, read whole: no sort, no lookup of rows by id. The count
/// and the page are read in one snapshot, so a walk from the oldest end lands where one from the newest
/// would. The offset reaches the walks only through `counted`, so PostgreSQL plans the statement the
/// same for every offset and keeps one plan for it, instead of planning it again for each page.
fn live_page_sql(limit: u32, children: &RowSets) -> String {
    let live = "account_id = $1 AND status <> 'DELETED'";
    let children = children.sql();
    format!(
        "WITH counted AS (SELECT live, \
         CASE WHEN 2 * $2 < live THEN $2 END AS from_newest, \
         CASE WHEN 2 * $2 >= live AND $2 < live THEN live - 1 - $2 END AS from_oldest \
         FROM (SELECT COALESCE((SELECT live FROM account_instance_counts WHERE account_id = $1), 0) AS live) \
         AS account), \
         listed AS MATERIALIZED (SELECT {COLUMNS} FROM instances WHERE {live} AND (created_at, id) <= ( \
         SELECT created_at, id FROM (SELECT created_at, id FROM instances WHERE {live} \
         ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET (SELECT COALESCE(from_newest, 0) FROM counted)) \
         AS newest WHERE (SELECT from_newest FROM counted) IS NOT NULL \
         UNION ALL \
         SELECT created_at, id FROM (SELECT created_at, id FROM instances WHERE {live} \
         ORDER BY created_at, id LIMIT 1 OFFSET (SELECT COALESCE(from_oldest, 0) FROM counted)) \
         AS oldest WHERE (SELECT from_oldest FROM counted) IS NOT NULL) \
         ORDER BY created_at DESC, id DESC LIMIT {limit}) \
         SELECT {COLUMNS}, (SELECT live FROM counted), \
         CASE WHEN row_number() OVER (ORDER BY created_at DESC, id DESC) = 1 THEN ({children}) END \
         FROM listed ORDER BY created_at DESC, id DESC",
    )
}

/// The children of the instances `ids` (placeholders or a subquery) names: own rules, volumes, firewall
/// rules, labels, leases.
fn children_sets(ids: &str) -> [RowSet; 5] {
    let rule_columns = format!("instance_id, {RULE_COLUMNS}, created_at");
    [
        RowSet {
            inner: format!(
                "SELECT {rule_columns} FROM instance_security_rules WHERE instance_id IN ({ids})"
            ),
            columns: rule_columns,
            order: "instance_id, created_at, id",
        },
        crate::volumes::of_instances(ids),
        crate::firewalls::rules_of_instances(ids),
        crate::labels::of_resources("instance", ids),
        crate::leases::of_instances(ids),
    ]
}

fn children_from(
    [rules, volumes, firewall_rules, labels, leases]: [Vec<JsonRow>; 5],
) -> Result<InstanceChildren> {
    Ok(InstanceChildren {
        rules: rules
            .iter()
            .map(|r| Ok((r.text(0)?, rule_from(r, 1)?)))
            .collect::<Result<_>>()?,
        volumes: volumes
            .iter()
            .map(crate::volumes::from_row)
            .collect::<Result<_>>()?,
        firewall_rules: firewall_rules
            .iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?, rule_from(r, 2)?)))
            .collect::<Result<_>>()?,
        labels: crate::labels::gather(&labels)?,
        leases: leases
            .iter()
            .map(|r| Ok((r.text(0)?, crate::leases::from_row(r)?)))
            .collect::<Result<_>>()?,
    })
}

/// What the views of instances show besides their rows.
#[derive(Debug, Default)]
pub struct InstanceChildren {
    /// (instance id, rule): each instance's own rules, oldest first.
    pub rules: Vec<(String, RuleRow)>,
    /// Volumes attached, attaching or detaching, oldest first.
    pub volumes: Vec<VolumeRow>,
    /// (instance id, firewall id, rule): rules of the firewalls attached, in attachment and rule order.
    pub firewall_rules: Vec<(String, String, RuleRow)>,
    /// Labels by instance id.
    pub labels: std::collections::HashMap<String, crate::labels::Labels>,
    /// Leases by instance id.
    pub leases: std::collections::HashMap<String, crate::leases::LeaseRow>,
}

pub(crate) const RULE_COLUMNS: &str =
    "id, direction, ethertype, protocol, port_range_min, port_range_max, remote_ip_prefix";

/// A rule from `RULE_COLUMNS` read from position `first` on.
pub(crate) fn rule_from(row: &impl Columns, first: usize) -> Result<RuleRow> {
    Ok(RuleRow {
        id: row.text(first)?,
        direction: row.text(first + 1)?,
        ethertype: row.text(first + 2)?,
        protocol: row.opt_text(first + 3)?,
        port_range_min: row.opt_int(first + 4)?,
        port_range_max: row.opt_int(first + 5)?,
        remote_ip_prefix: row.opt_text(first + 6)?,
    })
}

/// The states of an instance on its way to a billed state, whose price a commitment counts before its
/// billing periods open. The triggers of migration 0035 count the instances in these states into
/// `instance_heading_counts`, with this same list (the tests' check of derived state compares the two;
/// STOPPING joined in migration 0048).
pub const HEADING_STATES: [&str; 6] = [
    "CREATING",
    "STARTING",
    "STOPPING",
    "REBOOTING",
    "RESTORING",
    "HIBERNATING",
];

/// Instances of one shape heading to a billed state: what prices them, and how many there are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadingShape {
    pub status: String,
    pub gpu_model: String,
    pub gpu_count: i64,
    pub os_volume_type: String,
    pub storage_gb: i64,
    /// Whether a boot volume holds the OS (billed as that volume, not as the instance's disk).
    pub boot_volume: bool,
    pub instances: i64,
}

/// The account's (`$1`) instances billed in the currency `$2` that are in one of [`HEADING_STATES`],
/// by shape, as `extra` (an expression) then what [`HeadingShape`] holds in its order: read from the
/// counts the triggers keep (a row per shape and shard), so it costs the same with ten such instances or
/// ten thousand. The instance `$3` (none when no instance has that id) is left out: the counts include
/// it once its row is written, and a deploy that checks after writing its instance counts it itself.
/// It is found by its id alone, in a subquery the rest cannot reach into (`LIMIT 1`): PostgreSQL plans
/// the read once for a connection in its admission function (migration 0038), and a plan made while
/// the table was empty walked every instance of the shape's state instead.
pub(crate) fn heading_shapes_sql(extra: &str) -> String {
    format!(
        "SELECT {extra}, c.status, c.gpu_model, c.os_volume_type, c.gpu_count, c.storage_gb, \
         c.boot_volume, CAST(SUM(c.instances) - (SELECT COUNT(*) FROM (SELECT * FROM instances \
         WHERE id = $3 LIMIT 1) w WHERE w.account_id = $1 AND w.currency = $2 AND w.status = c.status \
         AND w.gpu_model = c.gpu_model AND w.gpu_count = c.gpu_count \
         AND w.os_volume_type = c.os_volume_type AND w.storage_gb = c.storage_gb \
         AND CASE WHEN w.boot_volume_id IS NULL THEN 0 ELSE 1 END = c.boot_volume) AS BIGINT) \
         FROM instance_heading_counts c WHERE c.account_id = $1 AND c.currency = $2 \
         GROUP BY c.status, c.gpu_model, c.os_volume_type, c.gpu_count, c.storage_gb, c.boot_volume \
         HAVING SUM(c.instances) > 0"
    )
}

/// A [`HeadingShape`] from the columns of [`heading_shapes_sql`] after the extra one, from `first` on.
pub(crate) fn heading_shape_from(row: &impl Columns, first: usize) -> Result<HeadingShape> {
    Ok(HeadingShape {
        status: row.text(first)?,
        gpu_model: row.text(first + 1)?,
        os_volume_type: row.text(first + 2)?,
        gpu_count: row.int(first + 3)?,
        storage_gb: row.int(first + 4)?,
        boot_volume: row.int(first + 5)? == 1,
        instances: row.int(first + 6)?,
    })
}

/// The account's instances in `statuses` billed in `currency`, inside a transaction.
pub async fn of_account_in(
    tx: &mut Tx,
    account_id: &str,
    currency: &str,
    statuses: &[&str],
) -> Result<Vec<InstanceRow>> {
    let mut binds: Vec<crate::Bind<'_>> = vec![account_id.into(), currency.into()];
    let mut placeholders = Vec::new();
    for status in statuses {
        binds.push((*status).into());
        placeholders.push(format!("${}", binds.len()));
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM instances WHERE account_id = $1 AND currency = $2 AND status IN ({}) ORDER BY id",
        placeholders.join(", ")
    );
    let rows = tx.fetch_all(&sql, &binds).await?;
    rows.iter().map(from_row).collect()
}

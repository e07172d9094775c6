//! Snapshots: take one of an ACTIVE instance (which keeps running), list, show, delete, and restore one
//! into a new instance.
//!
//! Like volumes, an API call validates, then writes the snapshot's state, its event and the job that
//! carries the change out, in one transaction; the worker (`snapshot_worker`) finishes it through the
//! compute driver. A snapshot's disk outlives the snapshot while custom images made from it exist (see
//! `images`), and while instances are still being created from it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::platform::events::{self, NewEvent};
use barrack_api::catalog::Amount;
use barrack_api::snapshots::{
    CreateSnapshotRequest, Snapshot, SnapshotAction, SnapshotList, SnapshotQuery, SnapshotSource,
};
use barrack_api::{Currency, PageQuery, Pagination, Tier};
use barrack_store::Tx;
use barrack_store::images::ImageRow;
use barrack_store::instances::InstanceRow;
use barrack_store::snapshots::{self, SnapshotChange, SnapshotFilter, SnapshotRow};
use serde::{Deserialize, Serialize};

use crate::accounts::{Caller, actor, missing_profile_fields};
use crate::billing::balance_guard::require_balance;
use crate::billing::commitments::require_commitment;
use crate::catalog::snapshot_hourly;
use crate::platform::clock::format_ms;
use crate::platform::config::Config;
use crate::platform::countries;
use crate::platform::idempotency;
use crate::platform::ids::{IdDraws, IdKind, name_taken_as_conflict, new_id};
use crate::platform::jobs::{NewJob, enqueue};
use crate::platform::lifecycle::InstanceState;
use crate::platform::money::display_rate;
use crate::platform::validate::{Validator, check_label, length_between};
use crate::storage::images::{ImageState, check_not_os_image, insert_image};
use crate::{Context, Error, Result};

pub const JOB_KIND: &str = "snapshot";
/// Longest description of a snapshot or an image, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 255;
/// The size a snapshot is billed for when its tier has no snapshot pricing.
const DEFAULT_SIZE_GB: u32 = 100;

/// The states of a snapshot. `DELETED` snapshots are hidden from lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SnapshotState {
    Creating,
    Success,
    Error,
    Deleting,
    Deleted,
}

impl SnapshotState {
    pub const ALL: [SnapshotState; 5] = [
        SnapshotState::Creating,
        SnapshotState::Success,
        SnapshotState::Error,
        SnapshotState::Deleting,
        SnapshotState::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotState::Creating => "CREATING",
            SnapshotState::Success => "SUCCESS",
            SnapshotState::Error => "ERROR",
            SnapshotState::Deleting => "DELETING",
            SnapshotState::Deleted => "DELETED",
        }
    }

    pub fn parse(s: &str) -> Option<SnapshotState> {
        SnapshotState::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the snapshot still has (or is making) its disk for itself: not being deleted or gone.
    pub fn holds_disk(self) -> bool {
        matches!(
            self,
            SnapshotState::Creating | SnapshotState::Success | SnapshotState::Error
        )
    }
}

impl fmt::Display for SnapshotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a snapshot job carries: the operation, and the generation the snapshot had once it was requested
/// (a job whose snapshot has moved on since is obsolete; `release` jobs do not look at it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotJob {
    pub action: SnapshotJobAction,
    pub generation: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotJobAction {
    /// Take the snapshot of the snapshot's instance.
    Create,
    /// Delete the snapshot, and its disk unless images still boot from it.
    Delete,
    /// Free the disk of a deleted snapshot once no image boots from it any more.
    Release,
}

impl SnapshotJobAction {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotJobAction::Create => "create",
            SnapshotJobAction::Delete => "delete",
            SnapshotJobAction::Release => "release",
        }
    }
}

#[derive(Clone)]
pub struct SnapshotService {
    context: Arc<Context>,
}

impl SnapshotService {
    pub fn new(context: Arc<Context>) -> SnapshotService {
        SnapshotService { context }
    }

    fn config(&self) -> &Config {
        &self.context.config
    }

    fn now(&self) -> i64 {
        self.context.clock.now_ms()
    }

    /// `POST /api/snapshots/`. Checks in the deploy order: fields (400), profile (403), balance (402: the
    /// minimum and the first hour of a snapshot of the tier), the instance (404; of the caller's tier,
    /// 400; ACTIVE, 409), then the names' uniqueness (409) as the snapshot is written.
    pub async fn create(
        &self,
        caller: &Caller,
        request: CreateSnapshotRequest,
    ) -> Result<Snapshot> {
        let name = request.name.trim().to_string();
        let description = clean_description(request.description);
        let instance_id = request.instance_id.trim().to_string();

        // Fields.
        let mut v = Validator::new();
        check_label(&mut v, "name", &name);
        if request.is_image {
            check_not_os_image(&mut v, self.config(), "name", &name);
        }
        check_description(&mut v, description.as_deref());
        v.check(
            !instance_id.is_empty(),
            "instance_id",
            "instance_id is required",
        );
        crate::platform::labels::check_labels(&mut v, "labels", &request.labels);
        v.finish()?;

        // Profile and balance.
        let currency = require_profile(caller)?;
        let first_hour = snapshot_hourly(self.config(), caller.tier, currency);
        require_balance(&self.context, caller, currency, first_hour).await?;

        for _ in 0..5 {
            // The instance: the caller's, of the caller's tier, ACTIVE.
            let instance = self
                .context
                .store
                .instance(caller.account_id(), &instance_id)
                .await?
                .filter(|i| i.status != InstanceState::Deleted.as_str())
                .ok_or_else(|| Error::not_found("Instance", &instance_id))?;
            if instance.tier != caller.tier.as_str() {
                return Err(Error::field(
                    "instance_id",
                    format!(
                        "Instance {} is in the {} tier; your API key or session acts in the {} tier",
                        instance.id, instance.tier, caller.tier
                    ),
                ));
            }
            crate::catalog::check_region_up(&self.context, &instance.region).await?;
            if instance.status != InstanceState::Active.as_str() {
                return Err(Error::conflict(
                    "INVALID_STATE",
                    format!(
                        "Cannot snapshot an instance in state {}; it must be ACTIVE",
                        instance.status
                    ),
                ));
            }

            let now = self.now();
            let mut row = self.new_row(
                caller,
                &instance,
                name.clone(),
                description.clone(),
                request.is_image,
                currency,
                now,
            );
            let who = actor(caller);
            let mut tx = self.context.store.begin().await?;
            require_commitment(
                &mut tx,
                &self.context,
                caller.account_id(),
                currency,
                first_hour,
                None,
            )
            .await?;
            if !snapshots::hold_instance(&mut tx, &instance.id, instance.generation).await? {
                continue; // the instance changed under us: read it again and decide again
            }
            insert_snapshot(&mut tx, &mut row).await?;
            crate::platform::labels::write(
                &mut tx,
                crate::platform::labels::Labelled::Snapshot,
                &row.id,
                &row.account_id,
                &request.labels,
            )
            .await?;
            record_event(
                self.config(),
                &mut tx,
                &row,
                None,
                SnapshotState::Creating,
                &who,
                &format!("snapshot of instance {} requested", instance.id),
                row.generation,
                now,
            )
            .await?;
            if row.is_image {
                let mut image = image_row_of(
                    &row,
                    new_id(IdKind::Image),
                    row.name.clone(),
                    row.description.clone(),
                    ImageState::Creating,
                    now,
                );
                insert_image(
                    &mut tx,
                    &mut image,
                    &who,
                    &format!("image requested with snapshot {}", row.id),
                    now,
                )
                .await?;
            }
            let max_attempts = i64::from(self.config().jobs.max_attempts);
            enqueue_job(
                &mut tx,
                &row.id,
                SnapshotJobAction::Create,
                row.generation,
                max_attempts,
                now,
            )
            .await?;
            // The view from what this transaction wrote: the instance as it was held, the image asked for
            // with the snapshot, the labels given.
            let mut instances = HashMap::from([(instance.id.clone(), Some(instance.status))]);
            let mut snapshot = self.view(row.clone(), &mut instances).await?;
            snapshot.image_count = u32::from(row.is_image);
            snapshot.labels = request.labels.clone();
            idempotency::commit(tx, &snapshot).await?;
            self.context.work.notify_one();
            return Ok(snapshot);
        }
        Err(Error::conflict(
            "CONFLICT",
            "The instance is changing; try again",
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn new_row(
        &self,
        caller: &Caller,
        instance: &InstanceRow,
        name: String,
        description: Option<String>,
        is_image: bool,
        currency: Currency,
        now: i64,
    ) -> SnapshotRow {
        let tier = Tier::parse(&instance.tier).unwrap_or(caller.tier);
        SnapshotRow {
            id: new_id(IdKind::Snapshot),
            account_id: caller.account_id().to_string(),
            name,
            description,
            tier: tier.as_str().into(),
            region: instance.region.clone(),
            instance_id: instance.id.clone(),
            instance_name: instance.name.clone(),
            gpu_model: instance.gpu_model.clone(),
            gpu_count: instance.gpu_count,
            vcpus: instance.vcpus,
            ram_gb: instance.ram_gb,
            storage_gb: instance.storage_gb,
            os_volume_type: instance.os_volume_type.clone(),
            operating_system: instance.operating_system.clone(),
            size_gb: i64::from(snapshot_size_gb(self.config(), tier)),
            is_image,
            status: SnapshotState::Creating.as_str().into(),
            status_reason: None,
            currency: currency.as_str().into(),
            generation: 1,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        }
    }

    /// `GET /api/snapshots/`.
    pub async fn list(
        &self,
        caller: &Caller,
        query: SnapshotQuery,
        label_filters: &[String],
    ) -> Result<SnapshotList> {
        let page = PageQuery {
            page: query.page,
            limit: query.limit,
        }
        .validate()
        .map_err(|(field, message)| Error::field(field, message))?;
        let status = match &query.status {
            Some(status) => Some(
                SnapshotState::parse(status)
                    .ok_or_else(|| {
                        Error::field(
                            "status",
                            crate::platform::validate::unknown_status(
                                status,
                                &SnapshotState::ALL.map(SnapshotState::as_str),
                            ),
                        )
                    })?
                    .as_str()
                    .to_string(),
            ),
            None => None,
        };
        crate::platform::validate::catalog_filters(
            &self.context.config,
            query.region.as_deref(),
            None,
        )?;
        // An empty filter would match nothing; as every empty filter, it is refused.
        if query
            .instance_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty())
        {
            return Err(Error::field(
                "instance_id",
                "Give an instance id, or leave instance_id out",
            ));
        }
        let filter = SnapshotFilter {
            status,
            region: query.region,
            instance_id: query.instance_id,
            labels: crate::platform::labels::selectors(label_filters)?,
        };
        let (rows, total) = self
            .context
            .store
            .snapshots(caller.account_id(), &filter, page.offset(), page.limit)
            .await?;
        let snapshots = self.views(rows).await?;
        Ok(SnapshotList {
            snapshots,
            pagination: Pagination::new(page, total),
        })
    }

    /// `GET /api/snapshots/{id}/`.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Snapshot> {
        let row = self.owned(caller, id).await?;
        Ok(self.views(vec![row]).await?.remove(0))
    }

    /// `DELETE /api/snapshots/{id}/`: a `SUCCESS` or `ERROR` snapshot. Instances restored from it and
    /// images made from it are not affected.
    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<SnapshotAction> {
        for _ in 0..5 {
            let row = self.owned(caller, id).await?;
            let state = parse_state(&row.status)?;
            if !matches!(state, SnapshotState::Success | SnapshotState::Error) {
                return Err(invalid_state("delete", state, "SUCCESS or ERROR"));
            }
            let now = self.now();
            let mut tx = self.context.store.begin().await?;
            let change = SnapshotChange {
                status: Some(SnapshotState::Deleting.as_str().into()),
                status_reason: Some(None),
                ..Default::default()
            };
            if !snapshots::update(&mut tx, &row.id, row.generation, &change, now).await? {
                continue;
            }
            let generation = row.generation + 1;
            record_event(
                self.config(),
                &mut tx,
                &row,
                Some(state),
                SnapshotState::Deleting,
                &actor(caller),
                "delete requested",
                generation,
                now,
            )
            .await?;
            let max_attempts = i64::from(self.config().jobs.max_attempts);
            enqueue_job(
                &mut tx,
                &row.id,
                SnapshotJobAction::Delete,
                generation,
                max_attempts,
                now,
            )
            .await?;
            tx.commit().await.map_err(Error::internal)?;
            self.context.work.notify_one();
            return Ok(SnapshotAction {
                snapshot_id: row.id,
                action: "delete".into(),
                status: SnapshotState::Deleting.as_str().into(),
                target_status: SnapshotState::Deleted.as_str().into(),
            });
        }
        Err(changing())
    }

    /// The snapshot of the account, unless deleted; 404 otherwise.
    pub(crate) async fn owned(&self, caller: &Caller, id: &str) -> Result<SnapshotRow> {
        self.context
            .store
            .snapshot(caller.account_id(), id.trim())
            .await?
            .filter(|s| s.status != SnapshotState::Deleted.as_str())
            .ok_or_else(|| Error::not_found("Snapshot", id))
    }

    /// The wire forms of a page, with their images counted in one query.
    async fn views(&self, rows: Vec<SnapshotRow>) -> Result<Vec<Snapshot>> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut counts: HashMap<String, u32> = HashMap::new();
        for image in self.context.store.images_of_snapshots(&ids).await? {
            *counts.entry(image.snapshot_id).or_default() += 1;
        }
        let mut instances = HashMap::new();
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            let count = counts.get(&row.id).copied().unwrap_or(0);
            let mut view = self.view(row, &mut instances).await?;
            view.image_count = count;
            views.push(view);
        }
        crate::platform::labels::fill(
            &self.context.store,
            crate::platform::labels::Labelled::Snapshot,
            &mut views,
        )
        .await?;
        Ok(views)
    }

    /// The wire form; `instances` caches the source instances' statuses of a page.
    async fn view(
        &self,
        row: SnapshotRow,
        instances: &mut HashMap<String, Option<String>>,
    ) -> Result<Snapshot> {
        if !instances.contains_key(&row.instance_id) {
            let status = self
                .context
                .store
                .instance_by_id(&row.instance_id)
                .await?
                .map(|i| i.status);
            instances.insert(row.instance_id.clone(), status);
        }
        let currency = Currency::parse(&row.currency).unwrap_or(Currency::USD);
        let tier = Tier::parse(&row.tier).unwrap_or(Tier::Legacy);
        Ok(Snapshot {
            hourly_rate: Amount(display_rate(snapshot_hourly(self.config(), tier, currency))),
            currency,
            tier,
            source: SnapshotSource {
                instance_id: row.instance_id.clone(),
                instance_name: row.instance_name,
                instance_status: instances[&row.instance_id].clone(),
                region: row.region.clone(),
                gpu_model: row.gpu_model,
                gpu_count: row.gpu_count as u32,
                vcpus: row.vcpus as u32,
                ram_gb: row.ram_gb as u32,
                storage_gb: row.storage_gb as u32,
                os_volume_type: row.os_volume_type,
                operating_system: row.operating_system,
            },
            size_gb: row.size_gb as u32,
            is_image: row.is_image,
            image_count: 0,
            id: row.id,
            name: row.name,
            description: row.description,
            status: row.status,
            status_reason: row.status_reason,
            region: row.region,
            instance_id: row.instance_id,
            created_at: format_ms(row.created_at),
            updated_at: format_ms(row.updated_at),
            labels: Default::default(),
        })
    }
}

/// Tells the driver about the disk of snapshot `id` before an instance boots from it, when the database
/// has it on record: the snapshot succeeded (and its deletion has not freed the disk yet), or a custom
/// image made from it still boots from it (see `ComputeDriver::recognize_snapshot`).
pub(crate) async fn recognize_disk(context: &Context, id: &str) -> Result<()> {
    let store = &context.store;
    let snapshot_has_it = store.snapshot_by_id(id).await?.is_some_and(|s| {
        matches!(
            SnapshotState::parse(&s.status),
            Some(SnapshotState::Success | SnapshotState::Deleting)
        )
    });
    let on_record = snapshot_has_it
        || store
            .images_of_snapshots(&[id.to_string()])
            .await?
            .iter()
            .any(|i| i.status == ImageState::Success.as_str());
    if on_record {
        context.driver.recognize_snapshot(id);
    }
    Ok(())
}

/// The profile must be complete (403); the account's currency.
pub(crate) fn require_profile(caller: &Caller) -> Result<Currency> {
    let missing = missing_profile_fields(&caller.account);
    if !missing.is_empty() {
        return Err(Error::ProfileIncomplete(missing));
    }
    Ok(countries::currency_for(caller.account.country.as_deref()))
}

/// The size a snapshot of `tier` is billed for.
fn snapshot_size_gb(config: &Config, tier: Tier) -> u32 {
    config
        .snapshots
        .iter()
        .find(|s| s.tier == tier)
        .map(|s| s.fixed_size_gb)
        .unwrap_or(DEFAULT_SIZE_GB)
}

/// `{snapshot-name}-restored`, with spaces (which instance names do not take) made hyphens, and the
/// snapshot's name cut to fit an instance name (snapshot names may be longer).
pub fn default_restore_name(snapshot_name: &str) -> String {
    const SUFFIX: &str = "-restored";
    let room = barrack_api::rules::INSTANCE_NAME_MAX_CHARS - SUFFIX.len();
    let base: String = snapshot_name
        .trim()
        .replace(' ', "-")
        .chars()
        .take(room)
        .collect();
    format!("{}{SUFFIX}", base.trim_end_matches(['-', '_', '.']))
}

/// A description with surrounding space removed; empty means none.
pub(crate) fn clean_description(description: Option<String>) -> Option<String> {
    description
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
}

pub(crate) fn check_description(v: &mut Validator, description: Option<&str>) {
    if let Some(d) = description {
        v.check(
            length_between(d, 0, MAX_DESCRIPTION_CHARS),
            "description",
            format!("Description must be {MAX_DESCRIPTION_CHARS} characters or less"),
        );
        crate::platform::validate::check_plain_text(v, "description", d, true);
    }
}

/// The image row of a custom image made from `snapshot`.
pub(crate) fn image_row_of(
    snapshot: &SnapshotRow,
    id: String,
    name: String,
    description: Option<String>,
    state: ImageState,
    now: i64,
) -> ImageRow {
    ImageRow {
        id,
        account_id: snapshot.account_id.clone(),
        name,
        description,
        tier: snapshot.tier.clone(),
        region: snapshot.region.clone(),
        snapshot_id: snapshot.id.clone(),
        snapshot_name: snapshot.name.clone(),
        source_instance_id: snapshot.instance_id.clone(),
        storage_gb: snapshot.storage_gb,
        os_volume_type: snapshot.os_volume_type.clone(),
        operating_system: snapshot.operating_system.clone(),
        status: state.as_str().into(),
        status_reason: None,
        generation: 1,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    }
}

pub(crate) fn parse_state(status: &str) -> Result<SnapshotState> {
    SnapshotState::parse(status)
        .ok_or_else(|| Error::internal(format!("unknown snapshot status {status}")))
}

pub(crate) fn invalid_state(action: &str, state: SnapshotState, allowed: &str) -> Error {
    Error::conflict(
        "INVALID_STATE",
        format!("Cannot {action} a snapshot in state {state}; it must be {allowed}"),
    )
}

fn changing() -> Error {
    Error::conflict("CONFLICT", "The snapshot is changing; try again")
}

/// Writes a new snapshot, under another id when its own is taken (read `row.id` after).
async fn insert_snapshot(tx: &mut Tx, row: &mut SnapshotRow) -> Result<()> {
    let mut draws = IdDraws::of("snapshot");
    while !name_taken_as_conflict(
        snapshots::insert(&mut *tx, row).await,
        "A snapshot",
        &row.name,
    )? {
        draws.taken()?;
        row.id = new_id(IdKind::Snapshot);
    }
    Ok(())
}

pub(crate) async fn enqueue_job(
    tx: &mut Tx,
    id: &str,
    action: SnapshotJobAction,
    generation: i64,
    max_attempts: i64,
    now: i64,
) -> Result<()> {
    let payload =
        serde_json::to_string(&SnapshotJob { action, generation }).map_err(Error::internal)?;
    let job = NewJob {
        kind: JOB_KIND,
        resource_id: id,
        payload,
        max_attempts,
    };
    enqueue(tx, job, now).await?;
    Ok(())
}

/// Records a snapshot's state change in the event log; `sequence` is the snapshot's generation after it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_event(
    config: &Config,
    tx: &mut Tx,
    row: &SnapshotRow,
    from: Option<SnapshotState>,
    to: SnapshotState,
    actor: &str,
    cause: &str,
    sequence: i64,
    now: i64,
) -> Result<()> {
    let kind = match from {
        None => "created",
        Some(from) if from == to => "restored",
        Some(_) => "status_changed",
    };
    let from = from.map(SnapshotState::as_str);
    let event = NewEvent {
        account_id: &row.account_id,
        resource_type: "snapshot",
        resource_id: &row.id,
        kind,
        from,
        to: Some(to.as_str()),
        actor,
        cause,
        sequence,
    };
    events::record(tx, event, now).await?;
    // Billing follows every state change, in the same transaction: a snapshot is billed while it is
    // SUCCESS.
    let tier = Tier::parse(&row.tier).unwrap_or(Tier::Legacy);
    let currency = Currency::parse(&row.currency).unwrap_or(Currency::USD);
    crate::billing::sync_snapshot(
        tx,
        config,
        (&row.id, &row.name, &row.account_id),
        (tier, currency),
        to == SnapshotState::Success,
        now,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for state in SnapshotState::ALL {
            assert_eq!(SnapshotState::parse(state.as_str()), Some(state));
        }
        assert_eq!(SnapshotState::parse("success"), None);
        assert!(SnapshotState::Error.holds_disk() && !SnapshotState::Deleting.holds_disk());
    }

    #[test]
    fn restored_instances_are_named_after_the_snapshot() {
        assert_eq!(default_restore_name("nightly"), "nightly-restored");
        assert_eq!(
            default_restore_name("before upgrade"),
            "before-upgrade-restored"
        );
        let long = default_restore_name("abcdefghijklmnopqrstuvwxyz0123456789ABCD");
        assert_eq!(long, "abcdefghijklmnopqrstu-restored");
        assert_eq!(
            long.chars().count(),
            barrack_api::rules::INSTANCE_NAME_MAX_CHARS
        );
        assert_eq!(
            default_restore_name("nightly backup of xy z"),
            "nightly-backup-of-xy-restored",
            "cut where a hyphen would end it"
        );
    }

    #[test]
    fn job_payloads_are_stable() {
        let job = SnapshotJob {
            action: SnapshotJobAction::Release,
            generation: 4,
        };
        let text = serde_json::to_string(&job).unwrap();
        assert_eq!(text, r#"{"action":"release","generation":4}"#);
        assert_eq!(serde_json::from_str::<SnapshotJob>(&text).unwrap(), job);
    }
}

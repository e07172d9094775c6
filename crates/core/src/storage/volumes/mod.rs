//! Volumes: create, list, resize, clone, delete, and attach to or detach from instances.
//!
//! Like instances, an API call validates, then writes the volume's transitional state, its event and the
//! job that carries the change out, in one transaction; the worker (`volume_worker`) finishes it through
//! the compute driver. Deploy uses the `*_for_deploy` checks and [`attach_at_deploy`] /
//! [`create_at_deploy`] inside its own transaction (`deploy`). Attaching and detaching are in
//! `attachments`, what a volume looks like in `views`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::platform::events::{self, NewEvent};
use barrack_api::volumes::{
    CloneVolumeRequest, CreateVolumeRequest, ResizeVolumeRequest, Volume, VolumeAction,
};
use barrack_api::{Currency, Tier};
use barrack_store::Tx;
use barrack_store::volumes::{self, VolumeChange, VolumeRow};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::accounts::{Caller, actor, missing_profile_fields};
use crate::billing::balance_guard::require_balance;
use crate::billing::commitments::require_commitment;
use crate::catalog::{price, storage_hourly};
use crate::platform::config::{Config, VolumeTypeConfig};
use crate::platform::countries;
use crate::platform::idempotency;
use crate::platform::ids::{IdDraws, IdKind, name_taken_as_conflict, new_id};
use crate::platform::jobs::{NewJob, enqueue};
use crate::platform::validate::{Validator, check_label};
use crate::{Context, Error, Result};

mod attachments;
mod deploy;
mod views;

pub use deploy::{attach_at_deploy, create_at_deploy};

pub const JOB_KIND: &str = "volume";
/// Most volumes one attach or detach request names.
pub const MAX_VOLUMES_PER_REQUEST: usize = 25;
/// The default names `GET /api/volumes/` proposes: `volume1`, `volume2`, ...
const DEFAULT_NAME_PREFIX: &str = "volume";

/// The states of a volume. `deleted` volumes are hidden from lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VolumeState {
    Creating,
    Available,
    Attaching,
    InUse,
    Detaching,
    Resizing,
    Cloning,
    Deleting,
    Error,
    Deleted,
}

impl VolumeState {
    pub const ALL: [VolumeState; 10] = [
        VolumeState::Creating,
        VolumeState::Available,
        VolumeState::Attaching,
        VolumeState::InUse,
        VolumeState::Detaching,
        VolumeState::Resizing,
        VolumeState::Cloning,
        VolumeState::Deleting,
        VolumeState::Error,
        VolumeState::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VolumeState::Creating => "creating",
            VolumeState::Available => "available",
            VolumeState::Attaching => "attaching",
            VolumeState::InUse => "in-use",
            VolumeState::Detaching => "detaching",
            VolumeState::Resizing => "resizing",
            VolumeState::Cloning => "cloning",
            VolumeState::Deleting => "deleting",
            VolumeState::Error => "error",
            VolumeState::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<VolumeState> {
        VolumeState::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// A state the volume rests in (no operation under way).
    pub fn is_stable(self) -> bool {
        matches!(
            self,
            VolumeState::Available | VolumeState::InUse | VolumeState::Error | VolumeState::Deleted
        )
    }
}

impl fmt::Display for VolumeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a volume job carries: the operation, the generation the volume had once it was requested (a job
/// whose volume has moved on since is obsolete), and the new size of a resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeJob {
    pub action: VolumeJobAction,
    pub generation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeJobAction {
    /// Create an empty (or, for bootable volumes, imaged) volume.
    Create,
    /// Create the volume as a copy of its `source_volume_id`.
    Clone,
    Resize,
    /// Attach to the volume's `instance_id`.
    Attach,
    /// Detach from the volume's `instance_id`.
    Detach,
    Delete,
}

impl VolumeJobAction {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeJobAction::Create => "create",
            VolumeJobAction::Clone => "clone",
            VolumeJobAction::Resize => "resize",
            VolumeJobAction::Attach => "attach",
            VolumeJobAction::Detach => "detach",
            VolumeJobAction::Delete => "delete",
        }
    }
}

#[derive(Clone)]
pub struct VolumeService {
    context: Arc<Context>,
}

impl VolumeService {
    pub fn new(context: Arc<Context>) -> VolumeService {
        VolumeService { context }
    }

    fn config(&self) -> &Config {
        &self.context.config
    }

    fn now(&self) -> i64 {
        self.context.clock.now_ms()
    }

    /// Why `image`, which names no OS image of the catalogue, cannot make a bootable volume: a custom
    /// image of the caller's is booted by a deploy, not copied to a volume.
    async fn not_an_os_image(&self, caller: &Caller, image: &str) -> Result<String> {
        let custom = crate::storage::images::ImageService::new(self.context.clone())
            .for_deploy(caller, image)
            .await?;
        Ok(match custom {
            Some(_) => format!(
                "'{image}' is one of your custom images; a bootable volume is made from an OS image \
                 of the catalogue (deploy with image_name '{image}' to boot from the custom image)"
            ),
            None => format!(
                "Image '{image}' is not an OS image of the catalogue (GET /api/os-images/ lists them)"
            ),
        })
    }

    /// `POST /api/volumes/`. Checks in the deploy order: fields (400), tier and region (400), profile
    /// (403), balance (402), then the name's uniqueness (409) as the volume is written.
    pub async fn create(&self, caller: &Caller, request: CreateVolumeRequest) -> Result<Volume> {
        let config = self.config();
        let name = request.name.trim().to_string();

        // Fields.
        let mut v = Validator::new();
        check_label(&mut v, "name", &name);
        let limits = &config.volumes;
        let minimum = if request.bootable {
            limits.minimum_bootable_size_gb
        } else {
            limits.minimum_size_gb
        };
        v.check(
            (minimum..=limits.maximum_size_gb).contains(&request.size),
            "size",
            format!(
                "{} size must be between {minimum} and {} GB",
                if request.bootable {
                    "Bootable volume"
                } else {
                    "Volume"
                },
                limits.maximum_size_gb
            ),
        );
        let image = request
            .image_name
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty());
        if request.bootable {
            v.check(
                image.is_some(),
                "image_name",
                "image_name is required for a bootable volume",
            );
        } else {
            v.check(
                image.is_none(),
                "image_name",
                "image_name is only for bootable volumes (set bootable: true)",
            );
        }
        let volume_type = config.volume_type(&request.volume_type);
        if volume_type.is_none() {
            v.add(
                "volume_type",
                unknown_value(
                    "volume type",
                    &request.volume_type,
                    config.volume_types.iter().map(|t| &t.name),
                ),
            );
        }
        let region = config.region(&request.region);
        if region.is_none() {
            v.add(
                "region",
                unknown_value(
                    "region",
                    &request.region,
                    config.regions.iter().map(|r| &r.name),
                ),
            );
        }
        crate::platform::labels::check_labels(&mut v, "labels", &request.labels);
        v.finish()?;
        let (volume_type, region) = (volume_type.expect("validated"), region.expect("validated"));

        // Tier and region.
        let mut v = Validator::new();
        check_type_tier(&mut v, "volume_type", volume_type, caller.tier);
        v.check(
            region.tier == caller.tier,
            "region",
            format!(
                "{} is in the {} tier; your API key or session acts in the {} tier",
                region.name, region.tier, caller.tier
            ),
        );
        if let Some(image) = image {
            match config.os_images.iter().find(|i| i.name == image) {
                Some(os) => v.check(
                    os.regions.contains(&region.name),
                    "image_name",
                    format!("Image '{image}' is not available in {}", region.name),
                ),
                None => v.add("image_name", self.not_an_os_image(caller, image).await?),
            }
        }
        v.finish()?;
        crate::catalog::check_region_up(&self.context, &region.name).await?;

        // Profile and balance.
        let currency = self
            .require_funds(caller, volume_type, request.size)
            .await?;

        let now = self.now();
        let mut row = VolumeRow {
            id: new_id(IdKind::Volume),
            account_id: caller.account_id().to_string(),
            name,
            tier: caller.tier.as_str().into(),
            region: region.name.clone(),
            volume_type: volume_type.name.clone(),
            size_gb: i64::from(request.size),
            bootable: request.bootable,
            image_name: image.map(str::to_string),
            source_volume_id: None,
            instance_id: None,
            status: VolumeState::Creating.as_str().into(),
            status_reason: None,
            currency: currency.as_str().into(),
            generation: 1,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let mut tx = self.context.store.begin().await?;
        let first_hour = storage_hourly(price(&volume_type.prices, currency), request.size);
        require_commitment(
            &mut tx,
            &self.context,
            caller.account_id(),
            currency,
            first_hour,
            None,
        )
        .await?;
        self.insert_with_job(
            &mut tx,
            &mut row,
            VolumeJobAction::Create,
            &actor(caller),
            now,
        )
        .await?;
        crate::platform::labels::write(
            &mut tx,
            crate::platform::labels::Labelled::Volume,
            &row.id,
            &row.account_id,
            &request.labels,
        )
        .await?;
        // A new volume is attached to nothing, so its view reads nothing the transaction wrote.
        let mut volume = self.view(row, &mut HashMap::new()).await?;
        volume.labels = request.labels;
        idempotency::commit(tx, &volume).await?;
        self.context.work.notify_one();
        Ok(volume)
    }

    /// Profile (403) and balance (402: the minimum and the first hour of `size_gb` of `volume_type`);
    /// the account's currency.
    async fn require_funds(
        &self,
        caller: &Caller,
        volume_type: &VolumeTypeConfig,
        size_gb: u32,
    ) -> Result<Currency> {
        let missing = missing_profile_fields(&caller.account);
        if !missing.is_empty() {
            return Err(Error::ProfileIncomplete(missing));
        }
        let currency = countries::currency_for(caller.account.country.as_deref());
        let first_hour = storage_hourly(price(&volume_type.prices, currency), size_gb);
        require_balance(&self.context, caller, currency, first_hour).await?;
        Ok(currency)
    }

    /// Writes a new volume, its `created` event and the job that makes it. A name the account already
    /// uses is 409 `DUPLICATE_NAME`; a taken id is replaced (read `row.id` after).
    async fn insert_with_job(
        &self,
        tx: &mut Tx,
        row: &mut VolumeRow,
        action: VolumeJobAction,
        actor: &str,
        now: i64,
    ) -> Result<()> {
        insert_volume(tx, row).await?;
        let cause = match action {
            VolumeJobAction::Clone => format!(
                "clone of {} requested",
                row.source_volume_id.as_deref().unwrap_or("a volume")
            ),
            _ => "create requested".to_string(),
        };
        record_event(
            &self.context.config,
            tx,
            row,
            None,
            VolumeState::Creating,
            actor,
            &cause,
            row.generation,
            now,
        )
        .await?;
        let max_attempts = i64::from(self.config().jobs.max_attempts);
        enqueue_job(tx, &row.id, action, row.generation, None, max_attempts, now).await
    }

    /// `DELETE /api/volumes/{id}/`: only a detached volume (`available`, or `error` with no instance).
    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<VolumeAction> {
        for _ in 0..5 {
            let row = self.owned(caller, id).await?;
            let state = parse_state(&row.status)?;
            if let Some(instance) = &row.instance_id
                && matches!(state, VolumeState::InUse | VolumeState::Error)
            {
                return Err(Error::conflict(
                    "RESOURCE_IN_USE",
                    format!(
                        "Volume '{}' is attached to instance {instance}; detach it before deleting it",
                        row.id
                    ),
                ));
            }
            if !matches!(state, VolumeState::Available | VolumeState::Error)
                || row.instance_id.is_some()
            {
                return Err(invalid_state("delete", state, "available or error"));
            }
            if let Some(action) = self
                .begin(
                    caller,
                    &row,
                    state,
                    VolumeState::Deleting,
                    VolumeJobAction::Delete,
                    None,
                )
                .await?
            {
                return Ok(action);
            }
        }
        Err(changing())
    }

    /// `POST /api/volumes/{id}/resize/`: grow an `available` or `in-use` volume.
    pub async fn resize(
        &self,
        caller: &Caller,
        id: &str,
        request: ResizeVolumeRequest,
    ) -> Result<VolumeAction> {
        let maximum = self.config().volumes.maximum_size_gb;
        if request.size > maximum {
            return Err(Error::field(
                "size",
                format!("Volume size must be at most {maximum} GB"),
            ));
        }
        for _ in 0..5 {
            let row = self.owned(caller, id).await?;
            let state = parse_state(&row.status)?;
            if !matches!(state, VolumeState::Available | VolumeState::InUse) {
                return Err(invalid_state("resize", state, "available or in-use"));
            }
            if i64::from(request.size) <= row.size_gb {
                return Err(Error::field(
                    "size",
                    format!(
                        "Volumes only grow: the new size must be larger than the current {} GB",
                        row.size_gb
                    ),
                ));
            }
            if let Some(action) = self
                .begin(
                    caller,
                    &row,
                    state,
                    VolumeState::Resizing,
                    VolumeJobAction::Resize,
                    Some(request.size),
                )
                .await?
            {
                return Ok(action);
            }
        }
        Err(changing())
    }

    /// `POST /api/volumes/{id}/clone/`: a new volume of the same size, type and region, made from an
    /// `available` or `in-use` volume (which is `cloning` meanwhile).
    pub async fn clone_volume(
        &self,
        caller: &Caller,
        id: &str,
        request: CloneVolumeRequest,
    ) -> Result<Volume> {
        let name = request.name.trim().to_string();
        let mut v = Validator::new();
        check_label(&mut v, "name", &name);
        v.finish()?;
        for _ in 0..5 {
            let source = self.owned(caller, id).await?;
            let state = parse_state(&source.status)?;
            if !matches!(state, VolumeState::Available | VolumeState::InUse) {
                return Err(invalid_state("clone", state, "available or in-use"));
            }
            let volume_type = self
                .config()
                .volume_type(&source.volume_type)
                .ok_or_else(|| {
                    Error::internal(format!(
                        "volume {} has unknown type {}",
                        source.id, source.volume_type
                    ))
                })?;
            let mut v = Validator::new();
            check_type_tier(&mut v, "volume_type", volume_type, caller.tier);
            v.finish()?;
            let currency = self
                .require_funds(caller, volume_type, source.size_gb as u32)
                .await?;
            let now = self.now();
            let mut row = VolumeRow {
                id: new_id(IdKind::Volume),
                account_id: caller.account_id().to_string(),
                name: name.clone(),
                tier: source.tier.clone(),
                region: source.region.clone(),
                volume_type: source.volume_type.clone(),
                size_gb: source.size_gb,
                bootable: source.bootable,
                image_name: source.image_name.clone(),
                source_volume_id: Some(source.id.clone()),
                instance_id: None,
                status: VolumeState::Creating.as_str().into(),
                status_reason: None,
                currency: currency.as_str().into(),
                generation: 1,
                created_at: now,
                updated_at: now,
                deleted_at: None,
            };
            let mut tx = self.context.store.begin().await?;
            let first_hour =
                storage_hourly(price(&volume_type.prices, currency), source.size_gb as u32);
            require_commitment(
                &mut tx,
                &self.context,
                caller.account_id(),
                currency,
                first_hour,
                None,
            )
            .await?;
            let change = VolumeChange {
                status: Some(VolumeState::Cloning.as_str().into()),
                status_reason: Some(None),
                ..Default::default()
            };
            if !volumes::update(&mut tx, &source.id, source.generation, &change, now).await? {
                continue;
            }
            let who = actor(caller);
            record_event(
                &self.context.config,
                &mut tx,
                &source,
                Some(state),
                VolumeState::Cloning,
                &who,
                &format!("clone to {} requested", row.id),
                source.generation + 1,
                now,
            )
            .await?;
            self.insert_with_job(&mut tx, &mut row, VolumeJobAction::Clone, &who, now)
                .await?;
            // The copy is attached to nothing, so its view reads nothing the transaction wrote.
            let volume = self.view(row, &mut HashMap::new()).await?;
            idempotency::commit(tx, &volume).await?;
            self.context.work.notify_one();
            return Ok(volume);
        }
        Err(changing())
    }

    /// Moves a volume from `from` into the transitional state `through` and enqueues the job that
    /// finishes it, storing the answer with it for a retry under the same idempotency key; `None` when
    /// the volume changed under us (read again and decide again).
    async fn begin(
        &self,
        caller: &Caller,
        row: &VolumeRow,
        from: VolumeState,
        through: VolumeState,
        action: VolumeJobAction,
        size_gb: Option<u32>,
    ) -> Result<Option<VolumeAction>> {
        let now = self.now();
        let mut tx = self.context.store.begin().await?;
        if let (VolumeJobAction::Resize, Some(size_gb)) = (action, size_gb) {
            // Growing raises the burn by the difference from now on.
            let currency = Currency::parse(&row.currency).unwrap_or(Currency::USD);
            let rate = self
                .config()
                .volume_type(&row.volume_type)
                .map(|t| price(&t.prices, currency))
                .unwrap_or_default();
            let added = storage_hourly(rate, size_gb) - storage_hourly(rate, row.size_gb as u32);
            require_commitment(
                &mut tx,
                &self.context,
                caller.account_id(),
                currency,
                added,
                None,
            )
            .await?;
        }
        if !self
            .begin_in(
                &mut tx, caller, row, from, through, action, size_gb, None, now,
            )
            .await?
        {
            return Ok(None);
        }
        let target = match action {
            VolumeJobAction::Delete => VolumeState::Deleted,
            _ => resting_state(row),
        };
        let done = VolumeAction {
            volume_id: row.id.clone(),
            action: action.as_str().into(),
            status: through.as_str().into(),
            target_status: target.as_str().into(),
            size_gb: size_gb.filter(|_| action == VolumeJobAction::Resize),
        };
        idempotency::commit(tx, &done).await?;
        self.context.work.notify_one();
        Ok(Some(done))
    }

    /// [`VolumeService::begin`] inside the caller's transaction; `instance_id` sets the volume's
    /// instance (attach). False when the volume changed under us.
    #[allow(clippy::too_many_arguments)]
    async fn begin_in(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        row: &VolumeRow,
        from: VolumeState,
        through: VolumeState,
        action: VolumeJobAction,
        size_gb: Option<u32>,
        instance_id: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let change = VolumeChange {
            status: Some(through.as_str().into()),
            status_reason: Some(None),
            instance_id: instance_id.map(|i| Some(i.to_string())),
            ..Default::default()
        };
        if !volumes::update(tx, &row.id, row.generation, &change, now).await? {
            return Ok(false);
        }
        let generation = row.generation + 1;
        let cause = match (action, instance_id.or(row.instance_id.as_deref()), size_gb) {
            (VolumeJobAction::Resize, _, Some(size)) => format!("resize to {size} GB requested"),
            (VolumeJobAction::Attach, Some(instance), _) => {
                format!("attach to {instance} requested")
            }
            (VolumeJobAction::Detach, Some(instance), _) => {
                format!("detach from {instance} requested")
            }
            (action, _, _) => format!("{} requested", action.as_str()),
        };
        record_event(
            &self.context.config,
            tx,
            row,
            Some(from),
            through,
            &actor(caller),
            &cause,
            generation,
            now,
        )
        .await?;
        let max_attempts = i64::from(self.config().jobs.max_attempts);
        enqueue_job(tx, &row.id, action, generation, size_gb, max_attempts, now).await?;
        Ok(true)
    }

    /// The volume of the account, unless deleted; 404 otherwise.
    async fn owned(&self, caller: &Caller, id: &str) -> Result<VolumeRow> {
        self.context
            .store
            .volume(caller.account_id(), id)
            .await?
            .filter(|v| v.status != VolumeState::Deleted.as_str())
            .ok_or_else(|| Error::not_found("Volume", id))
    }
}

/// The exact hourly rate of `size_gb` of `volume_type` (zero for a type no longer configured).
pub fn hourly_rate(
    config: &Config,
    volume_type: &str,
    size_gb: u32,
    currency: Currency,
) -> Decimal {
    config
        .volume_type(volume_type)
        .map(|t| storage_hourly(price(&t.prices, currency), size_gb))
        .unwrap_or_default()
}

/// The first of `volume1`, `volume2`, ... not among `taken`.
pub fn next_volume_name(taken: &[String]) -> String {
    let taken: BTreeSet<&str> = taken.iter().map(String::as_str).collect();
    (1..)
        .map(|n| format!("{DEFAULT_NAME_PREFIX}{n}"))
        .find(|name| !taken.contains(name.as_str()))
        .expect("some number is free")
}

/// The state a volume rests in once its operation finishes: `in-use` while it has an instance.
pub fn resting_state(row: &VolumeRow) -> VolumeState {
    if row.instance_id.is_some() {
        VolumeState::InUse
    } else {
        VolumeState::Available
    }
}

pub(crate) fn parse_state(status: &str) -> Result<VolumeState> {
    VolumeState::parse(status)
        .ok_or_else(|| Error::internal(format!("unknown volume status {status}")))
}

fn invalid_state(action: &str, state: VolumeState, allowed: &str) -> Error {
    Error::conflict(
        "INVALID_STATE",
        format!("Cannot {action} a volume in state {state}; it must be {allowed}"),
    )
}

fn changing() -> Error {
    Error::conflict("CONFLICT", "The volume is changing; try again")
}

fn unknown_value<'a>(what: &str, value: &str, valid: impl Iterator<Item = &'a String>) -> String {
    let valid: Vec<&str> = valid.map(String::as_str).collect();
    format!(
        "Unknown {what} '{value}'. Valid values: {}",
        valid.join(", ")
    )
}

fn check_type_tier(v: &mut Validator, field: &str, volume_type: &VolumeTypeConfig, tier: Tier) {
    v.check(
        volume_type.tier == tier,
        field,
        format!(
            "{} is a volume type of the {} tier; your API key or session acts in the {tier} tier",
            volume_type.name, volume_type.tier
        ),
    );
}

/// A list of volume ids: 1 to [`MAX_VOLUMES_PER_REQUEST`], none empty, none twice.
fn check_ids(ids: &[String], field: &str) -> Result<()> {
    let mut v = Validator::new();
    v.check(!ids.is_empty(), field, "Name at least one volume id");
    if ids.len() > MAX_VOLUMES_PER_REQUEST {
        // Not checked one by one: the length is what is wrong.
        v.add(
            field,
            format!(
                "At most {MAX_VOLUMES_PER_REQUEST} volumes per request; {} given",
                ids.len()
            ),
        );
        return v.finish();
    }
    let mut seen = BTreeSet::new();
    for (i, id) in ids.iter().enumerate() {
        v.check(
            !id.is_empty(),
            &format!("{field}[{i}]"),
            "Volume id is empty",
        );
        v.check(
            seen.insert(id.as_str()),
            &format!("{field}[{i}]"),
            format!("Volume '{id}' is named twice"),
        );
    }
    v.finish()
}

/// Writes a new volume. An id already taken (see [`volumes::insert`]) is replaced by a fresh one, so read
/// `row.id` after.
async fn insert_volume(tx: &mut Tx, row: &mut VolumeRow) -> Result<()> {
    let mut draws = IdDraws::of("volume");
    while !name_taken_as_conflict(volumes::insert(&mut *tx, row).await, "A volume", &row.name)? {
        draws.taken()?;
        row.id = new_id(IdKind::Volume);
    }
    Ok(())
}

async fn enqueue_job(
    tx: &mut Tx,
    id: &str,
    action: VolumeJobAction,
    generation: i64,
    size_gb: Option<u32>,
    max_attempts: i64,
    now: i64,
) -> Result<()> {
    let payload = serde_json::to_string(&VolumeJob {
        action,
        generation,
        size_gb,
    })
    .map_err(Error::internal)?;
    let job = NewJob {
        kind: JOB_KIND,
        resource_id: id,
        payload,
        max_attempts,
    };
    enqueue(tx, job, now).await?;
    Ok(())
}

/// Records a volume's state change in the event log; `sequence` is the volume's generation after it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_event(
    config: &Config,
    tx: &mut Tx,
    row: &VolumeRow,
    from: Option<VolumeState>,
    to: VolumeState,
    actor: &str,
    cause: &str,
    sequence: i64,
    now: i64,
) -> Result<()> {
    let from = from.map(VolumeState::as_str);
    let event = NewEvent {
        account_id: &row.account_id,
        resource_type: "volume",
        resource_id: &row.id,
        kind: events::change_kind(from),
        from,
        to: Some(to.as_str()),
        actor,
        cause,
        sequence,
    };
    events::record(tx, event, now).await?;
    // Billing follows every state change, in the same transaction.
    crate::billing::sync_volume(tx, config, &row.id, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for state in VolumeState::ALL {
            assert_eq!(VolumeState::parse(state.as_str()), Some(state));
        }
        assert_eq!(VolumeState::parse("IN-USE"), None);
        assert!(VolumeState::InUse.is_stable() && !VolumeState::Attaching.is_stable());
    }

    #[test]
    fn next_volume_name_takes_the_first_gap() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(next_volume_name(&[]), "volume1");
        assert_eq!(next_volume_name(&names(&["volume1", "volume2"])), "volume3");
        assert_eq!(
            next_volume_name(&names(&["volume2", "volume10", "volumes"])),
            "volume1"
        );
        assert_eq!(next_volume_name(&names(&["volume1", "volume3"])), "volume2");
    }

    #[test]
    fn job_payloads_are_stable() {
        let job = VolumeJob {
            action: VolumeJobAction::Resize,
            generation: 3,
            size_gb: Some(200),
        };
        let text = serde_json::to_string(&job).unwrap();
        assert_eq!(text, r#"{"action":"resize","generation":3,"size_gb":200}"#);
        assert_eq!(serde_json::from_str::<VolumeJob>(&text).unwrap(), job);
    }
}

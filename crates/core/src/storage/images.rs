//! Custom images: made from `SUCCESS` snapshots, private to their account, and usable as `image_name` at
//! deploy in their region, where the new instance boots from a copy of the snapshot's disk.
//!
//! An image needs no work of the driver: it is a reference to its snapshot's disk, which the snapshot
//! worker keeps while any image refers to it, even after the snapshot itself is deleted. An image asked
//! for with its snapshot (`is_image`) is `CREATING` until the snapshot succeeds or fails.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::platform::events::{self, NewEvent};
use barrack_api::images::{
    CreateImageRequest, Image, ImageAction, ImageList, ImageQuery, ImageRelationships,
    ImageSummary, SnapshotIdsRequest, SnapshotImageRelationship,
};
use barrack_api::{PageQuery, Pagination};
use barrack_store::Tx;
use barrack_store::images::{self, ImageChange, ImageFilter, ImageRow};
use barrack_store::snapshots::{self, SnapshotRow};

use crate::accounts::{Caller, actor};
use crate::platform::clock::format_ms;
use crate::platform::config::Config;
use crate::platform::idempotency;
use crate::platform::ids::{IdDraws, IdKind, name_taken_as_conflict, new_id};
use crate::platform::labels::{self, Labelled};
use crate::platform::validate::{Validator, check_label};
use crate::storage::snapshots::{
    SnapshotJobAction, SnapshotService, SnapshotState, check_description, clean_description,
    enqueue_job, image_row_of,
};
use crate::{Context, Error, Result};

/// Most snapshot ids one relationships request takes.
pub const MAX_RELATIONSHIP_IDS: usize = 100;
/// Images (not deleted) one account may hold.
pub const MAX_IMAGES: u64 = 100;

/// The states of a custom image. `DELETED` images are hidden from lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImageState {
    /// Waiting for its snapshot (asked for with `is_image`).
    Creating,
    Success,
    /// Its snapshot failed.
    Error,
    Deleted,
}

impl ImageState {
    pub const ALL: [ImageState; 4] = [
        ImageState::Creating,
        ImageState::Success,
        ImageState::Error,
        ImageState::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ImageState::Creating => "CREATING",
            ImageState::Success => "SUCCESS",
            ImageState::Error => "ERROR",
            ImageState::Deleted => "DELETED",
        }
    }

    pub fn parse(s: &str) -> Option<ImageState> {
        ImageState::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the image needs its snapshot's disk (to boot from, or once its snapshot succeeds).
    pub fn holds_disk(self) -> bool {
        matches!(self, ImageState::Creating | ImageState::Success)
    }
}

impl fmt::Display for ImageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone)]
pub struct ImageService {
    context: Arc<Context>,
}

impl ImageService {
    pub fn new(context: Arc<Context>) -> ImageService {
        ImageService { context }
    }

    fn snapshots(&self) -> SnapshotService {
        SnapshotService::new(self.context.clone())
    }

    /// `POST /api/images/`: fields (400), the snapshot (404; of the caller's tier, 400; `SUCCESS`, 409),
    /// then the name's uniqueness among images (409). The image is ready at once, in the snapshot's
    /// region.
    pub async fn create(&self, caller: &Caller, request: CreateImageRequest) -> Result<Image> {
        let name = request.name.trim().to_string();
        let description = clean_description(request.description);
        let snapshot_id = request.snapshot_id.trim().to_string();
        let mut v = Validator::new();
        check_label(&mut v, "name", &name);
        check_not_os_image(&mut v, &self.context.config, "name", &name);
        check_description(&mut v, description.as_deref());
        v.check(
            !snapshot_id.is_empty(),
            "snapshot_id",
            "snapshot_id is required",
        );
        labels::check_labels(&mut v, "labels", &request.labels);
        v.finish()?;
        for _ in 0..5 {
            let snapshot = self.snapshots().owned(caller, &snapshot_id).await?;
            if snapshot.tier != caller.tier.as_str() {
                return Err(Error::field(
                    "snapshot_id",
                    format!(
                        "Snapshot {} is in the {} tier; your API key or session acts in the {} tier",
                        snapshot.id, snapshot.tier, caller.tier
                    ),
                ));
            }
            let state = crate::storage::snapshots::parse_state(&snapshot.status)?;
            if state != SnapshotState::Success {
                return Err(Error::conflict(
                    "INVALID_STATE",
                    format!(
                        "Cannot make an image of a snapshot in state {state}; it must be SUCCESS"
                    ),
                ));
            }
            let now = self.context.clock.now_ms();
            let mut row = image_row_of(
                &snapshot,
                new_id(IdKind::Image),
                name.clone(),
                description.clone(),
                ImageState::Success,
                now,
            );
            let mut tx = self.context.store.begin().await?;
            // The account first, as every path that takes both does.
            barrack_store::firewalls::lock_account(&mut tx, caller.account_id()).await?;
            // The snapshot cannot be deleted before the image that refers to its disk is written.
            if !snapshots::hold(&mut tx, &snapshot.id, snapshot.generation).await? {
                continue;
            }
            insert_image(
                &mut tx,
                &mut row,
                &actor(caller),
                &format!("image of snapshot {} requested", snapshot.id),
                now,
            )
            .await?;
            labels::write(
                &mut tx,
                Labelled::Image,
                &row.id,
                &row.account_id,
                &request.labels,
            )
            .await?;
            let mut image = view(row);
            image.labels = request.labels.clone();
            idempotency::commit(tx, &image).await?;
            return Ok(image);
        }
        Err(Error::conflict(
            "CONFLICT",
            "The snapshot is changing; try again",
        ))
    }

    /// `GET /api/images/`.
    pub async fn list(
        &self,
        caller: &Caller,
        query: ImageQuery,
        label_filters: &[String],
    ) -> Result<ImageList> {
        let page = PageQuery {
            page: query.page,
            limit: query.limit,
        }
        .validate()
        .map_err(|(field, message)| Error::field(field, message))?;
        let status = match &query.status {
            Some(status) => Some(
                ImageState::parse(status)
                    .ok_or_else(|| {
                        Error::field(
                            "status",
                            crate::platform::validate::unknown_status(
                                status,
                                &ImageState::ALL.map(ImageState::as_str),
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
        let filter = ImageFilter {
            status,
            region: query.region,
            labels: labels::selectors(label_filters)?,
        };
        let (rows, total) = self
            .context
            .store
            .images(caller.account_id(), &filter, page.offset(), page.limit)
            .await?;
        let mut images: Vec<Image> = rows.into_iter().map(view).collect();
        labels::fill(&self.context.store, Labelled::Image, &mut images).await?;
        Ok(ImageList {
            images,
            pagination: Pagination::new(page, total),
        })
    }

    /// `GET /api/images/{id}/`.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Image> {
        let mut image = [view(self.owned(caller, id).await?)];
        labels::fill(&self.context.store, Labelled::Image, &mut image).await?;
        let [image] = image;
        Ok(image)
    }

    /// `DELETE /api/images/{id}/`: a `SUCCESS` or `ERROR` image, at once. When its snapshot is deleted
    /// already, the snapshot's disk is freed once no other image (and no instance being created) needs it.
    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<ImageAction> {
        for _ in 0..5 {
            let row = self.owned(caller, id).await?;
            let state = parse_state(&row.status)?;
            if !matches!(state, ImageState::Success | ImageState::Error) {
                return Err(Error::conflict(
                    "INVALID_STATE",
                    format!(
                        "Cannot delete an image in state {state}; it must be SUCCESS or ERROR (its snapshot is still being taken)"
                    ),
                ));
            }
            let now = self.context.clock.now_ms();
            let mut tx = self.context.store.begin().await?;
            let change = ImageChange {
                status: Some(ImageState::Deleted.as_str().into()),
                deleted_at: Some(now),
                ..Default::default()
            };
            if !images::update(&mut tx, &row.id, row.generation, &change, now).await? {
                continue;
            }
            record_event(
                &mut tx,
                &row,
                Some(state),
                ImageState::Deleted,
                &actor(caller),
                "delete requested",
                row.generation + 1,
                now,
            )
            .await?;
            let snapshot_gone = snapshots::get(&mut tx, &row.snapshot_id)
                .await?
                .and_then(|s| SnapshotState::parse(&s.status))
                .is_none_or(|s| !s.holds_disk());
            if snapshot_gone {
                let max_attempts = i64::from(self.context.config.jobs.max_attempts);
                enqueue_job(
                    &mut tx,
                    &row.snapshot_id,
                    SnapshotJobAction::Release,
                    0,
                    max_attempts,
                    now,
                )
                .await?;
            }
            tx.commit().await.map_err(Error::internal)?;
            self.context.work.notify_one();
            return Ok(ImageAction {
                image_id: row.id,
                action: "delete".into(),
                status: ImageState::Deleted.as_str().into(),
                target_status: ImageState::Deleted.as_str().into(),
            });
        }
        Err(Error::conflict(
            "CONFLICT",
            "The image is changing; try again",
        ))
    }

    /// `GET /api/snapshots/{id}/image-relationship/`.
    pub async fn relationship(
        &self,
        caller: &Caller,
        snapshot_id: &str,
    ) -> Result<SnapshotImageRelationship> {
        let snapshot = self.snapshots().owned(caller, snapshot_id).await?;
        let images = self
            .context
            .store
            .images_of_snapshots(std::slice::from_ref(&snapshot.id))
            .await?;
        Ok(relationship_of(&snapshot, &images))
    }

    /// `POST /api/snapshots/image-relationships/`: the relationships of up to
    /// [`MAX_RELATIONSHIP_IDS`] snapshots; ids the account has no snapshot for are reported, not errors.
    pub async fn relationships(
        &self,
        caller: &Caller,
        request: SnapshotIdsRequest,
    ) -> Result<ImageRelationships> {
        let mut v = Validator::new();
        v.check(
            !request.snapshot_ids.is_empty(),
            "snapshot_ids",
            "Give at least one snapshot id",
        );
        v.check(
            request.snapshot_ids.len() <= MAX_RELATIONSHIP_IDS,
            "snapshot_ids",
            format!("At most {MAX_RELATIONSHIP_IDS} ids at once"),
        );
        v.finish()?;
        let mut ids: Vec<String> = Vec::with_capacity(request.snapshot_ids.len());
        for id in request.snapshot_ids {
            let id = id.trim().to_string();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let store = &self.context.store;
        let found: HashMap<String, SnapshotRow> = store
            .snapshots_by_ids(caller.account_id(), &ids)
            .await?
            .into_iter()
            .filter(|s| s.status != SnapshotState::Deleted.as_str())
            .map(|s| (s.id.clone(), s))
            .collect();
        let found_ids: Vec<String> = found.keys().cloned().collect();
        let mut images: HashMap<String, Vec<ImageRow>> = HashMap::new();
        for image in store.images_of_snapshots(&found_ids).await? {
            images
                .entry(image.snapshot_id.clone())
                .or_default()
                .push(image);
        }
        let mut answer = ImageRelationships {
            relationships: Vec::with_capacity(found.len()),
            not_found: Vec::new(),
        };
        for id in ids {
            match found.get(&id) {
                Some(snapshot) => answer.relationships.push(relationship_of(
                    snapshot,
                    images.get(&id).map(Vec::as_slice).unwrap_or_default(),
                )),
                None => answer.not_found.push(id),
            }
        }
        Ok(answer)
    }

    /// Deploy with a custom image's `image_name` (its name, or its id): the caller's image, unless
    /// deleted. `None` when the account has no such image (deploy then reports the name as unknown).
    pub async fn for_deploy(&self, caller: &Caller, name_or_id: &str) -> Result<Option<ImageRow>> {
        let store = &self.context.store;
        let image = match store.image_named(caller.account_id(), name_or_id).await? {
            Some(image) => Some(image),
            None => store.image(caller.account_id(), name_or_id).await?,
        };
        Ok(image.filter(|i| i.status != ImageState::Deleted.as_str()))
    }

    /// The image of the account, unless deleted; 404 otherwise.
    async fn owned(&self, caller: &Caller, id: &str) -> Result<ImageRow> {
        self.context
            .store
            .image(caller.account_id(), id.trim())
            .await?
            .filter(|i| i.status != ImageState::Deleted.as_str())
            .ok_or_else(|| Error::not_found("Image", id))
    }
}

/// A custom image may not take the name of an OS image: deploy's `image_name` would not reach it.
pub(crate) fn check_not_os_image(v: &mut Validator, config: &Config, field: &str, name: &str) {
    v.check(
        !config.os_images.iter().any(|i| i.name == name),
        field,
        format!("'{name}' is the name of an OS image; give the custom image another name"),
    );
}

/// Whether a deploy can boot from `image`: only a `SUCCESS` image (409 otherwise).
pub fn check_bootable(image: &ImageRow) -> Result<()> {
    if image.status == ImageState::Success.as_str() {
        return Ok(());
    }
    Err(Error::conflict(
        "INVALID_STATE",
        format!(
            "Image '{}' is {}; only a SUCCESS image can boot an instance",
            image.name, image.status
        ),
    ))
}

fn relationship_of(snapshot: &SnapshotRow, images: &[ImageRow]) -> SnapshotImageRelationship {
    SnapshotImageRelationship {
        snapshot_id: snapshot.id.clone(),
        snapshot_name: snapshot.name.clone(),
        snapshot_status: snapshot.status.clone(),
        has_images: !images.is_empty(),
        image_count: images.len() as u32,
        images: images
            .iter()
            .map(|i| ImageSummary {
                id: i.id.clone(),
                name: i.name.clone(),
                status: i.status.clone(),
                region: i.region.clone(),
            })
            .collect(),
    }
}

fn view(row: ImageRow) -> Image {
    Image {
        tier: barrack_api::Tier::parse(&row.tier).unwrap_or(barrack_api::Tier::Legacy),
        size_gb: row.storage_gb as u32,
        id: row.id,
        name: row.name,
        description: row.description,
        status: row.status,
        status_reason: row.status_reason,
        region: row.region,
        snapshot_id: row.snapshot_id,
        snapshot_name: row.snapshot_name,
        source_instance_id: row.source_instance_id,
        operating_system: row.operating_system,
        os_volume_type: row.os_volume_type,
        created_at: format_ms(row.created_at),
        updated_at: format_ms(row.updated_at),
        labels: Default::default(),
    }
}

pub(crate) fn parse_state(status: &str) -> Result<ImageState> {
    ImageState::parse(status)
        .ok_or_else(|| Error::internal(format!("unknown image status {status}")))
}

/// Writes a new image and its `created` event. A name the account already uses among images is 409
/// `DUPLICATE_NAME`; a taken id is replaced by a fresh one (read `row.id` after).
pub(crate) async fn insert_image(
    tx: &mut Tx,
    row: &mut ImageRow,
    actor: &str,
    cause: &str,
    now: i64,
) -> Result<()> {
    // Counted and added under the account's lock: concurrent creations cannot pass the limit together.
    barrack_store::firewalls::lock_account(tx, &row.account_id).await?;
    if images::count_live(&mut *tx, &row.account_id).await? >= MAX_IMAGES {
        return Err(Error::conflict(
            "LIMIT_EXCEEDED",
            format!("An account may hold at most {MAX_IMAGES} images"),
        ));
    }
    let mut draws = IdDraws::of("image");
    while !name_taken_as_conflict(images::insert(&mut *tx, row).await, "An image", &row.name)? {
        draws.taken()?;
        row.id = new_id(IdKind::Image);
    }
    let state = parse_state(&row.status)?;
    record_event(tx, row, None, state, actor, cause, row.generation, now).await
}

/// Moves the images still `CREATING` from snapshot `snapshot_id` to `to` (`SUCCESS` or `ERROR`, with
/// `reason`), inside the worker's transaction.
pub(crate) async fn settle_pending(
    tx: &mut Tx,
    snapshot_id: &str,
    to: ImageState,
    reason: Option<&str>,
    cause: &str,
    now: i64,
) -> Result<()> {
    for image in images::of_snapshot(tx, snapshot_id).await? {
        if image.status != ImageState::Creating.as_str() {
            continue;
        }
        let change = ImageChange {
            status: Some(to.as_str().into()),
            status_reason: Some(reason.map(str::to_string)),
            ..Default::default()
        };
        if images::update(tx, &image.id, image.generation, &change, now).await? {
            record_event(
                tx,
                &image,
                Some(ImageState::Creating),
                to,
                "system",
                cause,
                image.generation + 1,
                now,
            )
            .await?;
        }
    }
    Ok(())
}

/// Records an image's state change in the event log; `sequence` is the image's generation after it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_event(
    tx: &mut Tx,
    row: &ImageRow,
    from: Option<ImageState>,
    to: ImageState,
    actor: &str,
    cause: &str,
    sequence: i64,
    now: i64,
) -> Result<()> {
    let from = from.map(ImageState::as_str);
    let event = NewEvent {
        account_id: &row.account_id,
        resource_type: "image",
        resource_id: &row.id,
        kind: events::change_kind(from),
        from,
        to: Some(to.as_str()),
        actor,
        cause,
        sequence,
    };
    events::record(tx, event, now).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for state in ImageState::ALL {
            assert_eq!(ImageState::parse(state.as_str()), Some(state));
        }
        assert!(ImageState::Creating.holds_disk() && !ImageState::Error.holds_disk());
    }
}

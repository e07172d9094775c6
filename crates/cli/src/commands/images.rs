//! `barrack images`: custom images made from snapshots. Deploy from one with
//! `barrack instances deploy --image NAME` in its region.

use barrack_api::images::{CreateImageRequest, Image, ImageQuery, SnapshotImageRelationship};
use barrack_client::LabelledResource;
use clap::Subcommand;

use super::labels::{LabelChanges, change_labels, labels_of, parse_label};
use super::{Ctx, Output, PageArgs};
use crate::error::CliError;
use crate::output::{Table, View, or_dash};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List custom images
    #[command(after_help = "Examples:\n  \
        barrack images list\n  \
        barrack images list --region FINLAND-1 -q")]
    List {
        /// Only images in this region
        #[arg(long)]
        region: Option<String>,
        /// Only images in this state (CREATING, SUCCESS, ERROR)
        #[arg(long)]
        status: Option<String>,
        /// Only images with this label (KEY=VALUE) or label key (KEY), repeatable: all must match
        #[arg(long = "label", value_name = "KEY[=VALUE]")]
        labels: Vec<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a custom image: its region, OS, disk and the snapshot it was made from
    #[command(after_help = "Examples:\n  \
        barrack images show BRK-A1B2C3I\n  \
        barrack images show BRK-A1B2C3I -o json")]
    Show {
        /// The image's id (BRK-...I)
        id: String,
    },
    /// Make a custom image from a SUCCESS snapshot (it boots instances in the snapshot's region)
    #[command(after_help = "Example:\n  \
        barrack images create --snapshot BRK-A1B2C3S --name golden --description 'CUDA + drivers'")]
    Create {
        /// Label the image, repeatable
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// The snapshot's id (BRK-...S)
        #[arg(long)]
        snapshot: String,
        /// Unique name among your images, used as --image at deploy
        #[arg(long)]
        name: String,
        /// A description of up to 255 characters
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a custom image (instances booted from it are not affected)
    #[command(after_help = "Example:\n  barrack images delete BRK-A1B2C3I")]
    Delete {
        /// The image's id (BRK-...I)
        id: String,
    },
    /// Show which custom images were made from snapshots
    #[command(after_help = "Examples:\n  \
        barrack images relationship BRK-A1B2C3S\n  \
        barrack images relationship BRK-A1B2C3S BRK-D4E5F6S -o json")]
    Relationship {
        /// Snapshot ids (BRK-...S)
        #[arg(required = true)]
        snapshot_ids: Vec<String>,
        /// Ask for all of them at once, reporting ids without a snapshot (the default for several ids)
        #[arg(long)]
        batch: bool,
    },
    /// Set or remove an image's labels
    #[command(after_help = "Example:\n  barrack images labels ID --set team=ml --remove env")]
    Labels {
        /// The image's id (BRK-...I)
        id: String,
        #[command(flatten)]
        changes: LabelChanges,
    },
}

pub async fn run(command: Command, ctx: &Ctx) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        Command::List {
            labels,
            region,
            status,
            page,
        } => {
            let page = page.query();
            let query = ImageQuery {
                page: page.page,
                limit: page.limit,
                region,
                status,
            };
            let data = ctx
                .call(client.images_labelled(&query, &labels))
                .await?
                .data;
            let mut table = Table::new(
                &["ID", "NAME", "STATUS", "REGION", "DISK", "SNAPSHOT", "OS"],
                "No custom images.",
            );
            for i in &data.images {
                table.row([
                    i.id.clone(),
                    i.name.clone(),
                    i.status.clone(),
                    i.region.clone(),
                    format!("{} GB", i.size_gb),
                    i.snapshot_id.clone(),
                    or_dash(i.operating_system.as_ref()),
                ]);
            }
            let view = super::paged(table, &data.pagination);
            let ids: Vec<String> = data.images.iter().map(|i| i.id.clone()).collect();
            Ok(Output::new(&data, view).ids(ids))
        }
        Command::Labels { id, changes } => {
            change_labels(ctx, LabelledResource::Images, &id, changes).await
        }
        Command::Show { id } => {
            let data = ctx.call(client.image(&id)).await?.data;
            Ok(image_output(&data))
        }
        Command::Create {
            labels,
            snapshot,
            name,
            description,
        } => {
            let request = CreateImageRequest {
                snapshot_id: snapshot,
                name,
                description,
                labels: labels_of(labels),
            };
            let data = ctx.call(client.create_image(&request)).await?.data;
            let notice = format!(
                "Deploy from it with `barrack instances deploy --image '{}' --region {} ...`.",
                data.name, data.region
            );
            Ok(image_output(&data).notice(notice))
        }
        Command::Delete { id } => {
            let data = ctx.call(client.delete_image(&id)).await?.data;
            let view = View::Text(format!("Image {}: {}d", data.image_id, data.action));
            Ok(Output::new(&data, view).ids([data.image_id.clone()]))
        }
        Command::Relationship {
            snapshot_ids,
            batch,
        } => {
            if snapshot_ids.len() == 1 && !batch {
                let data = ctx
                    .call(client.snapshot_image_relationship(&snapshot_ids[0]))
                    .await?
                    .data;
                let view = View::Table(relationship_table(std::slice::from_ref(&data)));
                let ids = image_ids(std::slice::from_ref(&data));
                return Ok(Output::new(&data, view).ids(ids));
            }
            let data = ctx
                .call(client.snapshot_image_relationships(&snapshot_ids))
                .await?
                .data;
            let view = View::Table(relationship_table(&data.relationships));
            let ids = image_ids(&data.relationships);
            let output = Output::new(&data, view).ids(ids);
            // Ids not found fail the command, as one id does: on stderr after what was found (exit 4).
            if data.not_found.is_empty() {
                Ok(output)
            } else {
                Ok(output.failure(CliError::ids_not_found("snapshot", &data.not_found)))
            }
        }
    }
}

/// A row per image (a snapshot without images gets one row saying so).
fn relationship_table(relationships: &[SnapshotImageRelationship]) -> Table {
    let mut table = Table::new(
        &["SNAPSHOT", "SNAPSHOT STATUS", "IMAGE", "NAME", "STATUS"],
        "No snapshots.",
    );
    for r in relationships {
        if r.images.is_empty() {
            table.row([
                r.snapshot_id.clone(),
                r.snapshot_status.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for i in &r.images {
            table.row([
                r.snapshot_id.clone(),
                r.snapshot_status.clone(),
                i.id.clone(),
                i.name.clone(),
                i.status.clone(),
            ]);
        }
    }
    table
}

fn image_ids(relationships: &[SnapshotImageRelationship]) -> Vec<String> {
    relationships
        .iter()
        .flat_map(|r| r.images.iter().map(|i| i.id.clone()))
        .collect()
}

fn image_output(i: &Image) -> Output {
    let status = match &i.status_reason {
        Some(reason) => format!("{} ({reason})", i.status),
        None => i.status.clone(),
    };
    let view = View::Fields(vec![
        ("ID", i.id.clone()),
        ("Name", i.name.clone()),
        ("Description", or_dash(i.description.as_ref())),
        ("Status", status),
        ("Region", format!("{} ({})", i.region, i.tier)),
        ("OS", or_dash(i.operating_system.as_ref())),
        ("Disk", format!("{} GB {}", i.size_gb, i.os_volume_type)),
        (
            "Snapshot",
            format!("{} ({})", i.snapshot_id, i.snapshot_name),
        ),
        ("Source instance", i.source_instance_id.clone()),
        ("Created", i.created_at.clone()),
        ("Updated", i.updated_at.clone()),
    ]);
    Output::new(i, view).ids([i.id.clone()])
}

//! `barrack snapshots`: snapshots of running instances' disks. Take one (the instance keeps running),
//! list, show, delete, and restore one into a new instance with the same specs and disk.

use barrack_api::snapshots::{CreateSnapshotRequest, Snapshot, SnapshotQuery};
use barrack_client::LabelledResource;
use clap::Subcommand;

use super::instances::{deployed_output, instance_output, resolve, timeout};
use super::labels::{LabelChanges, change_labels, labels_of, parse_label};
use super::{Ctx, Output, PageArgs};
use crate::error::CliError;
use crate::output::{Table, View, money, or_dash, yes_no};
use crate::wait::{self, WaitArgs};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List snapshots
    #[command(after_help = "Examples:\n  \
        barrack snapshots list\n  \
        barrack snapshots list --instance BRK-A1B2C3D --status SUCCESS -q")]
    List {
        /// Only snapshots in this region
        #[arg(long)]
        region: Option<String>,
        /// Only snapshots in this state (CREATING, SUCCESS, ERROR, DELETING)
        #[arg(long)]
        status: Option<String>,
        /// Only snapshots of this instance (its id or name)
        #[arg(long)]
        instance: Option<String>,
        /// Only snapshots with this label (KEY=VALUE) or label key (KEY), repeatable: all must match
        #[arg(long = "label", value_name = "KEY[=VALUE]")]
        labels: Vec<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a snapshot: status, price, and the configuration of the instance it was taken of
    #[command(after_help = "Examples:\n  \
        barrack snapshots show BRK-A1B2C3S\n  \
        barrack snapshots show BRK-A1B2C3S -o json")]
    Show {
        /// The snapshot's id (BRK-...S)
        id: String,
    },
    /// Take a snapshot of an ACTIVE instance, which keeps running
    #[command(after_help = "Examples:\n  \
        barrack snapshots create --instance BRK-A1B2C3D --name nightly\n  \
        barrack snapshots create --instance BRK-A1B2C3D --name golden --image --description 'CUDA + drivers'")]
    Create {
        /// Label the snapshot, repeatable
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// The instance (its id or name); it must be ACTIVE
        #[arg(long)]
        instance: String,
        /// Unique name: letters, digits, spaces, hyphens, underscores, dots
        #[arg(long)]
        name: String,
        /// A description of up to 255 characters
        #[arg(long)]
        description: Option<String>,
        /// Also make a custom image of the same name once the snapshot succeeds
        #[arg(long)]
        image: bool,
    },
    /// Delete a snapshot (instances restored from it and images made from it are not affected)
    #[command(after_help = "Example:\n  barrack snapshots delete BRK-A1B2C3S")]
    Delete {
        /// The snapshot's id (BRK-...S)
        id: String,
    },
    /// Restore a SUCCESS snapshot into a new instance with its specs and disk
    #[command(after_help = "Examples:\n  \
        barrack snapshots restore BRK-A1B2C3S --wait\n  \
        barrack snapshots restore BRK-A1B2C3S --name trainer-2 -q")]
    Restore {
        /// The snapshot's id (BRK-...S)
        id: String,
        /// The new instance's name [default: the snapshot's name followed by -restored]
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Set or remove a snapshot's labels
    #[command(after_help = "Example:\n  barrack snapshots labels ID --set team=ml --remove env")]
    Labels {
        /// The snapshot's id (BRK-...S)
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
            instance,
            page,
        } => {
            let page = page.query();
            let instance_id = match instance {
                Some(target) => Some(resolve(ctx, &target).await?),
                None => None,
            };
            let query = SnapshotQuery {
                page: page.page,
                limit: page.limit,
                region,
                status,
                instance_id,
            };
            let data = ctx
                .call(client.snapshots_labelled(&query, &labels))
                .await?
                .data;
            let mut table = Table::new(
                &[
                    "ID", "NAME", "STATUS", "INSTANCE", "REGION", "GPUS", "DISK", "IMAGES",
                    "CREATED",
                ],
                "No snapshots.",
            );
            for s in &data.snapshots {
                table.row([
                    s.id.clone(),
                    s.name.clone(),
                    s.status.clone(),
                    s.instance_id.clone(),
                    s.region.clone(),
                    format!("{}×{}", s.source.gpu_model, s.source.gpu_count),
                    format!("{} GB", s.source.storage_gb),
                    s.image_count.to_string(),
                    s.created_at.clone(),
                ]);
            }
            let view = super::paged(table, &data.pagination);
            let ids: Vec<String> = data.snapshots.iter().map(|s| s.id.clone()).collect();
            Ok(Output::new(&data, view).ids(ids))
        }
        Command::Labels { id, changes } => {
            change_labels(ctx, LabelledResource::Snapshots, &id, changes).await
        }
        Command::Show { id } => {
            let data = ctx.call(client.snapshot(&id)).await?.data;
            Ok(snapshot_output(&data))
        }
        Command::Create {
            labels,
            instance,
            name,
            description,
            image,
        } => {
            let request = CreateSnapshotRequest {
                instance_id: resolve(ctx, &instance).await?,
                name,
                description,
                is_image: image,
                labels: labels_of(labels),
            };
            let data = ctx.call(client.create_snapshot(&request)).await?.data;
            Ok(snapshot_output(&data).notice(
                "The snapshot is being taken: `barrack snapshots show` follows its status.",
            ))
        }
        Command::Delete { id } => {
            let data = ctx.call(client.delete_snapshot(&id)).await?.data;
            let view = View::Text(format!(
                "Snapshot {}: {} started ({}, then {})",
                data.snapshot_id, data.action, data.status, data.target_status
            ));
            Ok(Output::new(&data, view).ids([data.snapshot_id.clone()]))
        }
        Command::Restore { id, name, wait } => {
            let deployed = ctx
                .call(client.restore_snapshot(&id, name.as_deref()))
                .await?
                .data;
            let instance_id = deployed.instance_id.clone();
            if wait.wait {
                let instance =
                    wait::until_resting(ctx, &instance_id, "ACTIVE", timeout(&wait)).await?;
                return Ok(instance_output(instance));
            }
            Ok(deployed_output(deployed).notice(format!(
                "Follow it with `barrack instances show {instance_id}`, or restore with --wait."
            )))
        }
    }
}

fn snapshot_output(s: &Snapshot) -> Output {
    let status = match &s.status_reason {
        Some(reason) => format!("{} ({reason})", s.status),
        None => s.status.clone(),
    };
    let source = &s.source;
    let instance = match &source.instance_status {
        Some(state) => format!("{} ({}, {state})", source.instance_id, source.instance_name),
        None => format!("{} ({})", source.instance_id, source.instance_name),
    };
    let view = View::Fields(vec![
        ("ID", s.id.clone()),
        ("Name", s.name.clone()),
        ("Description", or_dash(s.description.as_ref())),
        ("Status", status),
        ("Region", format!("{} ({})", s.region, s.tier)),
        ("Instance", instance),
        ("GPUs", format!("{}×{}", source.gpu_model, source.gpu_count)),
        (
            "Shape",
            format!("{} vCPUs, {} GB RAM", source.vcpus, source.ram_gb),
        ),
        (
            "OS disk",
            format!("{} GB {}", source.storage_gb, source.os_volume_type),
        ),
        ("OS", or_dash(source.operating_system.as_ref())),
        ("Image requested", yes_no(s.is_image)),
        ("Images", s.image_count.to_string()),
        (
            "Price",
            format!(
                "{} {}/hour ({} GB)",
                money(s.hourly_rate.0),
                s.currency,
                s.size_gb
            ),
        ),
        ("Created", s.created_at.clone()),
        ("Updated", s.updated_at.clone()),
    ]);
    Output::new(s, view).ids([s.id.clone()])
}

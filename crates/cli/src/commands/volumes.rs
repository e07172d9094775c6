//! `barrack volumes`: block storage. Create, grow, clone and delete volumes, and attach them to running
//! instances. Operations finish in the background: `show` follows a volume's status.

use barrack_api::volumes::{
    CreateVolumeRequest, Volume, VolumeAction, VolumeAttachmentChange, VolumeQuery,
};
use barrack_client::LabelledResource;
use clap::Subcommand;

use super::labels::{LabelChanges, change_labels, labels_of, parse_label};
use super::{Ctx, Output, PageArgs};
use crate::error::CliError;
use crate::output::{Table, View, money, or_dash, yes_no};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List volumes
    #[command(after_help = "Examples:\n  \
        barrack volumes list\n  \
        barrack volumes list --region FINLAND-1 --status available -q")]
    List {
        /// Only volumes in this region
        #[arg(long)]
        region: Option<String>,
        /// Only volumes in this state (creating, available, in-use, error, ...)
        #[arg(long)]
        status: Option<String>,
        /// Only volumes with this label (KEY=VALUE) or label key (KEY), repeatable: all must match
        #[arg(long = "label", value_name = "KEY[=VALUE]")]
        labels: Vec<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a volume: status, size, price and the instance it is attached to
    #[command(after_help = "Examples:\n  \
        barrack volumes show BRK-A1B2C3V\n  \
        barrack volumes show BRK-A1B2C3V -o json")]
    Show {
        /// The volume's id (BRK-...V)
        id: String,
    },
    /// Create a volume (a data volume, or a bootable one with --bootable and --image)
    #[command(after_help = "Examples:\n  \
        barrack volumes create --name datasets --size 500 --region FINLAND-1 --type NVMe\n  \
        barrack volumes create --size 100 --region CANADA-1 --type SSD \\\n    \
        --bootable --image 'Ubuntu Server 22.04 LTS R550 CUDA 12.4'")]
    Create {
        /// Label the volume, repeatable
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Unique name: letters, digits, spaces, hyphens, underscores, dots [default: the next free
        /// volumeN]
        #[arg(long)]
        name: Option<String>,
        /// Size in GB (at least 10; 100 for a bootable volume)
        #[arg(long)]
        size: u32,
        /// A region of your key's tier
        #[arg(long)]
        region: String,
        /// A volume type of your key's tier (see `barrack volumes types`)
        #[arg(long = "type", value_name = "TYPE")]
        volume_type: String,
        /// Make the volume bootable, with --image on it
        #[arg(long, requires = "image")]
        bootable: bool,
        /// The OS image of a bootable volume
        #[arg(long, requires = "bootable")]
        image: Option<String>,
    },
    /// Delete a detached volume and its data
    #[command(after_help = "Example:\n  barrack volumes delete BRK-A1B2C3V")]
    Delete {
        /// The volume's id (BRK-...V)
        id: String,
    },
    /// Grow a volume (volumes never shrink)
    #[command(after_help = "Example:\n  barrack volumes resize BRK-A1B2C3V --size 1000")]
    Resize {
        /// The volume's id (BRK-...V)
        id: String,
        /// The new size in GB, larger than the current one
        #[arg(long)]
        size: u32,
    },
    /// Copy a volume into a new one of the same size, type and region
    #[command(after_help = "Example:\n  barrack volumes clone BRK-A1B2C3V --name datasets-copy")]
    Clone {
        /// The volume's id (BRK-...V)
        id: String,
        /// The new volume's name
        #[arg(long)]
        name: String,
    },
    /// List volume types with their tier, price and size limits
    #[command(after_help = "Example:\n  barrack volumes types")]
    Types,
    /// Attach volumes to an ACTIVE instance in their region
    #[command(after_help = "Example:\n  \
        barrack volumes attach --instance BRK-A1B2C3D BRK-A1B2C3V BRK-D4E5F6V")]
    Attach {
        /// The instance's id (BRK-...D)
        #[arg(long)]
        instance: String,
        /// Volume ids (BRK-...V)
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Detach volumes from an ACTIVE instance (not its boot volume)
    #[command(after_help = "Example:\n  barrack volumes detach --instance BRK-A1B2C3D BRK-A1B2C3V")]
    Detach {
        /// The instance's id (BRK-...D)
        #[arg(long)]
        instance: String,
        /// Volume ids (BRK-...V)
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Set or remove a volume's labels
    #[command(after_help = "Example:\n  barrack volumes labels ID --set team=ml --remove env")]
    Labels {
        /// The volume's id (BRK-...V)
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
            let query = VolumeQuery {
                page: page.page,
                limit: page.limit,
                region,
                status,
            };
            let data = ctx
                .call(client.volumes_labelled(&query, &labels))
                .await?
                .data;
            let mut table = Table::new(
                &[
                    "ID", "NAME", "STATUS", "SIZE", "TYPE", "REGION", "BOOT", "INSTANCE",
                ],
                "No volumes.",
            );
            for v in &data.volumes {
                table.row([
                    v.id.clone(),
                    v.name.clone(),
                    v.status.clone(),
                    format!("{} GB", v.size_gb),
                    v.volume_type.clone(),
                    v.region.clone(),
                    yes_no(v.bootable),
                    or_dash(v.attachment.as_ref().map(|a| &a.instance_id)),
                ]);
            }
            let view = super::paged(table, &data.pagination);
            let ids: Vec<String> = data.volumes.iter().map(|v| v.id.clone()).collect();
            Ok(Output::new(&data, view).ids(ids))
        }
        Command::Labels { id, changes } => {
            change_labels(ctx, LabelledResource::Volumes, &id, changes).await
        }
        Command::Show { id } => {
            let data = ctx.call(client.volume(&id)).await?.data;
            Ok(volume_output(&data))
        }
        Command::Create {
            labels,
            name,
            size,
            region,
            volume_type,
            bootable,
            image,
        } => {
            let name = match name {
                Some(name) => name,
                None => {
                    let query = VolumeQuery {
                        limit: Some(1),
                        ..Default::default()
                    };
                    ctx.call(client.volumes(&query))
                        .await?
                        .data
                        .next_volume_name
                }
            };
            let request = CreateVolumeRequest {
                name,
                size,
                region,
                volume_type,
                bootable,
                image_name: image,
                labels: labels_of(labels),
            };
            let data = ctx.call(client.create_volume(&request)).await?.data;
            Ok(volume_output(&data)
                .notice("The volume is being created: `barrack volumes show` follows its status."))
        }
        Command::Delete { id } => {
            let data = ctx.call(client.delete_volume(&id)).await?.data;
            Ok(action_output(&data))
        }
        Command::Resize { id, size } => {
            let data = ctx.call(client.resize_volume(&id, size)).await?.data;
            Ok(action_output(&data))
        }
        Command::Clone { id, name } => {
            let data = ctx.call(client.clone_volume(&id, &name)).await?.data;
            Ok(volume_output(&data))
        }
        Command::Types => {
            let data = ctx.call(client.volume_types()).await?.data;
            let mut table = Table::new(
                &[
                    "TYPE",
                    "TIER",
                    "USD",
                    "EUR",
                    "INR",
                    "SIZES (GB)",
                    "DESCRIPTION",
                ],
                "No volume types.",
            );
            for t in &data.volume_types {
                let price = |c| {
                    t.prices
                        .get(&c)
                        .map(|a| money(a.0))
                        .unwrap_or_else(|| "-".into())
                };
                table.row([
                    t.name.clone(),
                    t.tier.to_string(),
                    price(barrack_api::Currency::USD),
                    price(barrack_api::Currency::EUR),
                    price(barrack_api::Currency::INR),
                    format!(
                        "{}-{} (bootable {}+)",
                        t.minimum_size_gb, t.maximum_size_gb, t.minimum_bootable_size_gb
                    ),
                    t.description.clone(),
                ]);
            }
            let names: Vec<String> = data.volume_types.iter().map(|t| t.name.clone()).collect();
            Ok(Output::new(&data, View::Table(table))
                .ids(names)
                .notice("Prices are per TB (1024 GB) per hour."))
        }
        Command::Attach { instance, ids } => {
            let data = ctx.call(client.attach_volumes(&instance, &ids)).await?.data;
            Ok(attachment_output(&data))
        }
        Command::Detach { instance, ids } => {
            let data = ctx.call(client.detach_volumes(&instance, &ids)).await?.data;
            Ok(attachment_output(&data))
        }
    }
}

fn volume_output(v: &Volume) -> Output {
    let status = match &v.status_reason {
        Some(reason) => format!("{} ({reason})", v.status),
        None => v.status.clone(),
    };
    let attachment = match &v.attachment {
        Some(a) => format!(
            "{} ({}, {}){}",
            a.instance_id,
            a.instance_name,
            a.instance_status,
            if a.boot_volume { ", boot volume" } else { "" }
        ),
        None => "-".into(),
    };
    let bootable = match &v.image_name {
        Some(image) if v.bootable => format!("yes ({image})"),
        _ => yes_no(v.bootable),
    };
    let view = View::Fields(vec![
        ("ID", v.id.clone()),
        ("Name", v.name.clone()),
        ("Status", status),
        ("Size", format!("{} GB", v.size_gb)),
        ("Type", v.volume_type.clone()),
        ("Region", format!("{} ({})", v.region, v.tier)),
        ("Bootable", bootable),
        ("Attached to", attachment),
        ("Cloned from", or_dash(v.source_volume_id.as_ref())),
        (
            "Price",
            format!("{} {}/hour", money(v.hourly_rate.0), v.currency),
        ),
        ("Created", v.created_at.clone()),
        ("Updated", v.updated_at.clone()),
    ]);
    Output::new(v, view).ids([v.id.clone()])
}

fn action_line(a: &VolumeAction) -> String {
    let size = a.size_gb.map(|s| format!(" to {s} GB")).unwrap_or_default();
    format!(
        "Volume {}: {}{size} started ({}, then {})",
        a.volume_id, a.action, a.status, a.target_status
    )
}

fn action_output(a: &VolumeAction) -> Output {
    Output::new(a, View::Text(action_line(a))).ids([a.volume_id.clone()])
}

fn attachment_output(change: &VolumeAttachmentChange) -> Output {
    let lines: Vec<String> = change
        .volumes
        .iter()
        .map(|a| format!("{} (instance {})", action_line(a), change.instance_id))
        .collect();
    let ids: Vec<String> = change.volumes.iter().map(|a| a.volume_id.clone()).collect();
    Output::new(change, View::Text(lines.join("\n"))).ids(ids)
}

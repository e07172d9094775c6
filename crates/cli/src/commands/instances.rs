//! `barrack instances`: deploy GPU instances and take them through their lifecycle.
//!
//! Commands that act on one instance take its id or its name, so people can type the name they chose and
//! scripts can pass the id they stored. Operations finish in the background; `--wait` follows them.

use std::path::PathBuf;
use std::time::Duration;

use barrack_api::instances::{
    DeployRequest, DeployedInstance, Instance, InstanceAction, InstanceMetrics, InstanceQuery,
    NewVolumeRequest, OsVolumeRequest, Preflight, SecurityRule, SecurityRuleRequest, Specs,
};
use barrack_api::labels::InstancePatch;
use barrack_client::{InstanceActionKind, LabelledResource};
use clap::Subcommand;

use super::events::events_output;
use super::labels::{LabelChanges, change_labels, labels_of, labels_text, parse_label, parse_ttl};
use super::{Ctx, Output, PageArgs, read_input_file};
use crate::error::CliError;
use crate::output::{Table, View, money, or_dash, yes_no};
use crate::wait::{self, WaitArgs};

/// The account `barrack instances ssh` signs in as on Barrack's OS images.
const DEFAULT_SSH_USER: &str = "ubuntu";

/// The deploy examples and the rule syntax, which the one-line flag help has no room for.
const DEPLOY_HELP: &str = "\
Examples:
  barrack instances deploy --name trainer --gpu-model H100-SXM5-80GB --region FINLAND-1 \\
    --image 'Ubuntu 24.04 + CUDA 12.8 Open + Docker' --ssh-key laptop --wait
  barrack instances deploy --name web --gpu-model RTX-A6000 --gpu-count 2 --region CANADA-1 \\
    --image 'Ubuntu Server 22.04 LTS R550 CUDA 12.4' --ssh-key laptop \\
    --rule ingress:tcp:22:0.0.0.0/0 --rule egress:any --cloud-init user-data.yaml --os-volume-size 200
  barrack instances deploy --name restored --gpu-model L40 --region CANADA-1 \\
    --volume-id BRK-A1B2C3V --boot-from-volume --no-public-ip
  barrack instances deploy --name trainer --gpu-model H100-SXM5-80GB --region FINLAND-1 \\
    --image 'Ubuntu 24.04 + CUDA 12.8 Open + Docker' --ssh-key laptop --preflight --hold
  barrack instances deploy --name trainer --gpu-model H100-SXM5-80GB --region FINLAND-1 \\
    --image 'Ubuntu 24.04 + CUDA 12.8 Open + Docker' --ssh-key laptop --hold-id hold-...

Security rules (--rule), DIRECTION[:PROTOCOL[:PORTS[:REMOTE]]]:
  DIRECTION  ingress or egress
  PROTOCOL   tcp, udp, icmp, another IP protocol name or number; empty or `any` for every protocol
  PORTS      22 or 8000-8100 (tcp, udp and the like only); empty or `any` for every port
  REMOTE     a CIDR such as 203.0.113.0/24 (an IPv6 one makes an IPv6 rule); empty for anywhere";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploy an instance from an OS image (or a bootable volume)
    #[command(after_help = DEPLOY_HELP)]
    Deploy(Box<DeployArgs>),
    /// Give back the GPUs and address a `deploy --preflight --hold` reserved, before it expires
    #[command(
        name = "release-hold",
        after_help = "Example:\n  barrack instances release-hold hold-0a1B2c3D4e5F6g7H8i9J"
    )]
    ReleaseHold {
        /// The hold's id
        #[arg(value_name = "HOLD_ID")]
        hold_id: String,
    },
    /// List instances
    #[command(after_help = "Examples:\n  \
        barrack instances list\n  \
        barrack instances list --status ACTIVE --region FINLAND-1\n  \
        barrack instances list --name train -q")]
    List(ListArgs),
    /// Show an instance: state, address, specs, price and security rules
    #[command(after_help = "Examples:\n  \
        barrack instances show trainer\n  \
        barrack instances show BRK-A1B2C3D -o json")]
    Show(Target),
    /// Start a stopped instance
    #[command(after_help = "Example:\n  barrack instances start trainer --wait")]
    Start(ActionArgs),
    /// Stop an instance; it keeps its GPUs and disk, and is billed as when running
    #[command(after_help = "Example:\n  barrack instances stop trainer --wait --timeout 120")]
    Stop(ActionArgs),
    /// Reboot a running instance
    #[command(after_help = "Example:\n  barrack instances reboot trainer --wait")]
    Reboot(ActionArgs),
    /// Hibernate an instance: its GPUs are released and it is billed at the reduced rate
    #[command(after_help = "Example:\n  barrack instances hibernate trainer --wait")]
    Hibernate(ActionArgs),
    /// Restore a hibernated instance onto free GPUs
    #[command(after_help = "Example:\n  barrack instances restore trainer --wait")]
    Restore(ActionArgs),
    /// Delete an instance and its OS volume
    #[command(after_help = "Examples:\n  \
        barrack instances delete trainer\n  \
        barrack instances delete BRK-A1B2C3D --wait")]
    Delete(ActionArgs),
    /// Give an instance a public IP address, or take it away
    #[command(
        name = "toggle-ip",
        after_help = "Example:\n  barrack instances toggle-ip trainer"
    )]
    ToggleIp(Target),
    /// Count hibernated instances and what they cost per hour
    #[command(after_help = "Example:\n  barrack instances hibernated")]
    Hibernated,
    /// List instances a snapshot can be taken of
    #[command(after_help = "Example:\n  barrack instances snapshot-eligible -q")]
    SnapshotEligible(PageArgs),
    /// List an instance's events: state changes and who caused them
    #[command(after_help = "Examples:\n  \
        barrack instances events trainer\n  \
        barrack instances events BRK-A1B2C3D --page 2")]
    Events {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Set, change or end an instance's lease (it deletes or hibernates itself at the end)
    #[command(after_help = "Examples:\n  \
        barrack instances lease trainer --ttl 2h --on-expiry hibernate\n  \
        barrack instances lease trainer --expires-at 2025-01-15T18:00:00Z\n  \
        barrack instances lease trainer --clear")]
    Lease {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        lease: LeaseArgs,
        /// End the lease: the instance stays
        #[arg(long, conflicts_with_all = ["ttl", "expires_at", "on_expiry"])]
        clear: bool,
    },
    /// Set or remove an instance's labels
    #[command(
        after_help = "Example:\n  barrack instances labels trainer --set team=ml --remove env"
    )]
    Labels {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        changes: LabelChanges,
    },
    /// Show an instance's utilisation: CPU, memory, network, disk and GPU
    #[command(after_help = "Examples:\n  \
        barrack instances metrics trainer\n  \
        barrack instances metrics BRK-A1B2C3D -o json")]
    Metrics(Target),
    /// Add or remove an instance's security rules
    #[command(
        subcommand,
        after_help = "Example:\n  barrack instances rules add trainer --direction ingress --protocol tcp --port-min 22 --port-max 22"
    )]
    Rules(RulesCommand),
    /// List the firewalls attached to an instance, with their rules
    #[command(after_help = "Examples:\n  \
        barrack instances firewalls trainer\n  \
        barrack instances firewalls BRK-A1B2C3D -o json")]
    Firewalls(Target),
    /// Open an SSH session on an instance (runs the system `ssh` as ubuntu@ADDRESS, with `-p PORT` when
    /// the instance's SSH port is forwarded)
    #[command(after_help = "Examples:\n  \
        barrack instances ssh trainer\n  \
        barrack instances ssh trainer -- -i ~/.ssh/barrack_gpu\n  \
        barrack instances ssh trainer -- nvidia-smi\n  \
        barrack instances ssh trainer --print")]
    Ssh {
        #[command(flatten)]
        target: Target,
        /// Print the ssh command instead of running it
        #[arg(long)]
        print: bool,
        /// The user to sign in as
        #[arg(long, default_value = DEFAULT_SSH_USER)]
        user: String,
        /// Passed to ssh after the destination: options (OpenSSH reads them there) or a remote command
        #[arg(last = true, value_name = "SSH ARGS")]
        args: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct Target {
    /// The instance's id (BRK-...D) or name
    #[arg(value_name = "ID|NAME")]
    target: String,
}

#[derive(Debug, clap::Args)]
pub struct ActionArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Instance name: 2 to 30 letters, digits, hyphens, underscores or dots
    #[arg(long)]
    name: String,
    /// GPU model (see `barrack catalog gpus`)
    #[arg(long)]
    gpu_model: String,
    /// GPUs in the instance (1, 2, 4 or 8, as the model allows)
    #[arg(long, default_value_t = 1)]
    gpu_count: u32,
    /// Region (see `barrack catalog regions`)
    #[arg(long)]
    region: String,
    /// OS image to boot (see `barrack catalog images`)
    #[arg(long)]
    image: Option<String>,
    /// Name or id of one of your SSH keys, installed for the default user (image boot)
    #[arg(long, value_name = "NAME|ID")]
    ssh_key: Option<String>,
    /// Bootable volume to boot from, with --boot-from-volume
    #[arg(long, value_name = "ID", requires = "boot_from_volume")]
    volume_id: Option<String>,
    /// Boot from --volume-id instead of an image
    #[arg(long, requires = "volume_id", conflicts_with = "image")]
    boot_from_volume: bool,
    /// Deploy without a public IP address
    #[arg(long)]
    no_public_ip: bool,
    /// Security rule, repeatable: DIRECTION[:PROTOCOL[:PORTS[:REMOTE]]] (see below)
    #[arg(long = "rule", value_name = "RULE", value_parser = parse_rule)]
    rules: Vec<SecurityRuleRequest>,
    /// cloud-init user data to run on first boot (at most 16 KiB)
    #[arg(long, value_name = "FILE")]
    cloud_init: Option<PathBuf>,
    /// OS volume size in GB [default: the region's minimum]
    #[arg(long, value_name = "GB")]
    os_volume_size: Option<u32>,
    /// Attach one of your volumes, repeatable
    #[arg(long = "existing-volume", value_name = "ID")]
    existing_volumes: Vec<String>,
    /// Create and attach a data volume, repeatable (size in GB, type as in `barrack catalog pricing`)
    #[arg(long = "volume", value_name = "NAME:SIZE:TYPE", value_parser = parse_volume)]
    volumes: Vec<NewVolumeRequest>,
    /// Startup script to run on first boot
    #[arg(long, value_name = "ID")]
    script_id: Option<String>,
    /// Run the deploy at most once under this key: running the command again with the same key (within
    /// 24 hours) prints the first deploy's instance instead of deploying another [default: a new key per
    /// run, so the command's own retries are safe]
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Make every check the deploy makes and print its price, without deploying
    #[arg(long, conflicts_with = "wait")]
    preflight: bool,
    /// With --preflight: also reserve the GPUs and the public address for 60 seconds, for a deploy with
    /// --hold-id
    #[arg(long, requires = "preflight")]
    hold: bool,
    /// Deploy onto the GPUs and address a `--preflight --hold` reserved (same model, count and region)
    #[arg(long, value_name = "HOLD_ID")]
    hold_id: Option<String>,
    /// Label the instance, repeatable
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    #[command(flatten)]
    lease: LeaseArgs,
    #[command(flatten)]
    wait: WaitArgs,
}

/// A lease: when the instance deletes or hibernates itself.
#[derive(Debug, clap::Args)]
pub struct LeaseArgs {
    /// End the lease this long from now: 90m, 2h, 1d
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl, conflicts_with = "expires_at")]
    ttl: Option<i64>,
    /// End the lease at this time (RFC 3339, such as 2025-01-15T18:00:00Z)
    #[arg(long, value_name = "TIME")]
    expires_at: Option<String>,
    /// What happens at the end: delete (default) or hibernate
    #[arg(long, value_name = "ACTION", value_parser = ["delete", "hibernate"])]
    on_expiry: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only instances in this state (ACTIVE, SHUTOFF, HIBERNATED, ERROR, ...)
    #[arg(long)]
    status: Option<String>,
    /// Only instances in this region
    #[arg(long)]
    region: Option<String>,
    /// Only instances of this GPU model
    #[arg(long)]
    gpu_model: Option<String>,
    /// Only instances whose name contains this, ignoring case
    #[arg(long)]
    name: Option<String>,
    /// Only instances with this label (KEY=VALUE) or label key (KEY), repeatable: all must match
    #[arg(long = "label", value_name = "KEY[=VALUE]")]
    labels: Vec<String>,
    #[command(flatten)]
    page: PageArgs,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Add a security rule to an instance
    #[command(after_help = "Examples:\n  \
        barrack instances rules add trainer --direction ingress --protocol tcp --port-min 22 --port-max 22 \\\n    \
        --remote 203.0.113.0/24\n  \
        barrack instances rules add trainer --direction egress")]
    Add {
        #[command(flatten)]
        target: Target,
        /// ingress or egress
        #[arg(long)]
        direction: String,
        /// tcp, udp, icmp, another IP protocol name or number [default: any protocol]
        #[arg(long)]
        protocol: Option<String>,
        /// IPv4 or IPv6 [default: IPv4]
        #[arg(long)]
        ethertype: Option<String>,
        /// First port of the range (tcp, udp and the like), with --port-max
        #[arg(long, value_name = "PORT")]
        port_min: Option<u32>,
        /// Last port of the range, with --port-min
        #[arg(long, value_name = "PORT")]
        port_max: Option<u32>,
        /// CIDR the traffic comes from or goes to [default: anywhere]
        #[arg(long, value_name = "CIDR")]
        remote: Option<String>,
    },
    /// Remove a security rule from an instance
    #[command(after_help = "Example:\n  barrack instances rules remove trainer BRK-A1B2C3R")]
    Remove {
        #[command(flatten)]
        target: Target,
        /// The rule's id (BRK-...R), as `barrack instances show` lists it
        rule_id: String,
    },
}

/// A lifecycle operation: one of the actions, or deletion, which has its own method.
#[derive(Debug, Clone, Copy)]
enum Lifecycle {
    Act(InstanceActionKind),
    Delete,
}

pub async fn run(command: Command, ctx: &Ctx) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        Command::Deploy(args) => deploy(*args, ctx).await,
        Command::ReleaseHold { hold_id } => {
            let hold = ctx.call(client.release_hold(&hold_id)).await?.data;
            let view = View::Text(format!(
                "{}: released {}×{} in {}",
                hold.hold_id, hold.gpu_model, hold.gpu_count, hold.region
            ));
            Ok(Output::new(&hold, view))
        }
        Command::List(args) => {
            let page = args.page.query();
            let query = InstanceQuery {
                page: page.page,
                limit: page.limit,
                status: args.status,
                region: args.region,
                gpu_model: args.gpu_model,
                name: args.name,
            };
            let data = ctx
                .call(client.instances_labelled(&query, &args.labels))
                .await?
                .data;
            let view = super::paged(instance_table(&data.instances), &data.pagination);
            let ids = instance_ids(&data.instances);
            Ok(Output::new(&data, view).ids(ids))
        }
        Command::Lease {
            target,
            lease,
            clear,
        } => {
            let id = resolve(ctx, &target.target).await?;
            let patch = InstancePatch {
                ttl_minutes: lease.ttl,
                expires_at: lease.expires_at,
                on_expiry: lease.on_expiry,
                clear_lease: clear,
            };
            let data = ctx.call(client.patch_instance(&id, &patch)).await?.data;
            Ok(instance_output(data))
        }
        Command::Labels { target, changes } => {
            let id = resolve(ctx, &target.target).await?;
            change_labels(ctx, LabelledResource::Instances, &id, changes).await
        }
        Command::Show(target) => {
            let id = resolve(ctx, &target.target).await?;
            let data = ctx.call(client.instance(&id)).await?.data;
            Ok(instance_output(data))
        }
        Command::Start(args) => {
            lifecycle(ctx, args, Lifecycle::Act(InstanceActionKind::Start)).await
        }
        Command::Stop(args) => lifecycle(ctx, args, Lifecycle::Act(InstanceActionKind::Stop)).await,
        Command::Reboot(args) => {
            lifecycle(ctx, args, Lifecycle::Act(InstanceActionKind::Reboot)).await
        }
        Command::Hibernate(args) => {
            lifecycle(ctx, args, Lifecycle::Act(InstanceActionKind::Hibernate)).await
        }
        Command::Restore(args) => {
            lifecycle(ctx, args, Lifecycle::Act(InstanceActionKind::Restore)).await
        }
        Command::Delete(args) => lifecycle(ctx, args, Lifecycle::Delete).await,
        Command::ToggleIp(target) => {
            let id = resolve(ctx, &target.target).await?;
            let data = ctx.call(client.toggle_public_ip(&id)).await?.data;
            let view = View::Fields(vec![
                ("ID", data.instance_id.clone()),
                ("Public IP", yes_no(data.public_ip)),
                ("Address", or_dash(data.ip_address.as_ref())),
                ("IP status", data.ip_status.clone()),
            ]);
            Ok(Output::new(&data, view).ids([data.instance_id.clone()]))
        }
        Command::Hibernated => {
            let data = ctx.call(client.hibernated_instances()).await?.data;
            let mut sections = vec![View::Fields(vec![
                ("Hibernated", data.count.to_string()),
                (
                    "Hourly cost",
                    format!("{} {}", money(data.hourly_cost.0), data.currency),
                ),
            ])];
            // The most recent ones, when there are any: "No instances." under a count of 0 says nothing.
            if !data.recent.is_empty() {
                sections.push(View::Table(instance_table(&data.recent)));
            }
            let view = View::Sections(sections);
            let ids = instance_ids(&data.recent);
            Ok(Output::new(&data, view).ids(ids))
        }
        Command::SnapshotEligible(page) => {
            let data = ctx
                .call(client.snapshot_eligible_instances(&page.query()))
                .await?
                .data;
            let view = super::paged(instance_table(&data.instances), &data.pagination);
            let ids = instance_ids(&data.instances);
            Ok(Output::new(&data, view).ids(ids))
        }
        Command::Events { target, page } => {
            let id = resolve(ctx, &target.target).await?;
            let data = ctx
                .call(client.instance_events(&id, &page.query()))
                .await?
                .data;
            Ok(events_output(data))
        }
        Command::Metrics(target) => {
            let id = resolve(ctx, &target.target).await?;
            let data = ctx.call(client.instance_metrics(&id)).await?.data;
            Ok(metrics_output(data))
        }
        Command::Rules(command) => rules(command, ctx).await,
        Command::Firewalls(target) => {
            let id = resolve(ctx, &target.target).await?;
            let data = ctx.call(client.instance_firewalls(&id)).await?.data;
            Ok(super::firewalls::instance_firewalls_output(&data))
        }
        Command::Ssh {
            target,
            print,
            user,
            args,
        } => {
            let id = resolve(ctx, &target.target).await?;
            let instance = ctx.call(client.instance(&id)).await?.data;
            let address = instance.ip_address.ok_or_else(|| {
                CliError::Usage(format!(
                    "instance {id} has no public IP address: give it one with `barrack instances toggle-ip {id}`"
                ))
            })?;
            let command = ssh_arguments(&id, &user, &address, instance.ssh_port, args);
            if print {
                let words: Vec<String> = std::iter::once("ssh".to_string())
                    .chain(command.iter().map(|a| shell_quote(a)))
                    .collect();
                return Ok(Output::text(words.join(" ")));
            }
            if super::health::simulated(ctx).await? {
                return Err(CliError::Other(format!(
                    "instance {id} runs in the server's simulated data centre: no machine answers at \
                     {address}, so there is nothing to SSH into (`--print` shows the command a real \
                     instance would take)"
                )));
            }
            run_ssh(&command)
        }
    }
}

/// The arguments of `ssh` for an instance. A forwarded port (a guest on user-mode networking) is where
/// its SSH server answers; the host's ports pass from one instance to the next, so the guest's host key
/// is remembered under the instance's id, and a new instance's key is accepted the first time.
fn ssh_arguments(
    id: &str,
    user: &str,
    address: &str,
    port: Option<u16>,
    args: Vec<String>,
) -> Vec<String> {
    let mut command = match port {
        Some(port) => vec![
            "-p".to_string(),
            port.to_string(),
            "-o".to_string(),
            format!("HostKeyAlias={id}"),
            "-o".to_string(),
            "StrictHostKeyChecking=accept-new".to_string(),
        ],
        None => vec![],
    };
    command.push(format!("{user}@{address}"));
    command.extend(args);
    command
}

fn metrics_output(data: InstanceMetrics) -> Output {
    const MIB: f64 = 1024.0 * 1024.0;
    let rate = |value: Option<f64>| {
        value.map_or_else(|| "-".to_string(), |v| format!("{:.2} MiB/s", v / MIB))
    };
    let memory = match data.memory_used_bytes {
        Some(used) => format!(
            "{:.1} of {:.1} GiB",
            used as f64 / 1024.0 / MIB,
            data.memory_total_bytes as f64 / 1024.0 / MIB
        ),
        None => format!(
            "- of {:.1} GiB",
            data.memory_total_bytes as f64 / 1024.0 / MIB
        ),
    };
    let lines = [
        format!("Instance:      {}", data.instance_id),
        format!("Sampled at:    {}", data.sampled_at),
        format!("CPU:           {:.1} %", data.cpu_percent),
        format!("Memory:        {memory}"),
        format!(
            "Network:       {} in, {} out",
            rate(data.network_rx_bytes_per_sec),
            rate(data.network_tx_bytes_per_sec)
        ),
        format!(
            "Disk:          {} read, {} written",
            rate(data.disk_read_bytes_per_sec),
            rate(data.disk_write_bytes_per_sec)
        ),
        format!(
            "GPU:           {}",
            data.gpu_percent
                .map_or_else(|| "-".to_string(), |v| format!("{v:.1} %"))
        ),
    ];
    Output::new(&data, View::Text(lines.join("\n")))
}

/// A key no other run uses (process id and the time in nanoseconds): a retry the client makes after a
/// lost answer then cannot deploy twice.
fn fresh_idempotency_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("barrack-cli-{}-{nanos}", std::process::id())
}

async fn deploy(args: DeployArgs, ctx: &Ctx) -> Result<Output, CliError> {
    let cloud_init = args
        .cloud_init
        .as_deref()
        .map(read_input_file)
        .transpose()?;
    let request = DeployRequest {
        gpu_model: args.gpu_model,
        gpu_count: args.gpu_count,
        region: args.region,
        instance_name: args.name,
        image_name: args.image,
        volume_id: args.volume_id,
        boot_from_volume: args.boot_from_volume,
        ssh_key: args.ssh_key,
        public_ip: !args.no_public_ip,
        security_rules: args.rules,
        cloud_init,
        os_volume: args.os_volume_size.map(|size| OsVolumeRequest { size }),
        existing_volumes: args.existing_volumes,
        volumes: args.volumes,
        script_id: args.script_id,
        hold_id: args.hold_id,
        hold: args.hold,
        labels: labels_of(args.labels),
        ttl_minutes: args.lease.ttl,
        expires_at: args.lease.expires_at,
        on_expiry: args.lease.on_expiry,
    };
    let key = args.idempotency_key.unwrap_or_else(fresh_idempotency_key);
    let client = ctx.client.with_idempotency_key(key);
    if args.preflight {
        let preflight = ctx.call(client.preflight(&request)).await?.data;
        return Ok(preflight_output(preflight));
    }
    let deployed = ctx.call(client.deploy(&request)).await?.data;
    let id = deployed.instance_id.clone();
    if args.wait.wait {
        let instance = wait::until_resting(ctx, &id, "ACTIVE", timeout(&args.wait)).await?;
        return Ok(instance_output(instance));
    }
    Ok(deployed_output(deployed).notice(format!(
        "Follow it with `barrack instances show {id}`, or deploy with --wait."
    )))
}

async fn lifecycle(ctx: &Ctx, args: ActionArgs, operation: Lifecycle) -> Result<Output, CliError> {
    let id = resolve(ctx, &args.target.target).await?;
    let done: InstanceAction = match operation {
        Lifecycle::Act(kind) => ctx.call(ctx.client.instance_action(&id, kind)).await?,
        Lifecycle::Delete => ctx.call(ctx.client.delete_instance(&id)).await?,
    }
    .data;
    if !args.wait.wait {
        let view = View::Text(format!(
            "{id}: {} requested; {} now, {} when done",
            done.action, done.status, done.target_status
        ));
        return Ok(Output::new(&done, view).ids([id]));
    }
    let timeout = timeout(&args.wait);
    match operation {
        Lifecycle::Delete => {
            wait::until_deleted(ctx, &id, timeout).await?;
            let view = View::Text(format!("Deleted instance {id}"));
            Ok(Output::new(&done, view).ids([id]))
        }
        Lifecycle::Act(_) => {
            let instance = wait::until_resting(ctx, &id, &done.target_status, timeout).await?;
            let view = View::Text(format!("{id} ({}) is {}", instance.name, instance.status));
            Ok(Output::new(&instance, view).ids([id]))
        }
    }
}

async fn rules(command: RulesCommand, ctx: &Ctx) -> Result<Output, CliError> {
    match command {
        RulesCommand::Add {
            target,
            direction,
            protocol,
            ethertype,
            port_min,
            port_max,
            remote,
        } => {
            let id = resolve(ctx, &target.target).await?;
            let rule = SecurityRuleRequest {
                direction,
                protocol,
                ethertype,
                port_range_min: port_min,
                port_range_max: port_max,
                remote_ip_prefix: remote,
            };
            let data = ctx
                .call(ctx.client.add_security_rule(&id, &rule))
                .await?
                .data;
            let view = View::Fields(vec![
                ("ID", data.id.clone()),
                ("Instance", id),
                ("Direction", data.direction.clone()),
                ("Protocol", or_dash(data.protocol.as_ref())),
                ("Ports", ports(&data)),
                ("Remote", or_dash(data.remote_ip_prefix.as_ref())),
                ("Ethertype", data.ethertype.clone()),
            ]);
            Ok(Output::new(&data, view).ids([data.id.clone()]))
        }
        RulesCommand::Remove { target, rule_id } => {
            let id = resolve(ctx, &target.target).await?;
            // This answer is flat, without `data`: `-o json` prints all of it.
            let data = ctx
                .call(ctx.client.remove_security_rule(&id, &rule_id))
                .await?;
            let view = View::Text(format!(
                "Removed rule {} from {}",
                data.rule_id, data.instance_id
            ));
            Ok(Output::new(&data, view).ids([data.rule_id.clone()]))
        }
    }
}

/// The id of ID|NAME. An id is taken as it is; a name is looked up among the instances whose name
/// contains it (the API's filter), for the one whose name is exactly it.
async fn resolve(ctx: &Ctx, target: &str) -> Result<String, CliError> {
    if is_instance_id(target) {
        return Ok(target.to_string());
    }
    let mut query = InstanceQuery {
        name: Some(target.to_string()),
        limit: Some(100),
        ..Default::default()
    };
    for page in 1.. {
        query.page = Some(page);
        let data = ctx.call(ctx.client.instances(&query)).await?.data;
        if let Some(found) = data.instances.into_iter().find(|i| i.name == target) {
            return Ok(found.instance_id);
        }
        if page >= data.pagination.total_pages {
            break;
        }
    }
    Err(CliError::NotFound(format!(
        "no instance is named '{target}' (list them with `barrack instances list`)"
    )))
}

/// `BRK-` + 6 uppercase letters or digits + `D`, as instance ids are made.
fn is_instance_id(text: &str) -> bool {
    text.strip_prefix("BRK-")
        .and_then(|rest| rest.strip_suffix('D'))
        .is_some_and(|middle| {
            middle.len() == 6
                && middle
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
}

pub(super) fn timeout(args: &WaitArgs) -> Duration {
    Duration::from_secs(args.timeout)
}

fn instance_table(instances: &[Instance]) -> Table {
    let mut table = Table::new(
        &["ID", "NAME", "STATUS", "REGION", "GPUS", "IP"],
        "No instances.",
    );
    for i in instances {
        table.row([
            i.instance_id.clone(),
            i.name.clone(),
            i.status.clone(),
            i.region.clone(),
            gpus(&i.specs),
            or_dash(i.ip_address.as_ref()),
        ]);
    }
    table
}

fn instance_ids(instances: &[Instance]) -> Vec<String> {
    instances.iter().map(|i| i.instance_id.clone()).collect()
}

/// An instance in full: its fields, then its security rules.
pub(super) fn instance_output(i: Instance) -> Output {
    let status = match &i.status_reason {
        Some(reason) => format!("{} ({reason})", i.status),
        None => i.status.clone(),
    };
    let address = match (&i.ip_address, i.public_ip) {
        (Some(address), _) => match i.ssh_port {
            Some(port) => format!("{address} (SSH on port {port})"),
            None => address.clone(),
        },
        (None, true) => format!("- ({})", i.ip_status),
        (None, false) => "none".to_string(),
    };
    let boot = match &i.operating_system {
        Some(os) => format!("{} ({os})", i.boot_source),
        None => i.boot_source.clone(),
    };
    let fields = View::Fields(vec![
        ("ID", i.instance_id.clone()),
        ("Name", i.name.clone()),
        ("Status", status),
        ("Region", format!("{} ({})", i.region, i.tier)),
        ("GPUs", gpus(&i.specs)),
        (
            "CPU and memory",
            format!("{} vCPUs, {} GB RAM", i.specs.vcpus, i.specs.ram_gb),
        ),
        (
            "OS volume",
            format!(
                "{} GB {}",
                i.billing.breakdown.storage.os_volume.size_gb,
                i.billing.breakdown.storage.os_volume.volume_type
            ),
        ),
        ("Boot", boot),
        ("IP address", address),
        ("SSH key", or_dash(i.ssh_key_id.as_ref())),
        (
            "Price",
            format!(
                "{} {}/hour",
                money(i.billing.total_hourly_rate.0),
                i.billing.currency
            ),
        ),
        ("Allowed actions", i.allowed_actions.join(", ")),
        ("Labels", labels_text(&i.labels)),
        (
            "Lease",
            i.lease.as_ref().map_or_else(
                || "-".to_string(),
                |l| format!("{} at {}", l.on_expiry, l.expires_at),
            ),
        ),
        ("Created", i.created_at.clone()),
        ("Updated", i.updated_at.clone()),
    ]);
    let mut rules = Table::new(
        &[
            "RULE ID",
            "DIRECTION",
            "PROTOCOL",
            "PORTS",
            "REMOTE",
            "ETHERTYPE",
            "SOURCE",
        ],
        "No security rules.",
    );
    for r in &i.security_rules {
        rules.row([
            r.id.clone(),
            r.direction.clone(),
            r.protocol.clone().unwrap_or_else(|| "any".into()),
            ports(r),
            r.remote_ip_prefix
                .clone()
                .unwrap_or_else(|| "anywhere".into()),
            r.ethertype.clone(),
            r.source.clone(),
        ]);
    }
    let view = View::Sections(vec![fields, View::Table(rules)]);
    Output::new(&i, view).ids([i.instance_id.clone()])
}

/// The deploy answer, before the instance is up.
pub(super) fn deployed_output(d: DeployedInstance) -> Output {
    let view = View::Fields(vec![
        ("ID", d.instance_id.clone()),
        ("VM name", d.vm_name.clone()),
        ("Status", d.status.clone()),
        ("Region", d.region.clone()),
        ("GPUs", gpus(&d.specs)),
        ("Boot", d.boot_source.clone()),
        (
            "IP address",
            d.ip_address.clone().unwrap_or_else(|| d.ip_status.clone()),
        ),
        (
            "Price",
            format!(
                "{} {}/hour",
                money(d.billing.total_hourly_rate.0),
                d.billing.currency
            ),
        ),
        ("Created", d.created_at.clone()),
    ]);
    Output::new(&d, view).ids([d.instance_id.clone()])
}

/// A preflight's answer: the checks passed, the price, and the hold when one was asked for.
fn preflight_output(p: Preflight) -> Output {
    let mut fields = vec![
        ("Checks", format!("{} passed", p.checks.join(", "))),
        (
            "Price",
            format!("{} {}/hour", money(p.price_per_hour.0), p.currency),
        ),
    ];
    let mut ids = vec![];
    if let Some(hold) = &p.hold {
        fields.push(("Hold", hold.hold_id.clone()));
        fields.push((
            "Held",
            format!("{}×{} in {}", hold.gpu_model, hold.gpu_count, hold.region),
        ));
        if let Some(address) = &hold.ip_address {
            fields.push(("IP address", address.clone()));
        }
        fields.push(("Expires", hold.expires_at.clone()));
        ids.push(hold.hold_id.clone());
    }
    let output = Output::new(&p, View::Fields(fields)).ids(ids);
    match &p.hold {
        Some(hold) => output.notice(format!(
            "Deploy onto it with the same options and --hold-id {}, or release it with \
             `barrack instances release-hold {}`.",
            hold.hold_id, hold.hold_id
        )),
        None => output,
    }
}

/// `H100-SXM5-80GB×4`.
fn gpus(specs: &Specs) -> String {
    format!("{}×{}", specs.gpu_type, specs.gpu_count)
}

pub(super) fn ports(rule: &SecurityRule) -> String {
    match (rule.port_range_min, rule.port_range_max) {
        (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
        (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
        _ => "any".to_string(),
    }
}

/// `--rule DIRECTION[:PROTOCOL[:PORTS[:REMOTE]]]`; REMOTE is last so an IPv6 CIDR keeps its colons. The
/// API checks the values; this only takes the text apart.
pub(super) fn parse_rule(text: &str) -> Result<SecurityRuleRequest, String> {
    let mut parts = text.splitn(4, ':');
    let direction = parts.next().unwrap_or_default().trim().to_lowercase();
    if !matches!(direction.as_str(), "ingress" | "egress") {
        return Err(format!(
            "'{text}' does not start with ingress or egress: use DIRECTION[:PROTOCOL[:PORTS[:REMOTE]]], \
             e.g. ingress:tcp:22:0.0.0.0/0"
        ));
    }
    let given = |part: Option<&str>| {
        part.map(str::trim)
            .filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("any"))
            .map(str::to_string)
    };
    let protocol = given(parts.next());
    let (port_range_min, port_range_max) = match given(parts.next()) {
        None => (None, None),
        Some(ports) => {
            let port = |p: &str| {
                p.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("'{ports}' is not a port or a range such as 8000-8100"))
            };
            let (lo, hi) = ports.split_once('-').unwrap_or((&ports, &ports));
            (Some(port(lo)?), Some(port(hi)?))
        }
    };
    let remote_ip_prefix = parts
        .next()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let ethertype = remote_ip_prefix
        .as_deref()
        .filter(|r| r.contains(':'))
        .map(|_| "IPv6".to_string());
    Ok(SecurityRuleRequest {
        direction,
        protocol,
        ethertype,
        port_range_min,
        port_range_max,
        remote_ip_prefix,
    })
}

/// `--volume NAME:SIZE:TYPE`.
fn parse_volume(text: &str) -> Result<NewVolumeRequest, String> {
    let malformed = || format!("'{text}' is not NAME:SIZE:TYPE, e.g. data:500:NVMe");
    let mut parts = text.split(':');
    let (Some(name), Some(size), Some(volume_type), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    if name.trim().is_empty() || volume_type.trim().is_empty() {
        return Err(malformed());
    }
    let size = size
        .trim()
        .parse()
        .map_err(|_| format!("'{size}' is not a size in GB"))?;
    Ok(NewVolumeRequest {
        name: name.trim().to_string(),
        size,
        volume_type: volume_type.trim().to_string(),
    })
}

/// Quotes a word for a POSIX shell, so a printed command can be pasted as it is.
fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Hands the terminal to `ssh`: on Unix the process becomes ssh, so signals, the exit code and the
/// terminal behave exactly as if the user had typed the ssh command.
#[cfg(unix)]
fn run_ssh(args: &[String]) -> Result<Output, CliError> {
    use std::os::unix::process::CommandExt;
    let error = std::process::Command::new("ssh").args(args).exec();
    Err(CliError::Other(format!("cannot run ssh: {error}")))
}

#[cfg(not(unix))]
fn run_ssh(args: &[String]) -> Result<Output, CliError> {
    let status = std::process::Command::new("ssh")
        .args(args)
        .status()
        .map_err(|e| CliError::Other(format!("cannot run ssh: {e}")))?;
    std::process::exit(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_goes_to_the_forwarded_port_and_remembers_the_key_per_instance() {
        let args = vec!["uname".to_string()];
        assert_eq!(
            ssh_arguments("BRK-A1B2C3D", "ubuntu", "203.0.113.7", None, args.clone()),
            ["ubuntu@203.0.113.7", "uname"]
        );
        assert_eq!(
            ssh_arguments("BRK-A1B2C3D", "ubuntu", "127.0.0.1", Some(22200), args),
            [
                "-p",
                "22200",
                "-o",
                "HostKeyAlias=BRK-A1B2C3D",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "ubuntu@127.0.0.1",
                "uname"
            ]
        );
    }

    #[test]
    fn rules_parse_from_the_documented_syntax() {
        let ssh = parse_rule("ingress:tcp:22-22:0.0.0.0/0").unwrap();
        assert_eq!(
            (
                ssh.direction.as_str(),
                ssh.protocol.as_deref(),
                ssh.port_range_min,
                ssh.port_range_max,
                ssh.remote_ip_prefix.as_deref(),
                ssh.ethertype.as_deref()
            ),
            (
                "ingress",
                Some("tcp"),
                Some(22),
                Some(22),
                Some("0.0.0.0/0"),
                None
            )
        );
        let out = parse_rule("egress:any").unwrap();
        assert_eq!((out.protocol, out.port_range_min), (None, None));
        let range = parse_rule("ingress:udp:8000-8100").unwrap();
        assert_eq!(
            (range.port_range_min, range.port_range_max),
            (Some(8000), Some(8100))
        );
        let v6 = parse_rule("ingress:tcp:443:2001:db8::/32").unwrap();
        assert_eq!(v6.remote_ip_prefix.as_deref(), Some("2001:db8::/32"));
        assert_eq!(v6.ethertype.as_deref(), Some("IPv6"));
        let anywhere = parse_rule("ingress:tcp:22:").unwrap();
        assert_eq!(anywhere.remote_ip_prefix, None);
        assert!(parse_rule("inbound:tcp").is_err());
        assert!(parse_rule("ingress:tcp:ssh").is_err());
    }

    #[test]
    fn volumes_parse() {
        let v = parse_volume("data:500:NVMe").unwrap();
        assert_eq!(
            (v.name.as_str(), v.size, v.volume_type.as_str()),
            ("data", 500, "NVMe")
        );
        assert!(parse_volume("data:500").is_err());
        assert!(parse_volume("data:big:NVMe").is_err());
        assert!(parse_volume("data:1:NVMe:x").is_err());
    }

    #[test]
    fn ids_are_told_from_names() {
        assert!(is_instance_id("BRK-A1B2C3D"));
        assert!(!is_instance_id("BRK-A1B2C3K"), "an SSH key id");
        assert!(!is_instance_id("trainer"));
        assert!(!is_instance_id("BRK-a1b2c3D"));
    }

    #[test]
    fn printed_commands_can_be_pasted() {
        assert_eq!(shell_quote("ubuntu@203.0.113.7"), "ubuntu@203.0.113.7");
        assert_eq!(shell_quote("-i"), "-i");
        assert_eq!(shell_quote("~/.ssh/id"), "'~/.ssh/id'");
        assert_eq!(shell_quote("echo hi"), "'echo hi'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn instances_show_their_gpus_and_rules() {
        let output = instance_output(crate::wait::tests::instance("ACTIVE", None));
        let text = format!("{output:?}");
        assert!(text.contains("H100-SXM5-80GB×1"), "{text}");
        assert!(text.contains("BRK-R1R2R3R"), "{text}");
        let table = instance_table(&[crate::wait::tests::instance("SHUTOFF", None)]).to_string();
        assert_eq!(
            table,
            "ID           NAME     STATUS   REGION     GPUS              IP\n\
             BRK-A1B2C3D  trainer  SHUTOFF  FINLAND-1  H100-SXM5-80GB×1  203.0.113.7\n"
        );
    }
}

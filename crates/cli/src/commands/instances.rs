//! `barrack instances`: deploy GPU instances and take them through their lifecycle.
//!
//! Commands that act on one instance take its id or its name, so people can type the name they chose and
//! scripts can pass the id they stored. Operations finish in the background; `--wait` follows them.
//!
//! Split by command: [`deploy`] (with preflights and holds), [`lease`], [`rules`] (an instance's security
//! rules) and [`ssh`]; the rest (lists, views and lifecycle operations) is here.

mod deploy;
mod lease;
mod rules;
mod ssh;

use std::time::Duration;

use barrack_api::instances::{Instance, InstanceAction, InstanceMetrics, InstanceQuery, Specs};
use barrack_client::{InstanceActionKind, LabelledResource};
use clap::Subcommand;

use super::events::events_output;
use super::labels::{LabelChanges, change_labels, labels_text};
use super::security_rules::rules_table;
use super::{Ctx, Output, PageArgs};
use crate::error::CliError;
use crate::output::{Table, View, money, or_dash, yes_no};
use crate::wait::{self, WaitArgs};

pub use deploy::DeployArgs;
pub(super) use deploy::deployed_output;
pub use lease::LeaseArgs;
pub use rules::RulesCommand;
pub(super) use rules::parse_rule;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploy an instance from an OS image (or a bootable volume)
    #[command(after_help = deploy::DEPLOY_HELP)]
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
    /// Set, change or end an instance's lease (it deletes or hibernates itself at the end; at most 366
    /// days ahead)
    #[command(after_help = "Examples:\n  \
        barrack instances lease trainer --ttl 2h --on-expiry hibernate\n  \
        barrack instances lease trainer --ttl 7d\n  \
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
        #[arg(long, default_value = ssh::DEFAULT_SSH_USER)]
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
pub struct ListArgs {
    /// Only instances in this state, in any case (deleted instances are not listed)
    #[arg(long, ignore_case = true, value_parser = listed_status_parser())]
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

/// The states `instances list --status` takes, exactly those the API lists by: every state but DELETED
/// (deleted instances are not listed).
const LISTED_STATES: [&str; 11] = [
    "CREATING",
    "ACTIVE",
    "STARTING",
    "STOPPING",
    "SHUTOFF",
    "REBOOTING",
    "HIBERNATING",
    "HIBERNATED",
    "RESTORING",
    "DELETING",
    "ERROR",
];

fn listed_status_parser() -> impl clap::builder::TypedValueParser<Value = String> {
    use clap::builder::PossibleValue;
    use clap::builder::TypedValueParser;
    // BUILD is the API's other name for CREATING.
    let states = LISTED_STATES.map(|state| match state {
        "CREATING" => PossibleValue::new(state).alias("BUILD"),
        _ => PossibleValue::new(state),
    });
    clap::builder::PossibleValuesParser::new(states).map(|s| s.to_ascii_uppercase())
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
        Command::Deploy(args) => deploy::deploy(*args, ctx).await,
        Command::ReleaseHold { hold_id } => deploy::release_hold(ctx, &hold_id).await,
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
        } => lease::set_lease(ctx, &target, lease, clear).await,
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
        Command::Rules(command) => rules::run(command, ctx).await,
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
        } => ssh::ssh(ctx, &target, print, &user, args).await,
    }
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

/// The id of ID|NAME. An id is taken as it is; a name is looked up among the instances whose name
/// contains it (the API's filter), for the one whose name is exactly it.
pub(super) async fn resolve(ctx: &Ctx, target: &str) -> Result<String, CliError> {
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
        "no instance has the id or name '{target}' (list them with `barrack instances list`)"
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
    let rules = rules_table(&i.security_rules, "No security rules.");
    let view = View::Sections(vec![fields, View::Table(rules)]);
    Output::new(&i, view).ids([i.instance_id.clone()])
}

/// `H100-SXM5-80GB×4`.
fn gpus(specs: &Specs) -> String {
    format!("{}×{}", specs.gpu_type, specs.gpu_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_told_from_names() {
        assert!(is_instance_id("BRK-A1B2C3D"));
        assert!(!is_instance_id("BRK-A1B2C3K"), "an SSH key id");
        assert!(!is_instance_id("trainer"));
        assert!(!is_instance_id("BRK-a1b2c3D"));
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

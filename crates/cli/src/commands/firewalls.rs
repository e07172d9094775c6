//! `barrack firewalls`: named rule sets attached to instances of their region. Rules are allow-lists; every
//! firewall on an instance applies together with the instance's own rules. Changes reach the instances in
//! the background: `show` follows the attachments' status.

use barrack_api::firewalls::{
    CreateFirewallRequest, Firewall, FirewallAttachmentChange, FirewallQuery, InstanceFirewallList,
};
use barrack_api::instances::{SecurityRule, SecurityRuleRequest};
use barrack_client::LabelledResource;
use clap::Subcommand;

use super::labels::{LabelChanges, change_labels, labels_of, parse_label};
use super::security_rules::{added_rule_output, ipv6_ethertype, removed_rule_output, rules_table};
use super::{Ctx, Output, PageArgs};
use crate::error::CliError;
use crate::output::{Table, View, or_dash, yes_no};

/// The rule syntax, which the one-line flag help has no room for.
const CREATE_HELP: &str = "\
Examples:
  barrack firewalls create --name web --region FINLAND-1 --description 'HTTP and SSH' \\
    --rule ingress:tcp:22:203.0.113.0/24 --rule ingress:tcp:443
  barrack firewalls create --name locked --region CANADA-1

Rules (--rule), DIRECTION[:PROTOCOL[:PORTS[:REMOTE]]]:
  DIRECTION  ingress or egress
  PROTOCOL   tcp, udp, icmp, another IP protocol name or number; empty or `any` for every protocol
  PORTS      22 or 8000-8100 (tcp, udp and the like only); empty or `any` for every port
  REMOTE     a CIDR such as 203.0.113.0/24 (an IPv6 one makes an IPv6 rule); empty for anywhere";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List firewalls with their rule and attachment counts
    #[command(after_help = "Examples:\n  \
        barrack firewalls list\n  \
        barrack firewalls list --region FINLAND-1 -q")]
    List {
        /// Only firewalls of this region
        #[arg(long)]
        region: Option<String>,
        /// Only firewalls with this label (KEY=VALUE) or label key (KEY), repeatable: all must match
        #[arg(long = "label", value_name = "KEY[=VALUE]")]
        labels: Vec<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a firewall: its rules and the instances it is attached to
    #[command(after_help = "Examples:\n  \
        barrack firewalls show BRK-A1B2C3F\n  \
        barrack firewalls show BRK-A1B2C3F -o json")]
    Show {
        /// The firewall's id (BRK-...F)
        id: String,
    },
    /// Create a firewall, optionally with its first rules
    #[command(after_help = CREATE_HELP)]
    Create {
        /// Label the firewall, repeatable
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Unique name: letters, digits, spaces, hyphens, underscores, dots
        #[arg(long)]
        name: String,
        /// A region of your key's tier: the firewall attaches to instances there
        #[arg(long)]
        region: String,
        /// What the firewall is for (at most 255 characters)
        #[arg(long)]
        description: Option<String>,
        /// Rule, repeatable: DIRECTION[:PROTOCOL[:PORTS[:REMOTE]]] (see below)
        #[arg(long = "rule", value_name = "RULE", value_parser = super::instances::parse_rule)]
        rules: Vec<SecurityRuleRequest>,
    },
    /// Delete a firewall (one still attached only with --force, which detaches it first)
    #[command(after_help = "Examples:\n  \
        barrack firewalls delete BRK-A1B2C3F\n  \
        barrack firewalls delete BRK-A1B2C3F --force")]
    Delete {
        /// The firewall's id (BRK-...F)
        id: String,
        /// Detach the firewall from its instances first
        #[arg(long)]
        force: bool,
    },
    /// Add or remove a firewall's rules
    #[command(
        subcommand,
        after_help = "Example:\n  barrack firewalls rules add BRK-A1B2C3F --direction ingress --protocol tcp --port-min 22 --port-max 22"
    )]
    Rules(RulesCommand),
    /// Attach a firewall to ACTIVE instances of its region
    #[command(after_help = "Example:\n  \
        barrack firewalls attach BRK-A1B2C3F BRK-A1B2C3D BRK-D4E5F6D")]
    Attach {
        /// The firewall's id (BRK-...F)
        id: String,
        /// Instance ids (BRK-...D)
        #[arg(required = true)]
        instances: Vec<String>,
    },
    /// Detach a firewall from instances
    #[command(after_help = "Example:\n  barrack firewalls detach BRK-A1B2C3F BRK-A1B2C3D")]
    Detach {
        /// The firewall's id (BRK-...F)
        id: String,
        /// Instance ids (BRK-...D)
        #[arg(required = true)]
        instances: Vec<String>,
    },
    /// List the IP protocols rules accept by name
    #[command(after_help = "Example:\n  barrack firewalls protocols")]
    Protocols,
    /// List the ACTIVE instances of a firewall's region, and whether it is attached to them
    #[command(
        name = "available-instances",
        after_help = "Example:\n  barrack firewalls available-instances BRK-A1B2C3F"
    )]
    AvailableInstances {
        /// The firewall's id (BRK-...F)
        id: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Set or remove a firewall's labels
    #[command(after_help = "Example:\n  barrack firewalls labels ID --set team=ml --remove env")]
    Labels {
        /// The firewall's id (BRK-...F)
        id: String,
        #[command(flatten)]
        changes: LabelChanges,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Add a rule to a firewall; it reaches every instance the firewall is attached to
    #[command(after_help = "Examples:\n  \
        barrack firewalls rules add BRK-A1B2C3F --direction ingress --protocol tcp --port-min 443 --port-max 443\n  \
        barrack firewalls rules add BRK-A1B2C3F --direction ingress --protocol icmp --remote 203.0.113.0/24")]
    Add {
        /// The firewall's id (BRK-...F)
        id: String,
        /// ingress or egress
        #[arg(long)]
        direction: String,
        /// tcp, udp, icmp, another IP protocol name or number [default: any protocol]
        #[arg(long)]
        protocol: Option<String>,
        /// IPv4 or IPv6 [default: IPv6 for an IPv6 --remote, else IPv4]
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
    /// Remove a rule from a firewall
    #[command(after_help = "Example:\n  barrack firewalls rules remove BRK-A1B2C3F BRK-A1B2C3R")]
    Remove {
        /// The firewall's id (BRK-...F)
        id: String,
        /// The rule's id (BRK-...R), as `barrack firewalls show` lists it
        rule_id: String,
    },
}

pub async fn run(command: Command, ctx: &Ctx) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        Command::List {
            region,
            page,
            labels,
        } => {
            let page = page.query();
            let query = FirewallQuery {
                page: page.page,
                limit: page.limit,
                region,
            };
            let data = ctx
                .call(client.firewalls_labelled(&query, &labels))
                .await?
                .data;
            let mut table = Table::new(
                &["ID", "NAME", "STATUS", "REGION", "RULES", "INSTANCES"],
                "No firewalls.",
            );
            for f in &data.firewalls {
                table.row([
                    f.id.clone(),
                    f.name.clone(),
                    f.status.clone(),
                    f.region.clone(),
                    f.rule_count.to_string(),
                    f.attachment_count.to_string(),
                ]);
            }
            let view = super::paged(table, &data.pagination);
            let ids: Vec<String> = data.firewalls.iter().map(|f| f.id.clone()).collect();
            Ok(Output::new(&data, view).ids(ids))
        }
        Command::Labels { id, changes } => {
            change_labels(ctx, LabelledResource::Firewalls, &id, changes).await
        }
        Command::Show { id } => {
            let data = ctx.call(client.firewall(&id)).await?.data;
            Ok(firewall_output(&data))
        }
        Command::Create {
            labels,
            name,
            region,
            description,
            rules,
        } => {
            let request = CreateFirewallRequest {
                name,
                description,
                region,
                rules,
                labels: labels_of(labels),
            };
            let data = ctx.call(client.create_firewall(&request)).await?.data;
            Ok(firewall_output(&data).notice(
                "The firewall is being created: `barrack firewalls show` follows its status.",
            ))
        }
        Command::Delete { id, force } => {
            let data = ctx
                .call(client.delete_firewall(&id, force))
                .await
                .map_err(|e| match e.status() {
                    // Attached: the API's answer names its own parameter (force=true), not the flag.
                    Some(409) if !force => e.with_hint(format!(
                        "detach it with `barrack firewalls detach {id} INSTANCE...`, or detach it from \
                         all its instances and delete it at once with `barrack firewalls delete {id} --force`"
                    )),
                    _ => e,
                })?
                .data;
            let mut text = format!("Deleted firewall {}", data.firewall_id);
            if !data.detached_instance_ids.is_empty() {
                text.push_str(&format!(
                    "; detaching it from {}",
                    data.detached_instance_ids.join(", ")
                ));
            }
            Ok(Output::new(&data, View::Text(text)).ids([data.firewall_id.clone()]))
        }
        Command::Rules(command) => rules(command, ctx).await,
        Command::Attach { id, instances } => {
            let data = ctx
                .call(client.attach_firewall(&id, &instances))
                .await?
                .data;
            Ok(attachment_output(&data))
        }
        Command::Detach { id, instances } => {
            let data = ctx
                .call(client.detach_firewall(&id, &instances))
                .await?
                .data;
            Ok(attachment_output(&data))
        }
        Command::Protocols => {
            let data = ctx.call(client.firewall_protocols()).await?.data;
            let mut table = Table::new(&["PROTOCOL", "NUMBER", "PORT RANGES"], "No protocols.");
            for p in &data.protocols {
                table.row([p.name.clone(), p.number.to_string(), yes_no(p.port_ranges)]);
            }
            let names: Vec<String> = data.protocols.iter().map(|p| p.name.clone()).collect();
            Ok(Output::new(&data, View::Table(table)).ids(names).notice(
                "A rule may also name a protocol by its number (0-255), or none for any protocol.",
            ))
        }
        Command::AvailableInstances { id, page } => {
            let data = ctx
                .call(client.firewall_available_instances(&id, &page.query()))
                .await?
                .data;
            let mut table = Table::new(
                &["ID", "NAME", "STATUS", "REGION", "IP", "ATTACHED"],
                "No ACTIVE instances in the firewall's region.",
            );
            for i in &data.instances {
                let attached = match &i.attachment_status {
                    Some(status) => format!("yes ({status})"),
                    None => "no".into(),
                };
                table.row([
                    i.instance_id.clone(),
                    i.name.clone(),
                    i.status.clone(),
                    i.region.clone(),
                    or_dash(i.ip_address.as_ref()),
                    attached,
                ]);
            }
            let view = super::paged(table, &data.pagination);
            let ids: Vec<String> = data
                .instances
                .iter()
                .map(|i| i.instance_id.clone())
                .collect();
            Ok(Output::new(&data, view).ids(ids))
        }
    }
}

async fn rules(command: RulesCommand, ctx: &Ctx) -> Result<Output, CliError> {
    match command {
        RulesCommand::Add {
            id,
            direction,
            protocol,
            ethertype,
            port_min,
            port_max,
            remote,
        } => {
            let rule = SecurityRuleRequest {
                direction,
                protocol,
                ethertype: ethertype.or_else(|| ipv6_ethertype(remote.as_deref())),
                port_range_min: port_min,
                port_range_max: port_max,
                remote_ip_prefix: remote,
            };
            let data = ctx
                .call(ctx.client.add_firewall_rule(&id, &rule))
                .await?
                .data;
            Ok(added_rule_output(&data, "Firewall", id))
        }
        RulesCommand::Remove { id, rule_id } => {
            let data = ctx
                .call(ctx.client.remove_firewall_rule(&id, &rule_id))
                .await?
                .data;
            Ok(removed_rule_output(&data, &data.rule_id, &data.firewall_id))
        }
    }
}

/// A firewall in full: its fields, its rules, then the instances it is attached to.
fn firewall_output(f: &Firewall) -> Output {
    let status = match &f.status_reason {
        Some(reason) => format!("{} ({reason})", f.status),
        None => f.status.clone(),
    };
    let fields = View::Fields(vec![
        ("ID", f.id.clone()),
        ("Name", f.name.clone()),
        (
            "Description",
            or_dash(Some(&f.description).filter(|d| !d.is_empty())),
        ),
        ("Status", status),
        ("Region", format!("{} ({})", f.region, f.tier)),
        ("Rules", f.rule_count.to_string()),
        ("Instances", f.attachment_count.to_string()),
        ("Created", f.created_at.clone()),
        ("Updated", f.updated_at.clone()),
    ]);
    let mut instances = Table::new(
        &["INSTANCE", "NAME", "INSTANCE STATUS", "ATTACHMENT"],
        "Not attached to any instance.",
    );
    for a in &f.instances {
        let attachment = match &a.status_reason {
            Some(reason) => format!("{} ({reason})", a.status),
            None => a.status.clone(),
        };
        instances.row([
            a.instance_id.clone(),
            a.instance_name.clone(),
            a.instance_status.clone(),
            attachment,
        ]);
    }
    let view = View::Sections(vec![
        fields,
        View::Table(rules_table(
            &f.rules,
            "No rules: the firewall allows nothing.",
        )),
        View::Table(instances),
    ]);
    Output::new(f, view).ids([f.id.clone()])
}

fn attachment_output(change: &FirewallAttachmentChange) -> Output {
    let lines: Vec<String> = change
        .instances
        .iter()
        .map(|a| {
            format!(
                "Firewall {}: {} instance {} started ({}, then {})",
                change.firewall_id, change.action, a.instance_id, a.status, a.target_status
            )
        })
        .collect();
    let ids: Vec<String> = change
        .instances
        .iter()
        .map(|a| a.instance_id.clone())
        .collect();
    Output::new(change, View::Text(lines.join("\n"))).ids(ids)
}

/// `barrack instances firewalls`: the firewalls attached to an instance, and their rules.
pub fn instance_firewalls_output(list: &InstanceFirewallList) -> Output {
    let mut table = Table::new(
        &["FIREWALL", "NAME", "ATTACHMENT", "RULES"],
        "No firewalls are attached.",
    );
    for f in &list.firewalls {
        let attachment = match &f.status_reason {
            Some(reason) => format!("{} ({reason})", f.status),
            None => f.status.clone(),
        };
        table.row([
            f.firewall_id.clone(),
            f.name.clone(),
            attachment,
            f.rules.len().to_string(),
        ]);
    }
    let rules: Vec<SecurityRule> = list
        .firewalls
        .iter()
        .flat_map(|f| f.rules.iter().cloned())
        .collect();
    let mut sections = vec![View::Table(table)];
    if !rules.is_empty() {
        sections.push(View::Table(rules_table(&rules, "")));
    }
    let ids: Vec<String> = list
        .firewalls
        .iter()
        .map(|f| f.firewall_id.clone())
        .collect();
    Output::new(list, View::Sections(sections)).ids(ids)
}

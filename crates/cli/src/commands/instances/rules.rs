//! `barrack instances rules`: an instance's own security rules, and the `--rule` syntax that `deploy` and
//! `barrack firewalls` share.

use barrack_api::instances::SecurityRuleRequest;
use clap::Subcommand;

use super::super::security_rules::{added_rule_output, ipv6_ethertype, removed_rule_output};
use super::super::{Ctx, Output};
use super::{Target, resolve};
use crate::error::CliError;

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
    /// Remove a security rule from an instance
    #[command(after_help = "Example:\n  barrack instances rules remove trainer BRK-A1B2C3R")]
    Remove {
        #[command(flatten)]
        target: Target,
        /// The rule's id (BRK-...R), as `barrack instances show` lists it
        rule_id: String,
    },
}

pub(super) async fn run(command: RulesCommand, ctx: &Ctx) -> Result<Output, CliError> {
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
                ethertype: ethertype.or_else(|| ipv6_ethertype(remote.as_deref())),
                port_range_min: port_min,
                port_range_max: port_max,
                remote_ip_prefix: remote,
            };
            let data = ctx
                .call(ctx.client.add_security_rule(&id, &rule))
                .await?
                .data;
            Ok(added_rule_output(&data, "Instance", id))
        }
        RulesCommand::Remove { target, rule_id } => {
            let id = resolve(ctx, &target.target).await?;
            // This answer is flat, without `data`: `-o json` prints all of it.
            let data = ctx
                .call(ctx.client.remove_security_rule(&id, &rule_id))
                .await?;
            Ok(removed_rule_output(&data, &data.rule_id, &data.instance_id))
        }
    }
}

/// `--rule DIRECTION[:PROTOCOL[:PORTS[:REMOTE]]]`; REMOTE is last so an IPv6 CIDR keeps its colons. The
/// API checks the values; this only takes the text apart.
pub(in crate::commands) fn parse_rule(text: &str) -> Result<SecurityRuleRequest, String> {
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
    let ethertype = ipv6_ethertype(remote_ip_prefix.as_deref());
    Ok(SecurityRuleRequest {
        direction,
        protocol,
        ethertype,
        port_range_min,
        port_range_max,
        remote_ip_prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

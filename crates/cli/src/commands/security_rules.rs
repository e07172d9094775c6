//! How security rules print, the same for an instance's own rules and a firewall's.

use barrack_api::instances::SecurityRule;
use serde::Serialize;

use super::Output;
use crate::output::{Table, View, or_dash};

/// `22`, `8000-8100`, or `any`.
pub(super) fn ports(rule: &SecurityRule) -> String {
    match (rule.port_range_min, rule.port_range_max) {
        (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
        (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
        _ => "any".to_string(),
    }
}

/// A table of rules: each with where it comes from.
pub(super) fn rules_table(rules: &[SecurityRule], empty: &'static str) -> Table {
    let mut table = Table::new(
        &[
            "RULE ID",
            "DIRECTION",
            "PROTOCOL",
            "PORTS",
            "REMOTE",
            "ETHERTYPE",
            "SOURCE",
        ],
        empty,
    );
    for r in rules {
        table.row([
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
    table
}

/// A rule just added to an instance or a firewall: `owner` labels `owner_id` (`Instance`, `Firewall`).
pub(super) fn added_rule_output(
    rule: &SecurityRule,
    owner: &'static str,
    owner_id: String,
) -> Output {
    let view = View::Fields(vec![
        ("ID", rule.id.clone()),
        (owner, owner_id),
        ("Direction", rule.direction.clone()),
        ("Protocol", or_dash(rule.protocol.as_ref())),
        ("Ports", ports(rule)),
        ("Remote", or_dash(rule.remote_ip_prefix.as_ref())),
        ("Ethertype", rule.ethertype.clone()),
    ]);
    Output::new(rule, view).ids([rule.id.clone()])
}

/// The answer to removing rule `rule_id` from `owner_id`.
pub(super) fn removed_rule_output<T: Serialize>(data: &T, rule_id: &str, owner_id: &str) -> Output {
    let view = View::Text(format!("Removed rule {rule_id} from {owner_id}"));
    Output::new(data, view).ids([rule_id.to_string()])
}

/// `IPv6` for an IPv6 CIDR, which a rule of the default ethertype (IPv4) cannot hold.
pub(crate) fn ipv6_ethertype(remote: Option<&str>) -> Option<String> {
    remote
        .filter(|r| r.contains(':'))
        .map(|_| "IPv6".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, ports: (Option<u16>, Option<u16>), remote: Option<&str>) -> SecurityRule {
        SecurityRule {
            id: id.into(),
            direction: "ingress".into(),
            protocol: remote.map(|_| "tcp".into()),
            ethertype: "IPv4".into(),
            port_range_min: ports.0,
            port_range_max: ports.1,
            remote_ip_prefix: remote.map(Into::into),
            source: "instance".into(),
        }
    }

    #[test]
    fn rules_print_with_their_ports_and_remote_or_the_defaults() {
        let rules = [
            rule("BRK-A1B2C3R", (Some(22), Some(22)), Some("203.0.113.0/24")),
            rule("BRK-D4E5F6R", (Some(8000), Some(8100)), Some("10.0.0.0/8")),
            rule("BRK-G7H8I9R", (None, None), None),
        ];
        assert_eq!(
            rules_table(&rules, "No security rules.").to_string(),
            "RULE ID      DIRECTION  PROTOCOL  PORTS      REMOTE          ETHERTYPE  SOURCE\n\
             BRK-A1B2C3R  ingress    tcp       22         203.0.113.0/24  IPv4       instance\n\
             BRK-D4E5F6R  ingress    tcp       8000-8100  10.0.0.0/8      IPv4       instance\n\
             BRK-G7H8I9R  ingress    any       any        anywhere        IPv4       instance\n"
        );
        assert_eq!(rules_table(&[], "No rules.").to_string(), "No rules.\n");
    }

    #[test]
    fn an_added_rule_names_its_owner_and_a_removed_one_both_ids() {
        let added = added_rule_output(
            &rule("BRK-G7H8I9R", (None, None), None),
            "Firewall",
            "BRK-A1B2C3F".into(),
        );
        assert_eq!(
            added.human(),
            "ID         BRK-G7H8I9R\n\
             Firewall   BRK-A1B2C3F\n\
             Direction  ingress\n\
             Protocol   -\n\
             Ports      any\n\
             Remote     -\n\
             Ethertype  IPv4\n"
        );
        let removed = removed_rule_output(&"{}", "BRK-G7H8I9R", "BRK-A1B2C3D");
        assert_eq!(
            removed.human(),
            "Removed rule BRK-G7H8I9R from BRK-A1B2C3D\n"
        );
    }
}

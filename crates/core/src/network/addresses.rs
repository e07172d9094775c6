//! Addresses and packet rules: CIDR parsing, public address pools, and the validation of security rules.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use barrack_api::instances::{SecurityRule, SecurityRuleRequest};
use barrack_store::instances::RuleRow;
use barrack_store::{StoreError, Tx, public_ips};
use rand::Rng;

use crate::platform::config::{Config, ConfigError};
use crate::platform::validate::Validator;

/// A CIDR block ([`IpNet`]), parsed with the messages the API gives for bad ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl Cidr {
    /// `address/prefix`; `prefix` must fit the address family.
    pub fn new(address: IpAddr, prefix: u8) -> Result<Cidr, String> {
        IpNet::new(address, prefix)
            .map(Cidr)
            .map_err(|_| format!("prefix length {prefix} does not fit {address}"))
    }

    /// Parses `a.b.c.d/n` or `x::y/n` (a bare address is a single host); the error says what is wrong.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("'{text}' is not an IP address or CIDR block"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix =
            match prefix {
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                    format!("prefix length of '{text}' must be between 0 and {max}")
                })?,
                None => max,
            };
        Cidr::new(address, prefix)
    }

    /// The address as written (host bits included).
    pub fn address(self) -> IpAddr {
        self.0.addr()
    }

    /// The block with host bits cleared.
    pub fn network(self) -> Cidr {
        Cidr(self.0.trunc())
    }

    /// Whether `ip` is in the block (never across address families).
    pub fn contains(self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Every region's `public_ip_pool` is a block [`Pool::parse`] accepts; run on a loaded configuration
/// (addresses are this domain's, so the configuration's own checks leave them here).
pub fn check_pools(config: &Config) -> Result<(), ConfigError> {
    for region in &config.regions {
        if let Err(e) = Pool::parse(&region.public_ip_pool) {
            return Err(ConfigError::Invalid(format!(
                "region '{}': public_ip_pool: {e}",
                region.name
            )));
        }
    }
    Ok(())
}

/// The usable addresses of an IPv4 pool (network and broadcast addresses excluded below /31), as a range:
/// addresses are picked from it when needed, never listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    first: u32,
    len: u32,
}

impl Pool {
    pub fn parse(cidr: &str) -> Result<Pool, String> {
        let IpNet::V4(block) = Cidr::parse(cidr)?.network().0 else {
            return Err(format!("'{cidr}' is not an IPv4 block"));
        };
        if block.prefix_len() < 16 {
            return Err(format!("'{cidr}' is larger than a /16"));
        }
        let size = 1u32 << (32 - block.prefix_len());
        let first = u32::from(block.network());
        Ok(if size > 2 {
            Pool {
                first: first + 1,
                len: size - 2,
            }
        } else {
            Pool { first, len: size }
        })
    }

    /// How many addresses the pool has.
    pub fn len(self) -> u32 {
        self.len
    }

    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// The `n`th usable address (`n < len`).
    pub fn address(self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.first + n % self.len.max(1))
    }
}

/// The pool of a configured region (`None` for a region the configuration does not know).
pub fn pool_of(config: &Config, region: &str) -> Option<Pool> {
    let region = config.regions.iter().find(|r| r.name == region)?;
    Pool::parse(&region.public_ip_pool).ok()
}

/// A random address of the region's pool (none when it has none), for a caller that tries it in a
/// statement of its own; [`assign_address`] finds another when it was taken.
pub fn candidate_address(config: &Config, region: &str) -> Option<Ipv4Addr> {
    let pool = pool_of(config, region).filter(|p| !p.is_empty())?;
    Some(pool.address(rand::thread_rng().gen_range(0..pool.len())))
}

/// Random picks before a pool is searched address by address: with an eighth of it free, seven in eight
/// allocations still end on a pick.
const PICKS: usize = 16;

/// Hands the instance a free address of its region's pool (or returns the one it holds, unless `may_hold`
/// says it cannot hold one, as an instance written in this transaction without a hold); `None` when the
/// pool is exhausted. Picks are random so that concurrent deploys try different addresses and do not
/// queue behind each other; only a nearly full pool is searched through the addresses handed out.
pub async fn assign_address(
    tx: &mut Tx,
    config: &Config,
    (region, instance_id): (&str, &str),
    may_hold: bool,
    now: i64,
) -> Result<Option<String>, StoreError> {
    if may_hold && let Some(address) = public_ips::held_by(tx, instance_id).await? {
        return Ok(Some(address));
    }
    let Some(pool) = pool_of(config, region).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let picks: Vec<u32> = {
        let mut rng = rand::thread_rng();
        (0..PICKS.min(pool.len() as usize))
            .map(|_| rng.gen_range(0..pool.len()))
            .collect()
    };
    for n in picks {
        if let Some(found) = try_take(tx, region, pool.address(n), instance_id, now).await? {
            return Ok(Some(found));
        }
    }
    let taken: HashSet<String> = public_ips::taken_in(tx, region)
        .await?
        .into_iter()
        .collect();
    let start = rand::thread_rng().gen_range(0..pool.len());
    for n in 0..pool.len() {
        let address = pool.address(start.wrapping_add(n) % pool.len());
        if taken.contains(&address.to_string()) {
            continue;
        }
        if let Some(found) = try_take(tx, region, address, instance_id, now).await? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// Takes `address`, or learns that the instance got one meanwhile (a concurrent completion or toggle).
async fn try_take(
    tx: &mut Tx,
    region: &str,
    address: Ipv4Addr,
    instance_id: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let address = address.to_string();
    if public_ips::take(tx, region, &address, instance_id, now).await? {
        return Ok(Some(address));
    }
    public_ips::held_by(tx, instance_id).await
}

/// IP protocols accepted in rules by name, with their numbers (as OpenStack Neutron accepts them).
pub const PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("icmp", 1),
    ("icmpv6", 58),
    ("igmp", 2),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];

/// A rule after validation, in its canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ValidRule {
    pub direction: String,
    pub ethertype: String,
    /// Lowercase name or number; `None` is any protocol.
    pub protocol: Option<String>,
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    /// Normalised CIDR; `None` is anywhere.
    pub remote_ip_prefix: Option<String>,
}

impl ValidRule {
    /// Whether `other` is the same rule: the same fields, the protocol compared by number, so that
    /// `tcp` and `6` (or `icmpv6` and `ipv6-icmp`) are one.
    pub fn same_as(&self, other: &ValidRule) -> bool {
        let number = |protocol: &Option<String>| {
            protocol
                .as_deref()
                .map(crate::network::packets::protocol_number)
        };
        self.direction == other.direction
            && self.ethertype == other.ethertype
            && number(&self.protocol) == number(&other.protocol)
            && self.port_range_min == other.port_range_min
            && self.port_range_max == other.port_range_max
            && self.remote_ip_prefix == other.remote_ip_prefix
    }
}

/// Whether rules of the protocol take port ranges.
pub fn port_protocol(protocol: Option<&str>) -> bool {
    matches!(
        protocol,
        Some("tcp" | "udp" | "sctp" | "dccp" | "udplite" | "6" | "17" | "132" | "33" | "136")
    )
}

/// Checks a list of rules, each under `field[i].`, and refuses the same rule twice (`field[i]`).
pub fn validate_rules(
    v: &mut Validator,
    field: &str,
    requests: &[SecurityRuleRequest],
) -> Vec<ValidRule> {
    let rules: Vec<(usize, ValidRule)> = requests
        .iter()
        .enumerate()
        .filter_map(|(i, rule)| validate_rule(v, &format!("{field}[{i}]."), rule).map(|r| (i, r)))
        .collect();
    for (n, (i, rule)) in rules.iter().enumerate() {
        v.check(
            !rules[..n].iter().any(|(_, earlier)| earlier.same_as(rule)),
            &format!("{field}[{i}]"),
            "Duplicate rule",
        );
    }
    rules.into_iter().map(|(_, rule)| rule).collect()
}

/// Checks one rule; field errors are reported under `prefix` (e.g. `security_rules[0].`).
pub fn validate_rule(
    v: &mut Validator,
    prefix: &str,
    rule: &SecurityRuleRequest,
) -> Option<ValidRule> {
    let field = |name: &str| format!("{prefix}{name}");
    let before = v.error_count();
    let direction = rule.direction.trim().to_lowercase();
    v.check(
        matches!(direction.as_str(), "ingress" | "egress"),
        &field("direction"),
        "Direction must be 'ingress' or 'egress'",
    );
    let ethertype = match rule.ethertype.as_deref().map(str::trim) {
        None | Some("") => "IPv4".to_string(),
        Some(e) if e.eq_ignore_ascii_case("ipv4") => "IPv4".to_string(),
        Some(e) if e.eq_ignore_ascii_case("ipv6") => "IPv6".to_string(),
        Some(_) => {
            v.add(&field("ethertype"), "Ethertype must be 'IPv4' or 'IPv6'");
            String::new()
        }
    };
    let protocol = match rule.protocol.as_deref().map(|p| p.trim().to_lowercase()) {
        None => None,
        Some(p) if p.is_empty() || p == "any" => None,
        Some(p) if PROTOCOLS.iter().any(|(name, _)| *name == p) => Some(p),
        // A number in its plain decimal form ("06" and "+6" are 6), so that it is one protocol for
        // port ranges, duplicates and what is shown.
        Some(p) => match p.parse::<u8>() {
            Ok(number) => Some(number.to_string()),
            Err(_) => {
                v.add(&field("protocol"), format!("Unknown protocol '{p}': use tcp, udp, icmp, another IP protocol name, or a number 0-255"));
                None
            }
        },
    };
    if protocol.as_deref() == Some("icmp") && ethertype == "IPv6" {
        v.add(&field("protocol"), "Use 'ipv6-icmp' for ICMP over IPv6");
    }
    let (min, max) = (rule.port_range_min, rule.port_range_max);
    let mut ports = (None, None);
    match (min, max) {
        (None, None) => {}
        (Some(_), None) | (None, Some(_)) => {
            v.add(
                &field("port_range_min"),
                "Give both port_range_min and port_range_max, or neither",
            );
        }
        (Some(lo), Some(hi)) => {
            if !port_protocol(protocol.as_deref()) {
                v.add(
                    &field("port_range_min"),
                    "Port ranges apply only to tcp, udp, sctp, dccp and udplite rules",
                );
            }
            for (name, port) in [("port_range_min", lo), ("port_range_max", hi)] {
                v.check(
                    (1..=65535).contains(&port),
                    &field(name),
                    "Ports must be between 1 and 65535",
                );
            }
            v.check(
                lo <= hi,
                &field("port_range_max"),
                "port_range_max must not be less than port_range_min",
            );
            ports = (u16::try_from(lo).ok(), u16::try_from(hi).ok());
        }
    }
    let remote = match rule.remote_ip_prefix.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match Cidr::parse(text) {
            Err(e) => {
                v.add(&field("remote_ip_prefix"), e);
                None
            }
            Ok(cidr) => {
                if (ethertype == "IPv4") != cidr.address().is_ipv4() {
                    v.add(
                        &field("remote_ip_prefix"),
                        format!("'{text}' does not match ethertype {ethertype}"),
                    );
                }
                if cidr.network() != cidr {
                    // Host bits are refused rather than silently dropped: the sender may have meant another block.
                    v.add(
                        &field("remote_ip_prefix"),
                        format!(
                            "'{text}' has host bits set; did you mean {}?",
                            cidr.network()
                        ),
                    );
                }
                Some(cidr.to_string())
            }
        },
    };
    (v.error_count() == before).then_some(ValidRule {
        direction,
        ethertype,
        protocol,
        port_range_min: ports.0,
        port_range_max: ports.1,
        remote_ip_prefix: remote,
    })
}

/// The rule an instance's stored row holds.
pub fn valid_rule_of(row: &RuleRow) -> ValidRule {
    ValidRule {
        direction: row.direction.clone(),
        ethertype: row.ethertype.clone(),
        protocol: row.protocol.clone(),
        port_range_min: row.port_range_min.and_then(|p| u16::try_from(p).ok()),
        port_range_max: row.port_range_max.and_then(|p| u16::try_from(p).ok()),
        remote_ip_prefix: row.remote_ip_prefix.clone(),
    }
}

/// The wire form of an instance's own rule.
pub fn rule_view(id: &str, rule: &ValidRule) -> SecurityRule {
    SecurityRule {
        id: id.to_string(),
        direction: rule.direction.clone(),
        protocol: rule.protocol.clone(),
        ethertype: rule.ethertype.clone(),
        port_range_min: rule.port_range_min,
        port_range_max: rule.port_range_max,
        remote_ip_prefix: rule.remote_ip_prefix.clone(),
        source: "instance".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: serde_json::Value) -> Result<ValidRule, Vec<String>> {
        let request: SecurityRuleRequest = serde_json::from_value(json).unwrap();
        let mut v = Validator::new();
        let valid = validate_rule(&mut v, "", &request);
        match v.finish() {
            Ok(()) => Ok(valid.unwrap()),
            Err(e) => Err(e.field_errors().unwrap().keys().cloned().collect()),
        }
    }

    #[test]
    fn pools_exclude_network_and_broadcast() {
        let pool = Pool::parse("203.0.113.0/29").unwrap();
        assert_eq!(pool.address(0).to_string(), "203.0.113.1");
        assert_eq!(pool.address(5).to_string(), "203.0.113.6");
        assert_eq!(pool.len(), 6);
        let big = Pool::parse("10.1.0.0/16").unwrap();
        assert_eq!(big.len(), 65_534);
        assert_eq!(big.address(65_533).to_string(), "10.1.255.254");
        let pair = Pool::parse("100.64.0.8/31").unwrap();
        assert_eq!(
            (pair.len(), pair.address(1).to_string().as_str()),
            (2, "100.64.0.9")
        );
        assert!(Pool::parse("2001:db8::/64").is_err());
        assert!(Pool::parse("10.0.0.0/8").is_err());
    }

    #[test]
    fn rules_are_validated_field_by_field() {
        let ok = rule(serde_json::json!({"direction": "ingress", "protocol": "TCP", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "203.0.113.0/24"})).unwrap();
        assert_eq!(
            (ok.protocol.as_deref(), ok.ethertype.as_str()),
            (Some("tcp"), "IPv4")
        );
        assert_eq!(
            rule(serde_json::json!({"direction": "sideways"})).unwrap_err(),
            ["direction"]
        );
        assert_eq!(
            rule(
                serde_json::json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 22})
            )
            .unwrap_err(),
            ["port_range_min"]
        );
        assert_eq!(rule(serde_json::json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 0, "port_range_max": 70000})).unwrap_err(), ["port_range_max", "port_range_min"]);
        assert_eq!(rule(serde_json::json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80})).unwrap_err(), ["port_range_max"]);
        assert_eq!(rule(serde_json::json!({"direction": "ingress", "protocol": "icmp", "port_range_min": 1, "port_range_max": 2})).unwrap_err(), ["port_range_min"]);
        assert_eq!(
            rule(serde_json::json!({"direction": "ingress", "remote_ip_prefix": "10.0.0.5/24"}))
                .unwrap_err(),
            ["remote_ip_prefix"]
        );
        assert_eq!(
            rule(serde_json::json!({"direction": "ingress", "remote_ip_prefix": "10.0.0.0/33"}))
                .unwrap_err(),
            ["remote_ip_prefix"]
        );
        assert_eq!(rule(serde_json::json!({"direction": "ingress", "ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"})).unwrap_err(), ["remote_ip_prefix"]);
        assert_eq!(
            rule(serde_json::json!({"direction": "egress", "protocol": "teleport"})).unwrap_err(),
            ["protocol"]
        );
        let v6 = rule(serde_json::json!({"direction": "egress", "ethertype": "ipv6", "remote_ip_prefix": "2001:db8::/32", "protocol": "58"})).unwrap();
        assert_eq!(v6.remote_ip_prefix.as_deref(), Some("2001:db8::/32"));
    }

    /// Every address of a pool, in order.
    fn pool_addresses(cidr: &str) -> Result<Vec<String>, String> {
        let pool = Pool::parse(cidr)?;
        Ok((0..pool.len())
            .map(|n| pool.address(n).to_string())
            .collect())
    }

    #[test]
    fn pools_exclude_network_and_broadcast_below_a_31() {
        let pool = pool_addresses("198.51.100.0/30").unwrap();
        assert_eq!(pool, ["198.51.100.1", "198.51.100.2"]);
        assert_eq!(pool_addresses("203.0.113.128/25").unwrap().len(), 126);
        assert_eq!(
            pool_addresses("192.0.2.4/31").unwrap(),
            ["192.0.2.4", "192.0.2.5"]
        );
        assert_eq!(pool_addresses("192.0.2.9/32").unwrap(), ["192.0.2.9"]);
        // Host bits are cleared, as before.
        assert_eq!(
            pool_addresses("198.51.100.7/30").unwrap()[0],
            "198.51.100.5"
        );
        assert!(pool_addresses("10.0.0.0/8").unwrap_err().contains("/16"));
        assert!(
            pool_addresses("2001:db8::/120")
                .unwrap_err()
                .contains("IPv4")
        );
    }

    #[test]
    fn cidr_host_bits_and_families() {
        let with_host = Cidr::parse("10.1.2.3/16").unwrap();
        assert_eq!(with_host.network().to_string(), "10.1.0.0/16");
        assert_ne!(with_host.network(), with_host);
        assert_eq!(
            Cidr::parse("2001:db8::1").unwrap().to_string(),
            "2001:db8::1/128"
        );
        assert!(
            !Cidr::parse("::/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("10.0.0.0/33")
                .unwrap_err()
                .contains("between 0 and 32")
        );
    }

    #[test]
    fn cidr_containment() {
        let block = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(block.contains("10.1.200.3".parse().unwrap()));
        assert!(!block.contains("10.2.0.1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }
}

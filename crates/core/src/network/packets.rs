//! Would this traffic be allowed? The pure answer for a set of security rules, in OpenStack Neutron's
//! terms: rules are allow-lists, a packet is allowed when any one rule allows it (so several firewalls on
//! one instance, and its own rules, apply together), and what no rule allows is dropped.

use std::net::IpAddr;

use crate::network::{Cidr, PROTOCOLS, ValidRule};

/// Which way traffic goes, seen from the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// To the instance, from `remote`.
    Ingress,
    /// From the instance, to `remote`.
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// A packet as rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Packet {
    pub direction: Direction,
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, 58 ipv6-icmp, ...).
    pub protocol: u8,
    /// Destination port, for the protocols that have ports.
    pub port: Option<u16>,
    /// The other end: where ingress traffic comes from, or where egress traffic goes. Its family is the
    /// packet's ethertype.
    pub remote: IpAddr,
}

/// The protocol number of a rule's protocol: a name Neutron accepts, or a number 0–255.
pub fn protocol_number(protocol: &str) -> Option<u8> {
    PROTOCOLS
        .iter()
        .find(|(name, _)| *name == protocol)
        .map(|(_, number)| *number)
        .or_else(|| protocol.parse().ok())
}

/// Whether one rule allows the packet.
pub fn rule_allows(rule: &ValidRule, packet: &Packet) -> bool {
    if rule.direction != packet.direction.as_str() {
        return false;
    }
    let ethertype = if packet.remote.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    };
    if rule.ethertype != ethertype {
        return false;
    }
    if let Some(protocol) = &rule.protocol
        && protocol_number(protocol) != Some(packet.protocol)
    {
        return false;
    }
    if let (Some(min), Some(max)) = (rule.port_range_min, rule.port_range_max)
        && !packet.port.is_some_and(|port| (min..=max).contains(&port))
    {
        return false;
    }
    match &rule.remote_ip_prefix {
        None => true,
        Some(prefix) => Cidr::parse(prefix).is_ok_and(|cidr| cidr.contains(packet.remote)),
    }
}

/// Whether a rule set allows the packet: the union of what its rules allow.
pub fn allowed(rules: &[ValidRule], packet: &Packet) -> bool {
    rules.iter().any(|rule| rule_allows(rule, packet))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use barrack_api::instances::SecurityRuleRequest;

    use super::*;
    use crate::network::validate_rule;
    use crate::platform::validate::Validator;

    /// A rule as the API takes it, validated into its canonical form.
    fn rule(
        direction: &str,
        ethertype: &str,
        protocol: Option<&str>,
        ports: Option<(u32, u32)>,
        remote: Option<&str>,
    ) -> ValidRule {
        let request = SecurityRuleRequest {
            direction: direction.into(),
            protocol: protocol.map(str::to_string),
            ethertype: Some(ethertype.into()),
            port_range_min: ports.map(|p| p.0),
            port_range_max: ports.map(|p| p.1),
            remote_ip_prefix: remote.map(str::to_string),
        };
        let mut v = Validator::new();
        let valid = validate_rule(&mut v, "", &request);
        v.finish().unwrap_or_else(|e| panic!("{request:?}: {e:?}"));
        valid.unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const DIRECTIONS: [Direction; 2] = [Direction::Ingress, Direction::Egress];
    const EDGE_PORTS: [Option<u16>; 8] = [
        None,
        Some(1),
        Some(21),
        Some(22),
        Some(23),
        Some(24),
        Some(1024),
        Some(65535),
    ];

    /// Every direction, every protocol number, the ports at the edges of the rule's range and addresses on
    /// both sides of its block's edges (and of the other family): exactly the packets the rule describes.
    #[test]
    fn one_rule_allows_exactly_what_it_says() {
        let ssh = rule(
            "ingress",
            "IPv4",
            Some("tcp"),
            Some((22, 23)),
            Some("203.0.113.0/24"),
        );
        let addresses = [
            ("203.0.113.0", true),
            ("203.0.113.7", true),
            ("203.0.113.255", true),
            ("203.0.112.255", false),
            ("203.0.114.0", false),
            ("10.0.0.1", false),
            ("2001:db8::1", false),
            ("::ffff:203.0.113.7", false),
        ];
        for direction in DIRECTIONS {
            for protocol in 0..=255u8 {
                for port in EDGE_PORTS {
                    for (address, inside) in addresses {
                        let packet = Packet {
                            direction,
                            protocol,
                            port,
                            remote: ip(address),
                        };
                        let expected = direction == Direction::Ingress
                            && protocol == 6
                            && matches!(port, Some(22 | 23))
                            && inside;
                        assert_eq!(
                            allowed(std::slice::from_ref(&ssh), &packet),
                            expected,
                            "{packet:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn wildcards_protocols_families_and_unions() {
        let all_addresses = [
            "0.0.0.0",
            "10.0.0.1",
            "255.255.255.255",
            "::",
            "2001:db8::1",
            "fe80::1",
        ];
        let every = |rules: &[ValidRule], expect: &dyn Fn(&Packet) -> bool| {
            for direction in DIRECTIONS {
                for protocol in 0..=255u8 {
                    for port in EDGE_PORTS {
                        for address in all_addresses {
                            let packet = Packet {
                                direction,
                                protocol,
                                port,
                                remote: ip(address),
                            };
                            assert_eq!(allowed(rules, &packet), expect(&packet), "{packet:?}");
                        }
                    }
                }
            }
        };
        // Nothing is allowed without rules.
        every(&[], &|_| false);
        // Any protocol, any port, anywhere: all of one direction and family, nothing else.
        every(&[rule("egress", "IPv4", None, None, None)], &|p| {
            p.direction == Direction::Egress && p.remote.is_ipv4()
        });
        every(&[rule("ingress", "IPv6", Some("any"), None, None)], &|p| {
            p.direction == Direction::Ingress && p.remote.is_ipv6()
        });
        // ICMP has no ports: every packet of the protocol, whatever port it carries.
        every(&[rule("ingress", "IPv4", Some("icmp"), None, None)], &|p| {
            p.direction == Direction::Ingress && p.remote.is_ipv4() && p.protocol == 1
        });
        every(
            &[rule("ingress", "IPv6", Some("ipv6-icmp"), None, None)],
            &|p| p.direction == Direction::Ingress && p.remote.is_ipv6() && p.protocol == 58,
        );
        // Protocols by number and by name are the same rule.
        every(&[rule("egress", "IPv4", Some("17"), None, None)], &|p| {
            p.direction == Direction::Egress && p.remote.is_ipv4() && p.protocol == 17
        });
        // A port range without a port (a packet of a protocol without ports) is not matched.
        every(
            &[rule("ingress", "IPv4", Some("udp"), Some((1, 65535)), None)],
            &|p| {
                p.direction == Direction::Ingress
                    && p.remote.is_ipv4()
                    && p.protocol == 17
                    && p.port.is_some()
            },
        );
        // /0 is everywhere of its family; a host route one address.
        every(&[rule("ingress", "IPv6", None, None, Some("::/0"))], &|p| {
            p.direction == Direction::Ingress && p.remote.is_ipv6()
        });
        every(
            &[rule("egress", "IPv6", None, None, Some("2001:db8::1/128"))],
            &|p| p.direction == Direction::Egress && p.remote == ip("2001:db8::1"),
        );
        // Several rules (several firewalls) allow the union of what each allows.
        let web = rule("ingress", "IPv4", Some("tcp"), Some((22, 23)), None);
        let dns = rule("egress", "IPv6", Some("udp"), Some((1, 21)), None);
        every(&[web.clone(), dns.clone()], &|p| {
            allowed(std::slice::from_ref(&web), p) || allowed(std::slice::from_ref(&dns), p)
        });
        // A duplicate changes nothing.
        every(&[web.clone(), web.clone()], &|p| {
            allowed(std::slice::from_ref(&web), p)
        });
    }

    /// A small deterministic random generator (xorshift64*), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    const V4: [&str; 8] = [
        "10.0.0.1",
        "10.0.0.200",
        "10.1.0.1",
        "192.168.1.1",
        "203.0.113.5",
        "203.0.113.130",
        "8.8.8.8",
        "0.0.0.0",
    ];
    const V6: [&str; 5] = [
        "2001:db8::1",
        "2001:db8:1::1",
        "2001:db8::8000:1",
        "fe80::1",
        "::1",
    ];
    const PORTS: [u16; 11] = [1, 22, 23, 79, 80, 81, 443, 1024, 8000, 8100, 65535];
    const PROTOCOL_NUMBERS: [u8; 7] = [1, 6, 17, 47, 58, 132, 200];

    /// A valid rule drawn from a small universe of directions, protocols, ports and addresses.
    fn random_rule(rng: &mut Rng) -> ValidRule {
        let direction = *rng.pick(&["ingress", "egress"]);
        let v6 = rng.below(2) == 1;
        let protocol = if v6 {
            *rng.pick(&[
                None,
                Some("tcp"),
                Some("udp"),
                Some("ipv6-icmp"),
                Some("6"),
                Some("gre"),
                Some("sctp"),
            ])
        } else {
            *rng.pick(&[
                None,
                Some("tcp"),
                Some("udp"),
                Some("icmp"),
                Some("17"),
                Some("gre"),
                Some("sctp"),
            ])
        };
        let ports = match protocol {
            Some("tcp" | "udp" | "6" | "17" | "sctp") if rng.below(3) > 0 => {
                let a = u32::from(*rng.pick(&PORTS));
                let b = u32::from(*rng.pick(&PORTS));
                Some((a.min(b), a.max(b)))
            }
            _ => None,
        };
        let remote = (rng.below(3) > 0).then(|| {
            let (address, max) = if v6 {
                (ip(rng.pick::<&str>(&V6)), 128)
            } else {
                (ip(rng.pick::<&str>(&V4)), 32)
            };
            let prefix = rng.below(max + 1) as u8;
            Cidr::new(address, prefix)
                .expect("prefix within the family")
                .network()
                .to_string()
        });
        rule(
            direction,
            if v6 { "IPv6" } else { "IPv4" },
            protocol,
            ports,
            remote.as_deref(),
        )
    }

    /// Every packet of the universe.
    fn universe() -> Vec<Packet> {
        let mut packets = Vec::new();
        for direction in DIRECTIONS {
            for protocol in PROTOCOL_NUMBERS {
                let ports: Vec<Option<u16>> = if matches!(protocol, 6 | 17 | 132) {
                    PORTS.iter().copied().map(Some).collect()
                } else {
                    vec![None]
                };
                for port in ports {
                    for address in V4.iter().chain(V6.iter()) {
                        packets.push(Packet {
                            direction,
                            protocol,
                            port,
                            remote: ip(address),
                        });
                    }
                }
            }
        }
        packets
    }

    /// The reference model: each rule is expanded into the set of packets of the universe it describes,
    /// written without the code under test (addresses compared bit by bit as text, protocols from a table
    /// of their own), and a rule set allows the union of those sets.
    fn reference_set(rules: &[ValidRule], universe: &[Packet]) -> HashSet<Packet> {
        fn bits(address: IpAddr) -> String {
            match address {
                IpAddr::V4(a) => format!("{:032b}", u32::from(a)),
                IpAddr::V6(a) => format!("{:0128b}", u128::from(a)),
            }
        }
        fn number(protocol: &str) -> u8 {
            match protocol {
                "tcp" | "6" => 6,
                "udp" | "17" => 17,
                "icmp" => 1,
                "ipv6-icmp" => 58,
                "gre" => 47,
                "sctp" => 132,
                other => panic!("protocol {other} is not in the universe"),
            }
        }
        let mut set = HashSet::new();
        for rule in rules {
            for packet in universe {
                let family = match packet.remote {
                    IpAddr::V4(_) => "IPv4",
                    IpAddr::V6(_) => "IPv6",
                };
                let within = match &rule.remote_ip_prefix {
                    None => true,
                    Some(prefix) => {
                        let (address, length) = prefix.split_once('/').unwrap();
                        let address: IpAddr = address.parse().unwrap();
                        let length: usize = length.parse().unwrap();
                        address.is_ipv4() == packet.remote.is_ipv4()
                            && bits(address)[..length] == bits(packet.remote)[..length]
                    }
                };
                let ports = match (rule.port_range_min, rule.port_range_max) {
                    (Some(lo), Some(hi)) => packet.port.is_some_and(|p| lo <= p && p <= hi),
                    _ => true,
                };
                if rule.direction == packet.direction.as_str()
                    && rule.ethertype == family
                    && rule
                        .protocol
                        .as_deref()
                        .is_none_or(|p| number(p) == packet.protocol)
                    && ports
                    && within
                {
                    set.insert(*packet);
                }
            }
        }
        set
    }

    /// For random rule sets and every packet of the universe, `allowed` is the union the reference model
    /// computes.
    #[test]
    fn allowed_is_the_union_of_the_rules() {
        let universe = universe();
        let mut rng = Rng(0x5eed_ba5e_ba11_f00d);
        let mut seen_allowed = 0usize;
        for round in 0..400 {
            let rules: Vec<ValidRule> = (0..rng.below(7)).map(|_| random_rule(&mut rng)).collect();
            let expected = reference_set(&rules, &universe);
            seen_allowed += expected.len();
            for packet in &universe {
                assert_eq!(
                    allowed(&rules, packet),
                    expected.contains(packet),
                    "round {round}: {packet:?} against {rules:#?}"
                );
            }
        }
        assert!(
            seen_allowed > 10_000,
            "the rules allow a fair share of traffic"
        );
    }

    #[test]
    fn protocol_numbers() {
        assert_eq!(protocol_number("tcp"), Some(6));
        assert_eq!(protocol_number("icmpv6"), Some(58));
        assert_eq!(protocol_number("ipv6-icmp"), Some(58));
        assert_eq!(protocol_number("250"), Some(250));
        assert_eq!(protocol_number("teleport"), None);
    }
}

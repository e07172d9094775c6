//! The libvirt XML this driver writes, and the few facts it reads back from libvirt's XML.
//!
//! libvirt's own output is regular (attributes in single quotes, one element per line), so reading it
//! back needs only the small scanners here rather than a general XML parser.

use std::fmt::Write as _;

use crate::PacketRule;

/// The namespace of this driver's `<metadata>` element.
pub const METADATA_URI: &str = "https://barrack.dev/xmlns/libvirt/instance/1";
pub const METADATA_KEY: &str = "barrack";

/// Escapes text for an XML attribute or element.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// A PCI address `DDDD:BB:SS.F` of a GPU on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    pub domain: u16,
    pub bus: u8,
    pub slot: u8,
    pub function: u8,
}

impl PciAddress {
    pub fn parse(text: &str) -> Result<PciAddress, String> {
        let bad = || format!("{text:?} is not a PCI address like 0000:17:00.0");
        let (domain, rest) = text.split_once(':').ok_or_else(bad)?;
        let (bus, rest) = rest.split_once(':').ok_or_else(bad)?;
        let (slot, function) = rest.split_once('.').ok_or_else(bad)?;
        Ok(PciAddress {
            domain: u16::from_str_radix(domain, 16).map_err(|_| bad())?,
            bus: u8::from_str_radix(bus, 16).map_err(|_| bad())?,
            slot: u8::from_str_radix(slot, 16)
                .ok()
                .filter(|s| *s < 32)
                .ok_or_else(bad)?,
            function: u8::from_str_radix(function, 16)
                .ok()
                .filter(|f| *f < 8)
                .ok_or_else(bad)?,
        })
    }

    pub fn hostdev_xml(&self) -> String {
        format!(
            "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{:x}'/></source></hostdev>",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

impl std::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

/// A disk of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskXml {
    pub path: String,
    pub format: String,
    /// `vda`, `vdb`, …
    pub target: String,
    pub read_only: bool,
    /// Shown to the guest (`/dev/disk/by-id/virtio-<serial>`); at most 20 characters.
    pub serial: Option<String>,
}

impl DiskXml {
    pub fn to_xml(&self) -> String {
        let mut xml = format!(
            "<disk type='file' device='disk'><driver name='qemu' type='{}' discard='unmap'/><source file='{}'/><target dev='{}' bus='virtio'/>",
            escape(&self.format),
            escape(&self.path),
            escape(&self.target)
        );
        if let Some(serial) = &self.serial {
            let _ = write!(xml, "<serial>{}</serial>", escape(serial));
        }
        if self.read_only {
            xml.push_str("<readonly/>");
        }
        xml.push_str("</disk>");
        xml
    }
}

/// How the guest reaches the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceXml {
    /// QEMU user networking with the guest's port 22 forwarded to `address:port` on the host.
    User {
        address: String,
        port: u16,
    },
    Network {
        name: String,
        filter: String,
    },
    Bridge {
        name: String,
        filter: String,
    },
}

/// What goes into a domain's definition.
#[derive(Debug, Clone)]
pub struct DomainXml {
    pub name: String,
    pub domain_type: String,
    pub machine: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
    pub disks: Vec<DiskXml>,
    pub interface: InterfaceXml,
    pub mac: String,
    pub gpus: Vec<PciAddress>,
    pub console_log: String,
    pub hotplug_ports: u32,
    pub metadata: Metadata,
}

/// This driver's facts about a domain, kept in its `<metadata>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub host: String,
    pub gpu_model: String,
    pub gpu_count: u32,
    /// Shelved with its GPUs released (passthrough domains cannot be managed-saved).
    pub hibernated: bool,
    /// GPUs held without a device (hosts configured with `passthrough = false`); passed-through ones are
    /// the domain's hostdevs.
    pub gpus: Vec<PciAddress>,
}

impl Metadata {
    pub fn to_xml(&self) -> String {
        let gpus: Vec<String> = self.gpus.iter().map(ToString::to_string).collect();
        format!(
            "<instance host='{}' gpu-model='{}' gpu-count='{}' hibernated='{}' gpus='{}'/>",
            escape(&self.host),
            escape(&self.gpu_model),
            self.gpu_count,
            if self.hibernated { "yes" } else { "no" },
            gpus.join(",")
        )
    }

    /// Reads the element back from a domain's XML (in any namespace prefix libvirt gave it).
    pub fn from_domain_xml(xml: &str) -> Option<Metadata> {
        let start = xml.find(":instance ")?;
        let element = &xml[start..start + xml[start..].find('>')?];
        Some(Metadata {
            host: attribute(element, "host")?,
            gpu_model: attribute(element, "gpu-model").unwrap_or_default(),
            gpu_count: attribute(element, "gpu-count")?.parse().ok()?,
            hibernated: attribute(element, "hibernated").as_deref() == Some("yes"),
            gpus: attribute(element, "gpus")
                .unwrap_or_default()
                .split(',')
                .filter_map(|a| PciAddress::parse(a).ok())
                .collect(),
        })
    }
}

impl DomainXml {
    pub fn to_xml(&self) -> String {
        let mut x = String::new();
        let user = matches!(self.interface, InterfaceXml::User { .. });
        let _ = write!(
            x,
            "<domain type='{}'{}>\n  <name>{}</name>\n",
            escape(&self.domain_type),
            if user {
                " xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'"
            } else {
                ""
            },
            escape(&self.name)
        );
        let _ = writeln!(
            x,
            "  <metadata><{METADATA_KEY}:instance xmlns:{METADATA_KEY}='{METADATA_URI}' {}</metadata>",
            &self.metadata.to_xml()["<instance ".len()..]
        );
        let _ = writeln!(
            x,
            "  <memory unit='MiB'>{}</memory>\n  <vcpu>{}</vcpu>",
            self.memory_mb, self.vcpus
        );
        let _ = writeln!(
            x,
            "  <os>\n    <type arch='x86_64' machine='{}'>hvm</type>",
            escape(&self.machine)
        );
        if let Some(kernel) = &self.kernel {
            let _ = writeln!(x, "    <kernel>{}</kernel>", escape(kernel));
        }
        if let Some(initrd) = &self.initrd {
            let _ = writeln!(x, "    <initrd>{}</initrd>", escape(initrd));
        }
        if let Some(cmdline) = &self.cmdline {
            let _ = writeln!(x, "    <cmdline>{}</cmdline>", escape(cmdline));
        }
        if self.kernel.is_none() {
            x.push_str("    <boot dev='hd'/>\n");
        }
        x.push_str("  </os>\n  <features><acpi/><apic/></features>\n");
        if self.domain_type == "kvm" {
            x.push_str("  <cpu mode='host-passthrough'/>\n");
        }
        x.push_str("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n  <devices>\n");
        for disk in &self.disks {
            let _ = writeln!(x, "    {}", disk.to_xml());
        }
        match &self.interface {
            InterfaceXml::User { .. } => {}
            InterfaceXml::Network { name, filter } => {
                let _ = writeln!(
                    x,
                    "    <interface type='network'><mac address='{}'/><source network='{}'/><model type='virtio'/><filterref filter='{}'/></interface>",
                    self.mac,
                    escape(name),
                    escape(filter)
                );
            }
            InterfaceXml::Bridge { name, filter } => {
                let _ = writeln!(
                    x,
                    "    <interface type='bridge'><mac address='{}'/><source bridge='{}'/><model type='virtio'/><filterref filter='{}'/></interface>",
                    self.mac,
                    escape(name),
                    escape(filter)
                );
            }
        }
        for gpu in &self.gpus {
            let _ = writeln!(x, "    {}", gpu.hostdev_xml());
        }
        if self.machine.starts_with("q35") {
            // Every PCIe device takes a root port (libvirt fills the listed ones first): one per disk,
            // GPU, the balloon, the USB controller and the interface, plus spares to hot-plug into.
            x.push_str("    <controller type='pci' index='0' model='pcie-root'/>\n");
            let ports = self.disks.len() as u32 + self.gpus.len() as u32 + 3 + self.hotplug_ports;
            for _ in 0..ports {
                x.push_str("    <controller type='pci' model='pcie-root-port'/>\n");
            }
        }
        let _ = writeln!(
            x,
            "    <serial type='file'><source path='{}' append='on'/><target port='0'/></serial>",
            escape(&self.console_log)
        );
        x.push_str("    <memballoon model='virtio'/>\n  </devices>\n");
        if let InterfaceXml::User { address, port } = &self.interface {
            // libvirt 9's own user interface cannot forward ports (that needs passt support, 9.2+), so
            // QEMU gets the network device directly. Slot 0x1b is clear of the slots libvirt assigns from 2 upwards (and of q35's 0x1f).
            let _ = write!(
                x,
                "  <qemu:commandline>\n    <qemu:arg value='-netdev'/>\n    <qemu:arg value='user,id=barracknet0,hostfwd=tcp:{}:{}-:22'/>\n    <qemu:arg value='-device'/>\n    <qemu:arg value='virtio-net-pci,netdev=barracknet0,mac={},bus={},addr=0x1b'/>\n  </qemu:commandline>\n",
                escape(address),
                port,
                self.mac,
                if self.machine.starts_with("q35") {
                    "pcie.0"
                } else {
                    "pci.0"
                }
            );
        }
        x.push_str("</domain>\n");
        x
    }
}

/// A stable MAC address for an instance (QEMU's locally administered prefix).
pub fn mac_for(id: &str) -> String {
    // FNV-1a: stable across releases, unlike std's hasher.
    let mut hash: u32 = 0x811c9dc5;
    for byte in id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x01000193);
    }
    let [_, a, b, c] = hash.to_be_bytes();
    format!("52:54:00:{a:02x}:{b:02x}:{c:02x}")
}

/// The value of `name='…'` in one element's text.
pub fn attribute(element: &str, name: &str) -> Option<String> {
    for quote in ['\'', '"'] {
        let needle = format!(" {name}={quote}");
        if let Some(start) = element.find(&needle) {
            let rest = &element[start + needle.len()..];
            let end = rest.find(quote)?;
            return Some(unescape(&rest[..end]));
        }
    }
    None
}

/// Each `<tag …>…</tag>` (or `<tag …/>`) block of `xml`.
pub fn blocks<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        // `<disk` must not match `<diskfoo`.
        if !after.starts_with([' ', '>', '/', '\n']) {
            rest = after;
            continue;
        }
        let head_end = match after.find('>') {
            Some(end) => end,
            None => break,
        };
        let end = if after[..head_end].ends_with('/') {
            start + open.len() + head_end + 1
        } else {
            match rest[start..].find(&close) {
                Some(end) => start + end + close.len(),
                None => break,
            }
        };
        out.push(&rest[start..end]);
        rest = &rest[end..];
    }
    out
}

/// The GPUs (PCI hostdevs) of a domain.
pub fn hostdevs(xml: &str) -> Vec<PciAddress> {
    blocks(xml, "hostdev")
        .into_iter()
        .filter(|block| attribute(block, "type").as_deref() == Some("pci"))
        .filter_map(|block| {
            let address = blocks(block, "address").into_iter().next()?;
            let number = |name: &str| {
                let value = attribute(address, name)?;
                u32::from_str_radix(value.trim_start_matches("0x"), 16).ok()
            };
            Some(PciAddress {
                domain: number("domain")? as u16,
                bus: number("bus")? as u8,
                slot: number("slot")? as u8,
                function: number("function")? as u8,
            })
        })
        .collect()
}

/// The domain XML without its PCI hostdevs (to release GPUs while it is shelved).
pub fn without_hostdevs(xml: &str) -> String {
    let mut out = xml.to_string();
    for block in blocks(xml, "hostdev") {
        if attribute(block, "type").as_deref() == Some("pci") {
            out = out.replacen(block, "", 1);
        }
    }
    out
}

/// The domain XML with `devices` (XML fragments) added to its `<devices>`.
pub fn with_devices(xml: &str, devices: &[String]) -> String {
    match xml.rfind("</devices>") {
        Some(end) => format!("{}{}\n  {}", &xml[..end], devices.join("\n"), &xml[end..]),
        None => xml.to_string(),
    }
}

/// The disks of a domain.
pub fn disks(xml: &str) -> Vec<(DiskXml, String)> {
    blocks(xml, "disk")
        .into_iter()
        .filter_map(|block| {
            let source = blocks(block, "source").into_iter().next()?;
            let path = attribute(source, "file")?;
            let target = attribute(blocks(block, "target").into_iter().next()?, "dev")?;
            let format = blocks(block, "driver")
                .into_iter()
                .next()
                .and_then(|driver| attribute(driver, "type"))
                .unwrap_or_else(|| "raw".into());
            Some((
                DiskXml {
                    path,
                    format,
                    target,
                    read_only: block.contains("<readonly/>"),
                    serial: None,
                },
                block.to_string(),
            ))
        })
        .collect()
}

/// The host port forwarded to the guest's port 22 (user networking).
pub fn forwarded_ssh_port(xml: &str) -> Option<u16> {
    let start = xml.find("hostfwd=tcp:")? + "hostfwd=tcp:".len();
    let rest = &xml[start..];
    let spec = &rest[..rest.find("-:22")?];
    spec.rsplit(':').next()?.parse().ok()
}

/// The nwfilter of an instance's rules: what the rules accept, DHCP, and nothing else.
/// Redefining an existing filter must repeat its `uuid`.
pub fn nwfilter_xml(name: &str, uuid: Option<&str>, rules: &[PacketRule]) -> String {
    let mut x = format!("<filter name='{}' chain='root'>\n", escape(name));
    if let Some(uuid) = uuid {
        let _ = writeln!(x, "  <uuid>{}</uuid>", escape(uuid));
    }
    // The guest's own DHCP, whatever the rules say.
    x.push_str("  <rule action='accept' direction='out' priority='100'><udp dstportstart='67' dstportend='67'/></rule>\n");
    x.push_str("  <rule action='accept' direction='in' priority='100'><udp srcportstart='67' srcportend='67' dstportstart='68' dstportend='68'/></rule>\n");
    for rule in rules {
        let v6 = rule.ethertype.eq_ignore_ascii_case("ipv6");
        let ingress = !rule.direction.eq_ignore_ascii_case("egress");
        let protocol = match rule.protocol.as_deref().map(str::to_ascii_lowercase) {
            Some(p) if p == "tcp" || p == "udp" => p,
            Some(p) if p == "icmp" || p == "icmpv6" || p == "ipv6-icmp" => "icmp".into(),
            _ => "all".into(),
        };
        let element = if v6 {
            format!("{protocol}-ipv6")
        } else {
            protocol.clone()
        };
        let mut attributes = String::new();
        if let Some(prefix) = rule.remote_ip_prefix.as_deref() {
            let (address, length) = prefix.split_once('/').unwrap_or((prefix, ""));
            let length = if length.is_empty() {
                if v6 { "128" } else { "32" }
            } else {
                length
            };
            let side = if ingress { "src" } else { "dst" };
            let _ = write!(
                attributes,
                " {side}ipaddr='{}' {side}ipmask='{}'",
                escape(address),
                escape(length)
            );
        }
        if (protocol == "tcp" || protocol == "udp")
            && let Some(min) = rule.port_range_min
        {
            let max = rule.port_range_max.unwrap_or(min);
            let _ = write!(attributes, " dstportstart='{min}' dstportend='{max}'");
        }
        let _ = writeln!(
            x,
            "  <rule action='accept' direction='{}' priority='500'><{element}{attributes}/></rule>",
            if ingress { "in" } else { "out" }
        );
    }
    for direction in ["in", "out"] {
        let _ = writeln!(
            x,
            "  <rule action='drop' direction='{direction}' priority='1000'><all/></rule>\n  <rule action='drop' direction='{direction}' priority='1000'><all-ipv6/></rule>"
        );
    }
    x.push_str("</filter>\n");
    x
}

/// A volume in a directory pool: `capacity_bytes`, qcow2, optionally over a read-only backing file.
pub fn volume_xml(name: &str, capacity_bytes: u64, backing: Option<(&str, &str)>) -> String {
    let mut x = format!(
        "<volume><name>{}</name><capacity unit='bytes'>{capacity_bytes}</capacity><target><format type='qcow2'/></target>",
        escape(name)
    );
    if let Some((path, format)) = backing {
        let _ = write!(
            x,
            "<backingStore><path>{}</path><format type='{}'/></backingStore>",
            escape(path),
            escape(format)
        );
    }
    x.push_str("</volume>");
    x
}

/// A raw volume (the seed ISO), filled by upload.
pub fn raw_volume_xml(name: &str, capacity_bytes: u64) -> String {
    format!(
        "<volume><name>{}</name><capacity unit='bytes'>{capacity_bytes}</capacity><target><format type='raw'/></target></volume>",
        escape(name)
    )
}

pub fn pool_xml(name: &str, path: &str) -> String {
    format!(
        "<pool type='dir'><name>{}</name><target><path>{}</path><permissions><mode>0755</mode></permissions></target></pool>",
        escape(name),
        escape(path)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses_round_trip_and_reject_nonsense() {
        let address = PciAddress::parse("0000:17:00.1").unwrap();
        assert_eq!(address.to_string(), "0000:17:00.1");
        assert!(PciAddress::parse("17:00.0").is_err());
        assert!(PciAddress::parse("0000:17:40.0").is_err());
        assert!(PciAddress::parse("0000:17:00.9").is_err());
        let xml = format!("<devices>{}</devices>", address.hostdev_xml());
        assert_eq!(hostdevs(&xml), vec![address]);
        assert_eq!(without_hostdevs(&xml), "<devices></devices>");
    }

    #[test]
    fn metadata_reads_back_from_a_prefixed_element() {
        let metadata = Metadata {
            host: "h1".into(),
            gpu_model: "H100".into(),
            gpu_count: 8,
            hibernated: true,
            gpus: vec![PciAddress::parse("0000:17:00.0").unwrap()],
        };
        let xml = format!(
            "<domain><metadata>\n<barrack:instance xmlns:barrack=\"{METADATA_URI}\" host=\"h1\" gpu-model=\"H100\" gpu-count=\"8\" hibernated=\"yes\" gpus=\"0000:17:00.0\"/>\n</metadata></domain>"
        );
        assert_eq!(Metadata::from_domain_xml(&xml), Some(metadata));
    }

    #[test]
    fn the_forwarded_port_reads_back() {
        let domain = DomainXml {
            name: "d".into(),
            domain_type: "qemu".into(),
            machine: "q35".into(),
            vcpus: 1,
            memory_mb: 512,
            kernel: None,
            initrd: None,
            cmdline: None,
            disks: vec![],
            interface: InterfaceXml::User {
                address: "127.0.0.1".into(),
                port: 22201,
            },
            mac: mac_for("x"),
            gpus: vec![],
            console_log: "/tmp/c".into(),
            hotplug_ports: 1,
            metadata: Metadata {
                host: "h".into(),
                gpu_model: "m".into(),
                gpu_count: 0,
                hibernated: false,
                gpus: vec![],
            },
        };
        assert_eq!(forwarded_ssh_port(&domain.to_xml()), Some(22201));
        assert_eq!(
            Metadata::from_domain_xml(&domain.to_xml()).unwrap().host,
            "h"
        );
    }

    #[test]
    fn rules_become_accepts_before_a_final_drop() {
        let rules = [PacketRule {
            direction: "ingress".into(),
            ethertype: "IPv4".into(),
            protocol: Some("tcp".into()),
            port_range_min: Some(22),
            port_range_max: Some(22),
            remote_ip_prefix: Some("0.0.0.0/0".into()),
        }];
        let xml = nwfilter_xml("f", None, &rules);
        assert!(xml.contains("<rule action='accept' direction='in' priority='500'><tcp srcipaddr='0.0.0.0' srcipmask='0' dstportstart='22' dstportend='22'/></rule>"), "{xml}");
        assert!(xml.contains("<rule action='drop' direction='in' priority='1000'><all/></rule>"));
    }
}

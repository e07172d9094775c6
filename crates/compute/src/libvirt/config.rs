//! The `[libvirt]` configuration: hosts and their GPUs, images, storage, networking.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything the libvirt driver needs; `config/libvirt.example.toml` documents each key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibvirtConfig {
    /// `kvm` on real hosts; `qemu` (software emulation) where KVM is unavailable.
    #[serde(default = "default_domain_type")]
    pub domain_type: String,
    /// QEMU machine type; `q35` gives PCIe, which GPU passthrough wants.
    #[serde(default = "default_machine")]
    pub machine: String,
    /// Prefix of every domain, volume and filter name this driver owns.
    #[serde(default = "default_prefix")]
    pub name_prefix: String,
    /// The libvirt storage pool (a directory) holding root disks, seeds, volumes and snapshots, on every host.
    #[serde(default = "default_pool_name")]
    pub pool_name: String,
    #[serde(default = "default_pool_dir")]
    pub pool_dir: PathBuf,
    /// How long a guest gets to power off after the ACPI power button before it is destroyed.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_secs: u64,
    /// How long a host may stay unreachable (its URI not answering) before it counts as lost: the
    /// reconciler then moves its instances to ERROR. Shorter outages only delay calls (they are retried).
    #[serde(default = "default_host_lost_after")]
    pub host_lost_after_secs: u64,
    /// Caps on a guest's shape, for small machines (demos, tests); unset on real hosts.
    #[serde(default)]
    pub max_vcpus: Option<u32>,
    #[serde(default)]
    pub max_memory_mb: Option<u32>,
    /// Free PCIe root ports added to each q35 domain so volumes can be hot-plugged.
    #[serde(default = "default_hotplug_ports")]
    pub hotplug_ports: u32,
    #[serde(default)]
    pub network: NetworkConfig,
    /// Base images by OS image name (the catalogue's names); an instance's root disk, and a bootable
    /// volume made from the image, is a copy-on-write layer over the image's disk.
    #[serde(default)]
    pub images: BTreeMap<String, ImageConfig>,
    pub hosts: Vec<HostConfig>,
}

/// One machine running libvirtd.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Unique; the placement the control plane records.
    pub name: String,
    /// `qemu:///system` for this machine, `qemu+ssh://root@gpu-07/system` for another.
    pub uri: String,
    pub region: String,
    /// The address clients reach forwarded SSH ports on (user networking); defaults to the URI's host,
    /// or 127.0.0.1 for a local URI.
    #[serde(default)]
    pub address: Option<String>,
    /// The host's GPUs by model, each with the PCI addresses of its devices (bound to vfio-pci).
    #[serde(default)]
    pub gpus: Vec<GpuGroup>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuGroup {
    /// The catalogue's GPU model name, e.g. `H100-SXM5-80GB`.
    pub model: String,
    /// PCI addresses like `0000:17:00.0`.
    pub addresses: Vec<String>,
    /// Whether the devices are passed through to guests (the default). `false` makes the addresses
    /// placeholders: placement counts them, guests get no device. For demos and tests on machines
    /// without GPUs.
    #[serde(default = "default_passthrough")]
    pub passthrough: bool,
}

/// A bootable disk; `kernel`/`initrd` boot it directly (the tiny guest), otherwise its own boot loader does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    /// Path of the base disk on every host.
    pub disk: PathBuf,
    #[serde(default = "default_format")]
    pub format: String,
    #[serde(default)]
    pub kernel: Option<PathBuf>,
    #[serde(default)]
    pub initrd: Option<PathBuf>,
    #[serde(default)]
    pub cmdline: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    pub mode: NetworkMode,
    /// The libvirt network (`network` mode) or host bridge (`bridge` mode).
    #[serde(default = "default_network_source")]
    pub source: String,
    /// `user` mode: the host address forwarded SSH ports listen on.
    #[serde(default = "default_forward_address")]
    pub forward_address: String,
    /// `user` mode: host ports forwarded to guests' port 22, one per instance.
    #[serde(default = "default_ssh_port_min")]
    pub ssh_port_min: u16,
    #[serde(default = "default_ssh_port_max")]
    pub ssh_port_max: u16,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            mode: NetworkMode::User,
            source: default_network_source(),
            forward_address: default_forward_address(),
            ssh_port_min: default_ssh_port_min(),
            ssh_port_max: default_ssh_port_max(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// QEMU user-mode networking, guest port 22 forwarded to a host port: one unprivileged machine.
    User,
    /// A libvirt network (NAT or routed, with DHCP); security rules become an nwfilter on the interface.
    Network,
    /// A host bridge onto the data-centre network; addresses from its DHCP.
    Bridge,
}

impl LibvirtConfig {
    /// Checks what deserialisation cannot: unique names, known GPU addresses, a sane port range.
    pub fn validate(&self) -> Result<(), String> {
        if self.hosts.is_empty() {
            return Err("libvirt: at least one host is required".into());
        }
        let mut names = std::collections::HashSet::new();
        for host in &self.hosts {
            if !names.insert(host.name.as_str()) {
                return Err(format!("libvirt: host name {} is used twice", host.name));
            }
            let mut addresses = std::collections::HashSet::new();
            for group in &host.gpus {
                for address in &group.addresses {
                    crate::libvirt::xml::PciAddress::parse(address)
                        .map_err(|error| format!("libvirt: host {}: {error}", host.name))?;
                    if !addresses.insert(address.to_ascii_lowercase()) {
                        return Err(format!(
                            "libvirt: host {}: GPU {address} is listed twice",
                            host.name
                        ));
                    }
                }
            }
        }
        if self.network.ssh_port_min > self.network.ssh_port_max {
            return Err("libvirt: network.ssh_port_min exceeds ssh_port_max".into());
        }
        Ok(())
    }

    pub fn host(&self, name: &str) -> Option<&HostConfig> {
        self.hosts.iter().find(|host| host.name == name)
    }
}

impl HostConfig {
    /// The PCI addresses of this host's GPUs of `model` (compared case-insensitively).
    pub fn gpu_addresses(&self, model: &str) -> Vec<String> {
        self.gpus
            .iter()
            .filter(|group| group.model.eq_ignore_ascii_case(model))
            .flat_map(|group| group.addresses.iter().map(|a| a.to_ascii_lowercase()))
            .collect()
    }

    /// Whether the GPU at `address` is passed through to guests (a real device).
    pub fn passes_through(&self, address: &crate::libvirt::xml::PciAddress) -> bool {
        self.gpus
            .iter()
            .find(|group| {
                group
                    .addresses
                    .iter()
                    .any(|a| crate::libvirt::xml::PciAddress::parse(a).is_ok_and(|a| a == *address))
            })
            .is_none_or(|group| group.passthrough)
    }

    /// Where clients reach this host: `address`, else the host part of the URI, else 127.0.0.1.
    pub fn public_address(&self) -> String {
        if let Some(address) = &self.address {
            return address.clone();
        }
        // qemu+ssh://user@host:port/system → host
        let rest = self
            .uri
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or("");
        let authority = rest.split('/').next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        let host = host.split(':').next().unwrap_or("");
        if host.is_empty() {
            "127.0.0.1".into()
        } else {
            host.into()
        }
    }
}

fn default_passthrough() -> bool {
    true
}
fn default_domain_type() -> String {
    "kvm".into()
}
fn default_machine() -> String {
    "q35".into()
}
fn default_prefix() -> String {
    "barrack-".into()
}
fn default_pool_name() -> String {
    "barrack".into()
}
fn default_pool_dir() -> PathBuf {
    PathBuf::from("/var/lib/barrack/pool")
}
fn default_shutdown_timeout() -> u64 {
    60
}
fn default_host_lost_after() -> u64 {
    300
}
fn default_hotplug_ports() -> u32 {
    8
}
fn default_format() -> String {
    "qcow2".into()
}
fn default_network_source() -> String {
    "default".into()
}
fn default_forward_address() -> String {
    "127.0.0.1".into()
}
fn default_ssh_port_min() -> u16 {
    22200
}
fn default_ssh_port_max() -> u16 {
    22999
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(uri: &str, address: Option<&str>) -> HostConfig {
        HostConfig {
            name: "h".into(),
            uri: uri.into(),
            region: "R".into(),
            address: address.map(Into::into),
            gpus: vec![],
        }
    }

    #[test]
    fn the_example_configuration_parses_and_validates() {
        #[derive(Deserialize)]
        struct File {
            libvirt: LibvirtConfig,
        }
        let text = include_str!("../../../../config/libvirt.example.toml");
        let config = toml::from_str::<File>(text).unwrap().libvirt;
        config.validate().unwrap();
        assert_eq!(config.network.mode, NetworkMode::User);
        let host = &config.hosts[0];
        assert_eq!(host.gpu_addresses("h100-sxm5-80gb").len(), 4);
        let placeholder = crate::libvirt::xml::PciAddress::parse("0000:f0:00.0").unwrap();
        assert!(!host.passes_through(&placeholder));
        assert!(
            config.images["Ubuntu 24.04 + CUDA 12.8 Open + Docker"]
                .kernel
                .is_some()
        );
    }

    #[test]
    fn public_address_comes_from_the_uri_unless_given() {
        assert_eq!(host("qemu:///system", None).public_address(), "127.0.0.1");
        assert_eq!(
            host("qemu+ssh://root@gpu-07:2222/system", None).public_address(),
            "gpu-07"
        );
        assert_eq!(
            host("qemu+ssh://gpu-07/system", Some("10.0.0.7")).public_address(),
            "10.0.0.7"
        );
    }
}

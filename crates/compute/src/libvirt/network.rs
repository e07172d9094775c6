//! Reaching guests: forwarded SSH ports (user networking), guest addresses (libvirt networks and
//! bridges), and the SSH banner that says a guest is up.

use std::collections::HashSet;
use std::io::Read;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

use virt::domain::Domain;
use virt::sys;

use super::config::{NetworkConfig, NetworkMode};

/// The lowest port of the range that no domain on the host forwards and, when the host is this machine,
/// that nothing else listens on.
pub fn free_port(config: &NetworkConfig, used: &HashSet<u16>, local: bool) -> Option<u16> {
    (config.ssh_port_min..=config.ssh_port_max)
        .filter(|port| !used.contains(port))
        .find(|port| !local || TcpListener::bind((config.forward_address.as_str(), *port)).is_ok())
}

/// The guest's IPv4 address as libvirt knows it: from its DHCP leases (libvirt networks) or the host's
/// ARP table (bridges).
pub fn guest_address(domain: &Domain, mode: NetworkMode) -> Option<String> {
    let source = match mode {
        NetworkMode::User => return None,
        NetworkMode::Network => sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
        NetworkMode::Bridge => sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
    };
    domain
        .interface_addresses(source, 0)
        .ok()?
        .into_iter()
        .flat_map(|interface| interface.addrs)
        .find(|address| address.typed == i64::from(sys::VIR_IP_ADDR_TYPE_IPV4))
        .map(|address| address.addr)
}

/// Whether an SSH server answers at `host:port`: its banner starts with `SSH-`. A bare TCP connect is not
/// enough, since QEMU's user network accepts forwarded connections before the guest listens.
pub fn ssh_answers(host: &str, port: u16, timeout: Duration) -> bool {
    let Some(address) = (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&address, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let mut banner = [0u8; 4];
    let mut read = 0;
    while read < banner.len() {
        match stream.read(&mut banner[read..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => read += n,
        }
    }
    &banner == b"SSH-"
}

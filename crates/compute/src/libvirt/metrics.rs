//! Utilisation from libvirt's domain statistics: counters sampled twice, rates from the difference.

use std::time::{Duration, Instant};

use virt::domain::Domain;
use virt::sys;

use super::driver_error;
use super::xml;
use crate::{DriverError, InstanceMetrics};

/// Cumulative counters of a domain at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    pub cpu_time_ns: u64,
    pub vcpus: u32,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: Option<u64>,
    pub network: Option<(u64, u64)>,
    pub disk: Option<(u64, u64)>,
}

pub fn sample(domain: &Domain) -> Result<Sample, DriverError> {
    let info = domain.info().map_err(|e| driver_error("domain info", e))?;
    let memory_total_bytes = info.max_mem * 1024;
    // The balloon's figures, when the guest reports them: usable = total - unused.
    let memory_used_bytes = domain.memory_stats(0).ok().and_then(|stats| {
        let find = |tag| stats.iter().find(|s| s.tag == tag).map(|s| s.val * 1024);
        let available = find(sys::VIR_DOMAIN_MEMORY_STAT_AVAILABLE)?;
        let unused = find(sys::VIR_DOMAIN_MEMORY_STAT_UNUSED)?;
        Some(available.saturating_sub(unused))
    });
    let live = domain.xml_desc(0).unwrap_or_default();
    let mut network = None;
    for block in xml::blocks(&live, "interface") {
        if let Some(device) = xml::blocks(block, "target")
            .first()
            .and_then(|target| xml::attribute(target, "dev"))
            && let Ok(stats) = domain.interface_stats(&device)
        {
            let (rx, tx) = network.unwrap_or((0, 0));
            network = Some((
                rx + stats.rx_bytes.max(0) as u64,
                tx + stats.tx_bytes.max(0) as u64,
            ));
        }
    }
    let mut disk = None;
    for (d, _) in xml::disks(&live) {
        if let Ok(stats) = domain.block_stats(&d.target) {
            let (read, written) = disk.unwrap_or((0, 0));
            disk = Some((
                read + stats.rd_bytes.max(0) as u64,
                written + stats.wr_bytes.max(0) as u64,
            ));
        }
    }
    Ok(Sample {
        at: Instant::now(),
        cpu_time_ns: info.cpu_time,
        vcpus: info.nr_virt_cpu.max(1),
        memory_total_bytes,
        memory_used_bytes,
        network,
        disk,
    })
}

/// Rates between two samples of the same domain.
pub fn between(earlier: &Sample, later: &Sample) -> InstanceMetrics {
    let seconds = later
        .at
        .duration_since(earlier.at)
        .max(Duration::from_millis(1))
        .as_secs_f64();
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / seconds;
    let cpu = later.cpu_time_ns.saturating_sub(earlier.cpu_time_ns) as f64
        / (seconds * 1e9 * f64::from(later.vcpus))
        * 100.0;
    let pair = |a: Option<(u64, u64)>, b: Option<(u64, u64)>| match (a, b) {
        (Some(a), Some(b)) => (Some(rate(a.0, b.0)), Some(rate(a.1, b.1))),
        _ => (None, None),
    };
    let (network_rx, network_tx) = pair(earlier.network, later.network);
    let (disk_read, disk_write) = pair(earlier.disk, later.disk);
    InstanceMetrics {
        cpu_percent: cpu.clamp(0.0, 100.0),
        memory_total_bytes: later.memory_total_bytes,
        memory_used_bytes: later.memory_used_bytes,
        network_rx_bytes_per_sec: network_rx,
        network_tx_bytes_per_sec: network_tx,
        disk_read_bytes_per_sec: disk_read,
        disk_write_bytes_per_sec: disk_write,
        // Passthrough GPUs are invisible to libvirt; their use needs an agent in the guest.
        gpu_percent: None,
    }
}

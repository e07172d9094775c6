//! Utilisation of simulated machines: plausible figures that differ between instances and drift over
//! time (a slow wave per instance), so dashboards and clients have something real-looking to show.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::InstanceMetrics;

use super::{Power, State};

const GIB: u64 = 1 << 30;
/// RAM per GPU when the simulator was not told the instance's shape (an adopted instance).
const RAM_GB_PER_GPU: u64 = 64;

impl State {
    /// `None` unless the machine runs.
    pub(super) fn metrics(&self, id: &str) -> Option<InstanceMetrics> {
        let instance = self.instances.get(id)?;
        if instance.power != Power::Running {
            return None;
        }
        let mut hasher = DefaultHasher::new();
        id.hash(&mut hasher);
        let seed = hasher.finish();
        let phase = (seed % 360) as f64;
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        // Between 0 and 1, one period every ten minutes, shifted per instance.
        let wave = |shift: f64| {
            ((seconds / 600.0 * std::f64::consts::TAU + (phase + shift).to_radians()).sin() + 1.0)
                / 2.0
        };
        let ram_gb = match instance.ram_gb {
            0 => RAM_GB_PER_GPU * u64::from(instance.gpu_count.max(1)),
            ram => u64::from(ram),
        };
        let memory_total_bytes = ram_gb * GIB;
        let round = |value: f64| (value * 10.0).round() / 10.0;
        Some(InstanceMetrics {
            cpu_percent: round(5.0 + 80.0 * wave(0.0)),
            memory_total_bytes,
            memory_used_bytes: Some((memory_total_bytes as f64 * (0.2 + 0.6 * wave(90.0))) as u64),
            network_rx_bytes_per_sec: Some(round(1e5 + 5e7 * wave(45.0))),
            network_tx_bytes_per_sec: Some(round(5e4 + 2e7 * wave(135.0))),
            disk_read_bytes_per_sec: Some(round(1e6 * wave(180.0))),
            disk_write_bytes_per_sec: Some(round(5e5 * wave(225.0))),
            gpu_percent: (instance.gpu_count > 0).then(|| round(10.0 + 85.0 * wave(30.0))),
        })
    }
}

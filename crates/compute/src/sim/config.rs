//! The simulator's configuration and how long each operation takes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Operation;

use super::SimHost;
use super::faults::Fault;

/// The simulator's configuration; an empty table gives development delays, no hosts and no faults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    pub delays: SimDelays,
    /// The machines, usually [`hosts_from_capacity`] of the configured capacity.
    pub hosts: Vec<SimHost>,
    /// Faults armed from the start, as if injected right after construction.
    pub faults: Vec<Fault>,
}

/// How long each kind of operation takes (milliseconds) before its effect lands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimDelays {
    pub create_ms: u64,
    pub start_ms: u64,
    pub stop_ms: u64,
    pub reboot_ms: u64,
    pub hibernate_ms: u64,
    pub restore_ms: u64,
    pub delete_ms: u64,
    /// Every volume operation: create, clone, resize, attach, detach, delete.
    pub volume_ms: u64,
    pub snapshot_ms: u64,
    /// Programming firewall rules.
    pub network_ms: u64,
}

/// Long enough to see BUILDING or STOPPING in a dashboard, short enough not to wait on.
impl Default for SimDelays {
    fn default() -> Self {
        SimDelays {
            create_ms: 1500,
            start_ms: 800,
            stop_ms: 800,
            reboot_ms: 1000,
            hibernate_ms: 1500,
            restore_ms: 1500,
            delete_ms: 500,
            volume_ms: 300,
            snapshot_ms: 1000,
            network_ms: 100,
        }
    }
}

impl SimDelays {
    /// No delays: effects land as soon as the call is made, for deterministic tests.
    pub fn instant() -> Self {
        SimDelays {
            create_ms: 0,
            start_ms: 0,
            stop_ms: 0,
            reboot_ms: 0,
            hibernate_ms: 0,
            restore_ms: 0,
            delete_ms: 0,
            volume_ms: 0,
            snapshot_ms: 0,
            network_ms: 0,
        }
    }

    pub(super) fn of(&self, operation: Operation) -> Duration {
        let ms = match operation {
            Operation::CreateInstance => self.create_ms,
            Operation::StartInstance => self.start_ms,
            Operation::StopInstance => self.stop_ms,
            Operation::RebootInstance => self.reboot_ms,
            Operation::HibernateInstance => self.hibernate_ms,
            Operation::RestoreInstance => self.restore_ms,
            Operation::DeleteInstance => self.delete_ms,
            Operation::CreateVolume
            | Operation::DeleteVolume
            | Operation::ResizeVolume
            | Operation::CloneVolume
            | Operation::AttachVolume
            | Operation::DetachVolume => self.volume_ms,
            Operation::CreateSnapshot | Operation::DeleteSnapshot => self.snapshot_ms,
            Operation::ApplySecurityRules => self.network_ms,
        };
        Duration::from_millis(ms)
    }
}

//! The libvirt driver: real virtual machines on one host or many, through libvirt's API (the `virt`
//! crate), behind the same [`ComputeDriver`](crate::ComputeDriver) the simulator implements.
//!
//! Everything a call needs is found again from libvirt, never from this process's memory, so any call can
//! be repeated after a crash: an instance is the domain `<prefix><id>` on whichever configured host has
//! it, its disks are the volumes `<prefix><id>-root.qcow2` and `<prefix><id>-seed.iso` in the pool, and
//! its GPUs are the PCI hostdevs in its definition. Calls submit work and return; a guest's boot is then
//! watched with [`ComputeDriver::observe_readiness`](crate::ComputeDriver::observe_readiness).
//!
//! Split by concern: [`config`] (the `[libvirt]` table), [`xml`] (what is written and read back),
//! [`placement`] (best-fit GPUs), [`storage`] (pool and volumes), [`seed`] (the NoCloud ISO),
//! [`network`] (ports, addresses, readiness), [`metrics`], and [`driver`] (the lifecycle, with volumes and
//! snapshots, and security rules, in its submodules).

//!
//! The configuration and XML modules build without the `libvirt` feature, so a server built without it
//! still reads (and can reject with a clear message) a configuration that names the driver.

pub mod config;
#[cfg(feature = "libvirt")]
pub mod driver;
#[cfg(feature = "libvirt")]
pub mod metrics;
#[cfg(feature = "libvirt")]
pub mod network;
pub mod placement;
pub mod seed;
#[cfg(feature = "libvirt")]
pub mod storage;
/// Real guests for tests: a lab of this machine's libvirtd that cleans up after itself.
#[cfg(feature = "libvirt")]
pub mod testing;
pub mod xml;

pub use config::{GpuGroup, HostConfig, ImageConfig, LibvirtConfig, NetworkConfig, NetworkMode};
#[cfg(feature = "libvirt")]
pub use driver::LibvirtDriver;
/// The libvirt bindings this driver is built on, for callers that inspect hosts directly (tests, tools).
#[cfg(feature = "libvirt")]
pub use virt;

#[cfg(feature = "libvirt")]
use virt::error::{Error, ErrorNumber};

#[cfg(feature = "libvirt")]
use crate::DriverError;

/// A libvirt failure as a driver error: lost connections, timeouts and a busy storage pool are worth
/// retrying, the rest not.
#[cfg(feature = "libvirt")]
pub(crate) fn driver_error(context: &str, error: Error) -> DriverError {
    let message = format!("{context}: {}", error.message());
    let transient = error.code().is_known_and(|code| {
        matches!(
            code,
            ErrorNumber::NoConnect
                | ErrorNumber::SystemError
                | ErrorNumber::Rpc
                | ErrorNumber::OperationTimeout
                | ErrorNumber::AgentUnresponsive
        )
    }) || busy(error.message());
    if transient {
        DriverError::Transient(message)
    } else {
        DriverError::Permanent(message)
    }
}

/// Whether libvirt refused a call only because another is under way: a pool refreshed or a volume
/// deleted while the pool builds a volume ("pool 'x' has asynchronous jobs running"), an internal
/// error by its code, gone once that call ends.
#[cfg(any(feature = "libvirt", test))]
fn busy(message: &str) -> bool {
    message.contains("has asynchronous jobs running")
}

/// Whether a libvirt error says the object does not exist.
#[cfg(feature = "libvirt")]
pub(crate) fn is_missing(error: &Error) -> bool {
    error.code().is_known_and(|code| {
        matches!(
            code,
            ErrorNumber::NoDomain
                | ErrorNumber::NoStorageVolume
                | ErrorNumber::NoNwfilter
                | ErrorNumber::NoStoragePool
        )
    })
}

#[cfg(test)]
mod busy_tests {
    #[test]
    fn a_pool_with_jobs_running_is_busy_not_broken() {
        assert!(super::busy(
            "internal error: pool 'barrack' has asynchronous jobs running."
        ));
        assert!(!super::busy("internal error: unable to open volume"));
    }
}

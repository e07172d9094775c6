//! Servers on the libvirt driver with real guests: the tiny image booted by software emulation on this
//! machine's libvirtd, each test with its own names, storage pool and SSH ports, torn down on drop.
//! Needs `scripts/setup/libvirt.sh`; without it the tests say they skipped, unless BARRACK_TEST_LIBVIRT=1,
//! where they fail. BARRACK_TEST_LIBVIRT_IMAGE names the image directory (default
//! /var/lib/barrack/images/tiny).

use barrack_compute::libvirt::testing::{TestLab, unavailable};
use barrack_compute::libvirt::{GpuGroup, HostConfig, LibvirtConfig};

pub use barrack_compute::libvirt::testing::LOCAL_URI;
/// The catalogue's image and region the guests stand for.
pub const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";
pub const REGION: &str = "FINLAND-1";
pub const GPU_MODEL: &str = "H100-SXM5-80GB";

/// A test's share of libvirt: its configuration, and what it made, removed on drop.
pub struct Lab(TestLab);

impl std::ops::Deref for Lab {
    type Target = TestLab;
    fn deref(&self) -> &TestLab {
        &self.0
    }
}

impl std::ops::DerefMut for Lab {
    fn deref_mut(&mut self) -> &mut TestLab {
        &mut self.0
    }
}

/// `None` (recorded as skipped) when this machine cannot boot guests; a panic when it must
/// (BARRACK_TEST_LIBVIRT=1). `ports` starts ten SSH ports of its own; the host reached at `uri` has
/// eight H100 slots without passthrough (placement counts them, guests get no device).
pub fn lab(test: &str, ports: u16, uri: &str) -> Option<Lab> {
    let name = format!("libvirt::{test}");
    if let Some(reason) = unavailable() {
        if std::env::var("BARRACK_TEST_LIBVIRT").as_deref() == Ok("1") {
            panic!("BARRACK_TEST_LIBVIRT=1 but {reason}");
        }
        super::skipped("libvirt", &name, &reason);
        return None;
    }
    super::ran("libvirt", &name);
    let host = HostConfig {
        name: "local".into(),
        uri: uri.into(),
        region: REGION.into(),
        address: None,
        gpus: vec![GpuGroup {
            model: GPU_MODEL.into(),
            addresses: (0..8).map(|slot| format!("0000:f0:{slot:02x}.0")).collect(),
            passthrough: false,
        }],
    };
    let tag = format!("bs{}{}", std::process::id(), test.replace('_', ""));
    Some(Lab(TestLab::new(&tag, ports, IMAGE, host)))
}

impl Lab {
    /// The `[libvirt]` table of a configuration file for `barrackd`.
    pub fn toml(&self) -> String {
        #[derive(serde::Serialize)]
        struct File<'a> {
            libvirt: &'a LibvirtConfig,
        }
        toml::to_string(&File {
            libvirt: &self.config,
        })
        .unwrap()
    }
}

//! Servers on the libvirt driver with real guests: the tiny image booted by software emulation on this
//! machine's libvirtd, each test with its own names, storage pool and SSH ports, torn down on drop.
//! Needs `scripts/setup/libvirt.sh`; without it the tests say they skipped, unless BARRACK_TEST_LIBVIRT=1,
//! where they fail. BARRACK_TEST_LIBVIRT_IMAGE names the image directory (default
//! /var/lib/barrack/images/tiny).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use barrack_compute::libvirt::virt;
use barrack_compute::libvirt::{
    GpuGroup, HostConfig, ImageConfig, LibvirtConfig, NetworkConfig, NetworkMode,
};

pub const LOCAL_URI: &str = "qemu:///system";
/// The catalogue's image and region the guests stand for.
pub const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";
pub const REGION: &str = "FINLAND-1";
pub const GPU_MODEL: &str = "H100-SXM5-80GB";

fn image_dir() -> PathBuf {
    std::env::var_os("BARRACK_TEST_LIBVIRT_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/barrack/images/tiny"))
}

fn unavailable() -> Option<String> {
    let dir = image_dir();
    for file in ["vmlinuz", "initrd.img", "root.qcow2"] {
        if !dir.join(file).is_file() {
            return Some(format!(
                "{} is missing (run scripts/setup/libvirt.sh)",
                dir.join(file).display()
            ));
        }
    }
    if let Err(error) = virt::connect::Connect::open(Some(LOCAL_URI)) {
        return Some(format!(
            "libvirtd does not answer on {LOCAL_URI}: {}",
            error.message()
        ));
    }
    if std::process::Command::new("ssh")
        .arg("-V")
        .output()
        .is_err()
    {
        return Some("the ssh client is missing".into());
    }
    None
}

/// A test's share of libvirt: its configuration, and what it made, removed on drop.
pub struct Lab {
    pub config: LibvirtConfig,
    pub prefix: String,
    pool: String,
    pool_dir: PathBuf,
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
    let tag: String = format!("bs{}{}", std::process::id(), test.replace('_', ""))
        .chars()
        .take(40)
        .collect();
    let pool_dir = PathBuf::from(format!("/var/lib/barrack/test-pools/{tag}"));
    let _ = std::fs::create_dir_all(pool_dir.parent().unwrap());
    // libvirt's QEMU runs unprivileged and must reach the pool.
    chmod_755(pool_dir.parent().unwrap());
    chmod_755(Path::new("/var/lib/barrack"));
    let image = image_dir();
    let config = LibvirtConfig {
        domain_type: "qemu".into(),
        machine: "q35".into(),
        name_prefix: format!("{tag}-"),
        pool_name: tag.clone(),
        pool_dir: pool_dir.clone(),
        shutdown_timeout_secs: 30,
        host_lost_after_secs: 300,
        max_vcpus: Some(1),
        max_memory_mb: Some(384),
        hotplug_ports: 4,
        network: NetworkConfig {
            mode: NetworkMode::User,
            source: "default".into(),
            forward_address: "127.0.0.1".into(),
            ssh_port_min: ports,
            ssh_port_max: ports + 9,
        },
        images: BTreeMap::from([(
            IMAGE.to_string(),
            ImageConfig {
                disk: image.join("root.qcow2"),
                format: "qcow2".into(),
                kernel: Some(image.join("vmlinuz")),
                initrd: Some(image.join("initrd.img")),
                cmdline: Some("console=ttyS0 root=/dev/vda".into()),
            },
        )]),
        hosts: vec![HostConfig {
            name: "local".into(),
            uri: uri.into(),
            region: REGION.into(),
            address: None,
            gpus: vec![GpuGroup {
                model: GPU_MODEL.into(),
                addresses: (0..8).map(|slot| format!("0000:f0:{slot:02x}.0")).collect(),
                passthrough: false,
            }],
        }],
    };
    Some(Lab {
        prefix: config.name_prefix.clone(),
        config,
        pool: tag,
        pool_dir,
    })
}

fn chmod_755(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
}

fn connect() -> virt::connect::Connect {
    // Errors are answers here (a domain deleted meanwhile), not something to print.
    virt::error::clear_error_callback();
    virt::connect::Connect::open(Some(LOCAL_URI)).expect("libvirtd answers")
}

impl Lab {
    /// The persistent XML of this test's domains, by name.
    pub fn domains(&self) -> BTreeMap<String, String> {
        connect()
            .list_all_domains(0)
            .unwrap()
            .into_iter()
            .filter_map(|domain| {
                let name = domain.name().ok()?;
                let xml = domain.xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE).ok()?;
                name.starts_with(&self.prefix).then_some((name, xml))
            })
            .collect()
    }

    /// Names of the volumes in this test's pool.
    pub fn volumes(&self) -> Vec<String> {
        let conn = connect();
        let Ok(pool) = conn.lookup_storage_pool_by_name(&self.pool) else {
            return vec![];
        };
        let _ = pool.refresh(0);
        let mut names = pool.list_volumes().unwrap_or_default();
        names.sort();
        names
    }

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

impl Drop for Lab {
    fn drop(&mut self) {
        let Ok(conn) = virt::connect::Connect::open(Some(LOCAL_URI)) else {
            return;
        };
        if let Ok(domains) = conn.list_all_domains(0) {
            for domain in domains {
                if domain.name().is_ok_and(|n| n.starts_with(&self.prefix)) {
                    let _ = domain.destroy();
                    let _ = domain.undefine_flags(virt::sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE);
                }
            }
        }
        if let Ok(filters) = conn.list_all_nw_filters(0) {
            for filter in filters {
                if filter.name().is_ok_and(|n| n.starts_with(&self.prefix)) {
                    let _ = filter.undefine();
                }
            }
        }
        if let Ok(pool) = conn.lookup_storage_pool_by_name(&self.pool) {
            let _ = pool.refresh(0);
            if let Ok(volumes) = pool.list_all_volumes(0) {
                for volume in volumes {
                    let _ = volume.delete(0);
                }
            }
            let _ = pool.destroy();
            let _ = pool.undefine();
        }
        let _ = std::fs::remove_dir_all(&self.pool_dir);
    }
}

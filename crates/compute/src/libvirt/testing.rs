//! A test's share of this machine's libvirtd, for the driver's own tests and for servers running on it:
//! names, a storage pool and SSH ports of its own, and everything made under them removed on drop. The
//! guest is the tiny image that `scripts/setup/libvirt.sh` builds (BARRACK_TEST_LIBVIRT_IMAGE names its
//! directory; default /var/lib/barrack/images/tiny), booted by software emulation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{HostConfig, ImageConfig, LibvirtConfig, NetworkConfig, NetworkMode};

/// The libvirtd of this machine.
pub const LOCAL_URI: &str = "qemu:///system";

/// The tiny guest's kernel, initrd and root disk.
pub fn image_dir() -> PathBuf {
    std::env::var_os("BARRACK_TEST_LIBVIRT_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/barrack/images/tiny"))
}

/// Why guests cannot boot here, if they cannot.
pub fn unavailable() -> Option<String> {
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

/// A configuration whose domains, filters and volumes carry a prefix of this test's own, in a pool of its
/// own; all of them are destroyed when it drops.
pub struct TestLab {
    pub config: LibvirtConfig,
    pub prefix: String,
    pub pool: String,
    pub pool_dir: PathBuf,
}

impl TestLab {
    /// `tag` is unique to the test process and test (at most 40 characters are kept); `ports` starts ten
    /// SSH ports of its own; the tiny image is served under `image_name` on `host`.
    pub fn new(tag: &str, ports: u16, image_name: &str, host: HostConfig) -> TestLab {
        let tag: String = tag.chars().take(40).collect();
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
                image_name.to_string(),
                ImageConfig {
                    disk: image.join("root.qcow2"),
                    format: "qcow2".into(),
                    kernel: Some(image.join("vmlinuz")),
                    initrd: Some(image.join("initrd.img")),
                    cmdline: Some("console=ttyS0 root=/dev/vda".into()),
                },
            )]),
            hosts: vec![host],
        };
        TestLab {
            prefix: config.name_prefix.clone(),
            config,
            pool: tag,
            pool_dir,
        }
    }

    /// The persistent XML of this lab's domains, by name.
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

    /// Names of the volumes in this lab's pool.
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

impl Drop for TestLab {
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

//! Disks without a boot loader (a guest booted from a kernel and initrd of the host's): the boot files
//! an image configures, or the side file beside a snapshot or volume that says how to boot it.

use super::*;
use crate::libvirt::config::ImageConfig;

impl Inner {
    /// Kernel, initrd and command line for an instance's boot disk, when it is booted directly.
    pub(super) fn boot_files(
        &self,
        conn: &Connect,
        spec: &InstanceSpec,
    ) -> Result<BootFiles, DriverError> {
        match &spec.boot {
            BootDisk::Image { image, .. } => Ok(BootFiles::of_image(self.image(image)?)),
            BootDisk::Snapshot { snapshot_id, .. } => {
                self.read_boot_files(conn, &self.snapshot_volume(snapshot_id))
            }
            BootDisk::Volume { volume_id } => {
                self.read_boot_files(conn, &self.data_volume(volume_id))
            }
        }
    }

    /// The configured base image of an OS image name.
    pub(super) fn image(&self, name: &str) -> Result<&ImageConfig, DriverError> {
        self.config.images.get(name).ok_or_else(|| {
            DriverError::Permanent(format!("no base image is configured for {name}"))
        })
    }

    pub(super) fn read_boot_files(
        &self,
        conn: &Connect,
        volume: &str,
    ) -> Result<BootFiles, DriverError> {
        let pool = self.pool(conn)?;
        match storage::volume(&pool, &Self::boot_volume(volume))? {
            Some(file) => Ok(BootFiles::parse(&String::from_utf8_lossy(
                &storage::download(conn, &file)?,
            ))),
            None => Ok(BootFiles::default()),
        }
    }
}

/// Files that boot a disk directly (no boot loader on it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct BootFiles {
    pub(super) kernel: Option<String>,
    pub(super) initrd: Option<String>,
    pub(super) cmdline: Option<String>,
}

impl BootFiles {
    /// What boots a disk of `image`: its kernel, initrd and command line, if it has them.
    pub(super) fn of_image(image: &ImageConfig) -> BootFiles {
        BootFiles {
            kernel: image
                .kernel
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            initrd: image
                .initrd
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            cmdline: image.cmdline.clone(),
        }
    }

    pub(super) fn from_domain_xml(definition: &str) -> BootFiles {
        let text = |tag: &str| {
            let open = format!("<{tag}>");
            let start = definition.find(&open)? + open.len();
            let end = definition[start..].find(&format!("</{tag}>"))?;
            Some(
                definition[start..start + end]
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&apos;", "'")
                    .replace("&quot;", "\"")
                    .replace("&amp;", "&"),
            )
        };
        BootFiles {
            kernel: text("kernel"),
            initrd: text("initrd"),
            cmdline: text("cmdline"),
        }
    }

    pub(super) fn render(&self) -> String {
        let mut out = String::new();
        for (key, value) in [
            ("kernel", &self.kernel),
            ("initrd", &self.initrd),
            ("cmdline", &self.cmdline),
        ] {
            if let Some(value) = value {
                out.push_str(&format!("{key}={value}\n"));
            }
        }
        // Never empty: libvirt volumes cannot have zero bytes.
        out.push_str("# boot files\n");
        out
    }

    pub(super) fn parse(text: &str) -> BootFiles {
        let mut files = BootFiles::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("kernel", v)) => files.kernel = Some(v.to_string()),
                Some(("initrd", v)) => files.initrd = Some(v.to_string()),
                Some(("cmdline", v)) => files.cmdline = Some(v.to_string()),
                _ => {}
            }
        }
        files
    }
}

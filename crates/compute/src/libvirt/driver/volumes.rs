//! Data volumes: qcow2 volumes of the pool, hot-plugged into running guests.

use super::*;

impl Inner {
    /// The pool a volume lives in: the host that has it.
    fn find_volume(
        &self,
        name: &str,
    ) -> Result<Option<(Connect, StoragePool, virt::storage_vol::StorageVol)>, DriverError> {
        let mut unreachable = None;
        for host in &self.config.hosts {
            let conn = match self.connect(host) {
                Ok(conn) => conn,
                Err(error) => {
                    unreachable = Some(error);
                    continue;
                }
            };
            let pool = self.pool(&conn)?;
            if let Some(volume) = storage::volume(&pool, name)? {
                return Ok(Some((conn, pool, volume)));
            }
        }
        match unreachable {
            Some(error) => Err(error),
            None => Ok(None),
        }
    }

    /// The host that stores a region's volumes: its first host (all hosts, with a shared pool).
    fn storage_host(&self, region: &str) -> Result<&HostConfig, DriverError> {
        self.config
            .hosts
            .iter()
            .find(|host| host.region == region)
            .ok_or_else(|| DriverError::Permanent(format!("no libvirt host in region {region}")))
    }

    /// An empty qcow2, a copy of another volume, or a copy-on-write layer over an image's disk (as an
    /// instance's root disk is). A volume that boots without a boot loader gets the side file that says
    /// how, written before the disk, whose existence marks the volume done.
    pub(super) fn create_volume(
        &self,
        id: &str,
        region: &str,
        size_gb: u32,
        source: &VolumeSource,
    ) -> Result<(), DriverError> {
        let name = self.data_volume(id);
        if self.find_volume(&name)?.is_some() {
            return Ok(());
        }
        let capacity = u64::from(size_gb) * GIB;
        match source {
            VolumeSource::Empty => {
                let conn = self.connect(self.storage_host(region)?)?;
                let pool = self.pool(&conn)?;
                storage::create_qcow2(&pool, &name, capacity, None)?;
            }
            VolumeSource::Image { image } => {
                let image = self.image(image)?;
                let conn = self.connect(self.storage_host(region)?)?;
                let pool = self.pool(&conn)?;
                let boot = BootFiles::of_image(image);
                if boot != BootFiles::default() {
                    storage::upload(
                        &conn,
                        &pool,
                        &Self::boot_volume(&name),
                        boot.render().as_bytes(),
                    )?;
                }
                storage::create_qcow2(
                    &pool,
                    &name,
                    capacity,
                    Some((&image.disk.to_string_lossy(), &image.format)),
                )?;
            }
            VolumeSource::Volume { volume_id } => {
                let source_name = self.data_volume(volume_id);
                let (conn, pool, source) = self.find_volume(&source_name)?.ok_or_else(|| {
                    DriverError::Permanent(format!("source volume {volume_id} not found"))
                })?;
                // A copy of a bootable volume boots the same way.
                if let Some(boot) = storage::volume(&pool, &Self::boot_volume(&source_name))? {
                    let bytes = storage::download(&conn, &boot)?;
                    storage::upload(&conn, &pool, &Self::boot_volume(&name), &bytes)?;
                }
                storage::clone(&pool, &name, &source, Some(capacity))?;
            }
        }
        Ok(())
    }

    pub(super) fn delete_volume(&self, id: &str) -> Result<(), DriverError> {
        let name = self.data_volume(id);
        let Some((conn, pool, volume)) = self.find_volume(&name)? else {
            return Ok(());
        };
        let path = storage::path(&volume)?;
        for domain in self.own_domains(&conn)? {
            let definition = domain
                .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
                .unwrap_or_default();
            if xml::disks(&definition).iter().any(|(d, _)| d.path == path) {
                return Err(DriverError::Permanent(format!(
                    "volume {id} is attached to {}",
                    domain.name().unwrap_or_default()
                )));
            }
        }
        storage::delete(&pool, &name)?;
        storage::delete(&pool, &Self::boot_volume(&name))
    }

    /// Grows a volume: through the domain of a running guest that uses it, else in the pool.
    pub(super) fn resize_volume(&self, id: &str, size_gb: u32) -> Result<(), DriverError> {
        let (_, _, volume) = self
            .find_volume(&self.data_volume(id))?
            .ok_or_else(|| DriverError::Permanent(format!("volume {id} not found")))?;
        let capacity = u64::from(size_gb) * GIB;
        let current = volume
            .info()
            .map_err(|e| driver_error("volume info", e))?
            .capacity;
        if capacity < current {
            return Err(DriverError::Permanent(format!(
                "volume {id} is {} GB and cannot shrink to {size_gb} GB",
                current / GIB
            )));
        }
        if capacity == current {
            return Ok(());
        }
        let path = storage::path(&volume)?;
        match self.running_user(&path)? {
            // QEMU holds a running guest's disk open: it grows the image and tells the guest, which
            // sees the larger disk at once. Growing the file behind its back would do neither.
            Some((domain, target)) => domain
                .block_resize(&target, capacity, sys::VIR_DOMAIN_BLOCK_RESIZE_BYTES)
                .map_err(|e| driver_error("grow disk of running guest", e)),
            None => volume
                .resize(capacity, 0)
                .map_err(|e| driver_error("grow volume", e)),
        }
    }

    /// The running domain of ours that has the disk at `path`, and the disk's target there (`vdc`), on
    /// any host that answers (a shared pool's disk may run elsewhere).
    fn running_user(&self, path: &str) -> Result<Option<(Domain, String)>, DriverError> {
        for host in &self.config.hosts {
            let Ok(conn) = self.connect(host) else {
                continue;
            };
            for domain in self.own_domains(&conn)? {
                if !domain.is_active().unwrap_or(false) {
                    continue;
                }
                let live = domain.xml_desc(0).unwrap_or_default();
                if let Some((disk, _)) = xml::disks(&live).into_iter().find(|(d, _)| d.path == path)
                {
                    return Ok(Some((domain, disk.target)));
                }
            }
        }
        Ok(None)
    }

    /// Live and persistent when the domain runs, persistent only when it does not.
    fn device_flags(domain: &Domain) -> u32 {
        if domain.is_active().unwrap_or(false) {
            sys::VIR_DOMAIN_AFFECT_LIVE | sys::VIR_DOMAIN_AFFECT_CONFIG
        } else {
            sys::VIR_DOMAIN_AFFECT_CONFIG
        }
    }

    pub(super) fn attach_volume(
        &self,
        instance_id: &str,
        volume_id: &str,
    ) -> Result<(), DriverError> {
        let found = self.found(instance_id)?;
        let pool = self.pool(&found.conn)?;
        let volume = storage::volume(&pool, &self.data_volume(volume_id))?.ok_or_else(|| {
            DriverError::Permanent(format!(
                "volume {volume_id} not found on host {}",
                found.host.name
            ))
        })?;
        let path = storage::path(&volume)?;
        let definition = found
            .domain
            .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
            .map_err(|e| driver_error("domain XML", e))?;
        let disks = xml::disks(&definition);
        if disks.iter().any(|(d, _)| d.path == path) {
            return Ok(());
        }
        let taken: HashSet<String> = disks.into_iter().map(|(d, _)| d.target).collect();
        let target = (2..26)
            .map(target_name)
            .find(|t| !taken.contains(t))
            .ok_or_else(|| {
                DriverError::Permanent(format!("instance {instance_id} has no free disk slot"))
            })?;
        let disk = DiskXml {
            path,
            format: "qcow2".into(),
            target,
            read_only: false,
            serial: Some(serial(volume_id)),
        };
        found
            .domain
            .attach_device_flags(&disk.to_xml(), Self::device_flags(&found.domain))
            .map_err(|e| driver_error("attach volume", e))
    }

    pub(super) fn detach_volume(
        &self,
        instance_id: &str,
        volume_id: &str,
    ) -> Result<(), DriverError> {
        let found = self.found(instance_id)?;
        let pool = self.pool(&found.conn)?;
        let Some(volume) = storage::volume(&pool, &self.data_volume(volume_id))? else {
            return Ok(());
        };
        let path = storage::path(&volume)?;
        let flags = Self::device_flags(&found.domain);
        // The live definition when running (hot-plugged disks carry their live address).
        let definition = found
            .domain
            .xml_desc(if flags & sys::VIR_DOMAIN_AFFECT_LIVE != 0 {
                0
            } else {
                sys::VIR_DOMAIN_XML_INACTIVE
            })
            .map_err(|e| driver_error("domain XML", e))?;
        let Some((_, block)) = xml::disks(&definition)
            .into_iter()
            .find(|(d, _)| d.path == path)
        else {
            return Ok(());
        };
        found
            .domain
            .detach_device_flags(&block, flags)
            .map_err(|e| driver_error("detach volume", e))?;
        // The guest releases the device asynchronously; wait a little so the call reports the outcome.
        if flags & sys::VIR_DOMAIN_AFFECT_LIVE != 0 {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let live = found.domain.xml_desc(0).unwrap_or_default();
                if !xml::disks(&live).iter().any(|(d, _)| d.path == path) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            return Err(DriverError::Transient(format!(
                "the guest of instance {instance_id} has not released volume {volume_id} yet"
            )));
        }
        Ok(())
    }
}

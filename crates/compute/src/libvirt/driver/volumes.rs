//! Data volumes (qcow2 volumes of the pool, hot-plugged into running guests) and snapshots (copies of
//! root disks).

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

    pub(super) fn create_volume(
        &self,
        id: &str,
        region: &str,
        size_gb: u32,
        source: Option<&str>,
    ) -> Result<(), DriverError> {
        let name = self.data_volume(id);
        if self.find_volume(&name)?.is_some() {
            return Ok(());
        }
        match source {
            None => {
                let conn = self.connect(self.storage_host(region)?)?;
                let pool = self.pool(&conn)?;
                storage::create_qcow2(&pool, &name, u64::from(size_gb) * GIB, None)?;
            }
            Some(source) => {
                let (_, pool, source) =
                    self.find_volume(&self.data_volume(source))?
                        .ok_or_else(|| {
                            DriverError::Permanent(format!("source volume {source} not found"))
                        })?;
                storage::clone(&pool, &name, &source, Some(u64::from(size_gb) * GIB))?;
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
        if capacity > current {
            volume
                .resize(capacity, 0)
                .map_err(|e| driver_error("grow volume", e))?;
        }
        Ok(())
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

    /// A copy of the root disk. A running guest's disk is copied by a libvirt backup job (a consistent
    /// point-in-time copy while it keeps running); a stopped one's is copied as a volume.
    pub(super) fn create_snapshot(
        &self,
        instance_id: &str,
        snapshot_id: &str,
    ) -> Result<(), DriverError> {
        let found = self.found(instance_id)?;
        let pool = self.pool(&found.conn)?;
        let name = self.snapshot_volume(snapshot_id);
        let boot_name = Self::boot_volume(&name);
        if storage::volume(&pool, &name)?.is_some() && storage::volume(&pool, &boot_name)?.is_some()
        {
            return Ok(());
        }
        let definition = found
            .domain
            .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
            .map_err(|e| driver_error("domain XML", e))?;
        let root = storage::volume(&pool, &self.root_volume(instance_id))?
            .or_else(|| {
                // Booted from a volume: its first disk.
                let (disk, _) = xml::disks(&definition).into_iter().next()?;
                found.conn.lookup_storage_vol_by_path(&disk.path).ok()
            })
            .ok_or_else(|| {
                DriverError::Permanent(format!("instance {instance_id} has no root disk"))
            })?;
        storage::delete(&pool, &name)?;
        if found.domain.is_active().unwrap_or(false) {
            let target = format!(
                "{}/{}",
                self.config.pool_dir.to_string_lossy().trim_end_matches('/'),
                name
            );
            backup(&found.domain, &definition, &target)?;
            pool.refresh(0)
                .map_err(|e| driver_error("refresh storage pool", e))?;
        } else {
            storage::clone(&pool, &name, &root, None)?;
        }
        let boot = BootFiles::from_domain_xml(&definition);
        storage::upload(&found.conn, &pool, &boot_name, boot.render().as_bytes())?;
        Ok(())
    }

    pub(super) fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), DriverError> {
        let name = self.snapshot_volume(snapshot_id);
        for host in &self.config.hosts {
            let conn = self.connect(host)?;
            let pool = self.pool(&conn)?;
            storage::delete(&pool, &name)?;
            storage::delete(&pool, &Self::boot_volume(&name))?;
        }
        Ok(())
    }
}

/// A push-mode backup of the root disk (`vda`) to `target`, waited for.
fn backup(domain: &Domain, definition: &str, target: &str) -> Result<(), DriverError> {
    let mut disks = String::new();
    for (disk, _) in xml::disks(definition) {
        if disk.target == "vda" {
            disks.push_str(&format!(
                "<disk name='vda' backup='yes' type='file'><target file='{}'/><driver type='qcow2'/></disk>",
                xml::escape(target)
            ));
        } else {
            disks.push_str(&format!(
                "<disk name='{}' backup='no'/>",
                xml::escape(&disk.target)
            ));
        }
    }
    let request = std::ffi::CString::new(format!(
        "<domainbackup mode='push'><disks>{disks}</disks></domainbackup>"
    ))
    .map_err(|_| DriverError::Permanent("backup XML contains a NUL byte".into()))?;
    // The `virt` crate does not wrap virDomainBackupBegin (libvirt 6.0+).
    // SAFETY: the domain pointer is valid for the borrow; the XML is a NUL-terminated string that
    // outlives the call; a null checkpoint XML is allowed.
    let result = unsafe {
        sys::virDomainBackupBegin(domain.as_ptr(), request.as_ptr(), std::ptr::null(), 0)
    };
    if result < 0 {
        return Err(driver_error(
            "start backup",
            virt::error::Error::last_error(),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let job = domain
            .job_info()
            .map_err(|e| driver_error("backup job", e))?;
        if job.r#type == sys::VIR_DOMAIN_JOB_NONE as i32 {
            break;
        }
        if Instant::now() > deadline {
            return Err(DriverError::Transient(
                "backup did not finish in an hour".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let done = domain
        .job_stats(sys::VIR_DOMAIN_JOB_STATS_COMPLETED)
        .map_err(|e| driver_error("backup job", e))?;
    if done.r#type == sys::VIR_DOMAIN_JOB_COMPLETED as i32 {
        Ok(())
    } else {
        Err(DriverError::Transient(format!(
            "backup failed: {}",
            done.error_message.unwrap_or_default()
        )))
    }
}

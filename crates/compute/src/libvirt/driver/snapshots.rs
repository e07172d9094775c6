//! Snapshots: copies of root disks in the pool, each with a side file that says how to boot it.

use super::*;

impl Inner {
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
    let (kind, error) = completed_job(domain)?;
    if kind == sys::VIR_DOMAIN_JOB_COMPLETED as i32 {
        Ok(())
    } else {
        Err(DriverError::Transient(format!(
            "backup failed: {}",
            error.unwrap_or_else(|| "libvirt gave no reason".into())
        )))
    }
}

/// How the domain's last job ended: its type (`VIR_DOMAIN_JOB_COMPLETED` or `VIR_DOMAIN_JOB_FAILED`) and
/// the error libvirt recorded for it.
///
/// Called through `virt::sys`, not `Domain::job_stats`: virt 0.5 hands libvirt's array of typed
/// parameters to a `Vec`, so Rust's global allocator would free memory libvirt allocated, which crashes
/// barrackd under mimalloc. Here libvirt frees its own array (`virTypedParamsFree`), after the message is
/// copied out.
fn completed_job(domain: &Domain) -> Result<(i32, Option<String>), DriverError> {
    let mut kind: std::os::raw::c_int = 0;
    let mut params: sys::virTypedParameterPtr = std::ptr::null_mut();
    let mut count: std::os::raw::c_int = 0;
    // SAFETY: the domain pointer is valid for the borrow; libvirt allocates `params` (or leaves it null)
    // and sets `count` to its length.
    let result = unsafe {
        sys::virDomainGetJobStats(
            domain.as_ptr(),
            &mut kind,
            &mut params,
            &mut count,
            sys::VIR_DOMAIN_JOB_STATS_COMPLETED,
        )
    };
    if result < 0 {
        return Err(driver_error("backup job", virt::error::Error::last_error()));
    }
    let mut message: *const std::os::raw::c_char = std::ptr::null();
    // SAFETY: `params` holds `count` parameters (or is null with `count` 0); the string found points into
    // them and is copied before they are freed, by libvirt, exactly once.
    let error = unsafe {
        let found = !params.is_null()
            && sys::virTypedParamsGetString(
                params,
                count,
                sys::VIR_DOMAIN_JOB_ERRMSG.as_ptr(),
                &mut message,
            ) == 1
            && !message.is_null();
        let error = found.then(|| {
            std::ffi::CStr::from_ptr(message)
                .to_string_lossy()
                .into_owned()
        });
        sys::virTypedParamsFree(params, count);
        error
    };
    Ok((kind, error))
}

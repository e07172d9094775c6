//! The directory storage pool on each host: root disks, seeds, data volumes and snapshots as its volumes.
//! Everything goes through libvirt (never the local file system), so remote hosts work the same.

use virt::connect::Connect;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;

use super::{driver_error, is_missing, xml};
use crate::DriverError;

pub const GIB: u64 = 1 << 30;

/// The pool, defined, built and started if it is not yet; refreshed so files libvirt did not create
/// (console logs, backups) are seen.
pub fn pool(conn: &Connect, name: &str, dir: &str) -> Result<StoragePool, DriverError> {
    let pool = match conn.lookup_storage_pool_by_name(name) {
        Ok(pool) => pool,
        Err(error) if is_missing(&error) => {
            let pool = conn
                .define_storage_pool_xml(&xml::pool_xml(name, dir), 0)
                .map_err(|e| driver_error("define storage pool", e))?;
            pool.build(0)
                .map_err(|e| driver_error("build storage pool", e))?;
            let _ = pool.set_autostart(true);
            pool
        }
        Err(error) => return Err(driver_error("look up storage pool", error)),
    };
    if !pool.is_active().unwrap_or(false) {
        pool.create(0)
            .map_err(|e| driver_error("start storage pool", e))?;
    }
    pool.refresh(0)
        .map_err(|e| driver_error("refresh storage pool", e))?;
    Ok(pool)
}

pub fn volume(pool: &StoragePool, name: &str) -> Result<Option<StorageVol>, DriverError> {
    match pool.lookup_storage_vol_by_name(name) {
        Ok(volume) => Ok(Some(volume)),
        Err(error) if is_missing(&error) => Ok(None),
        Err(error) => Err(driver_error("look up volume", error)),
    }
}

pub fn path(volume: &StorageVol) -> Result<String, DriverError> {
    volume.path().map_err(|e| driver_error("volume path", e))
}

/// Deletes a volume if it exists.
pub fn delete(pool: &StoragePool, name: &str) -> Result<(), DriverError> {
    if let Some(volume) = volume(pool, name)? {
        match volume.delete(0) {
            Ok(()) => {}
            Err(error) if is_missing(&error) => {}
            Err(error) => return Err(driver_error("delete volume", error)),
        }
    }
    Ok(())
}

/// A qcow2 volume of `capacity` bytes, empty or over a backing file; an existing one is kept (a repeated
/// call after a crash).
pub fn create_qcow2(
    pool: &StoragePool,
    name: &str,
    capacity: u64,
    backing: Option<(&str, &str)>,
) -> Result<StorageVol, DriverError> {
    if let Some(volume) = volume(pool, name)? {
        return Ok(volume);
    }
    StorageVol::create_xml(pool, &xml::volume_xml(name, capacity, backing), 0)
        .map_err(|e| driver_error("create volume", e))
}

/// A full copy of `source` named `name`, grown to `capacity` bytes if that is larger. The source must
/// not be in use by a running domain (QEMU holds its write lock).
pub fn clone(
    pool: &StoragePool,
    name: &str,
    source: &StorageVol,
    capacity: Option<u64>,
) -> Result<StorageVol, DriverError> {
    if let Some(volume) = volume(pool, name)? {
        return Ok(volume);
    }
    let source_capacity = source
        .info()
        .map_err(|e| driver_error("volume info", e))?
        .capacity;
    let volume = StorageVol::create_xml_from(
        pool,
        &xml::volume_xml(name, source_capacity, None),
        source,
        0,
    )
    .map_err(|e| driver_error("copy volume", e))?;
    if let Some(capacity) = capacity.filter(|c| *c > source_capacity) {
        volume
            .resize(capacity, 0)
            .map_err(|e| driver_error("grow volume", e))?;
    }
    Ok(volume)
}

/// Writes `bytes` into a new raw volume `name` (replacing one left by an interrupted call).
pub fn upload(
    conn: &Connect,
    pool: &StoragePool,
    name: &str,
    bytes: &[u8],
) -> Result<StorageVol, DriverError> {
    delete(pool, name)?;
    let volume = StorageVol::create_xml(pool, &xml::raw_volume_xml(name, bytes.len() as u64), 0)
        .map_err(|e| driver_error("create volume", e))?;
    let stream = Stream::new(conn, 0).map_err(|e| driver_error("open stream", e))?;
    volume
        .upload(&stream, 0, bytes.len() as u64, 0)
        .map_err(|e| driver_error("upload volume", e))?;
    let mut sent = 0;
    while sent < bytes.len() {
        let n = stream
            .send(&bytes[sent..])
            .map_err(|e| driver_error("upload volume", e))?;
        if n <= 0 {
            return Err(DriverError::Transient(
                "upload volume: stream closed".into(),
            ));
        }
        sent += n as usize;
    }
    stream
        .finish()
        .map_err(|e| driver_error("upload volume", e))?;
    Ok(volume)
}

/// The whole content of a (small) volume.
pub fn download(conn: &Connect, volume: &StorageVol) -> Result<Vec<u8>, DriverError> {
    let stream = Stream::new(conn, 0).map_err(|e| driver_error("open stream", e))?;
    volume
        .download(&stream, 0, 0, 0)
        .map_err(|e| driver_error("download volume", e))?;
    let mut out = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = stream
            .recv(&mut buffer)
            .map_err(|e| driver_error("download volume", e))?;
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buffer[..n as usize]);
    }
    stream
        .finish()
        .map_err(|e| driver_error("download volume", e))?;
    Ok(out)
}

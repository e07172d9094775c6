//! Files only the server's user may read: the data directory (0700), the SQLite database (0600), the
//! server secret and the first operator's credentials (0600, written whole or not at all).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Creates the data directory if needed and leaves it readable by its owner only.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    restrict(dir, 0o700)
}

/// Writes `contents` to a new file beside `path` with mode 0600 and renames it over `path`: a reader
/// sees the old file or the new one, never half of one, and an existing file's looser mode does not
/// survive.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut file = PrivateFile::create(path)?;
    file.write_all(contents.as_bytes())?;
    file.commit()
}

/// A file of mode 0600 written beside its path and renamed over it by [`PrivateFile::commit`], so it
/// appears whole or not at all; dropped without a commit, it is removed.
pub struct PrivateFile {
    file: Option<std::io::BufWriter<std::fs::File>>,
    temp: PathBuf,
    path: PathBuf,
}

impl PrivateFile {
    pub fn create(path: &Path) -> std::io::Result<PrivateFile> {
        let dir = directory_of(path);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let temp = dir.join(format!(
            ".{}.{}.tmp",
            name.unwrap_or_default(),
            barrack_core::ids::random_alphanumeric(8)
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&temp)?;
        Ok(PrivateFile {
            file: Some(std::io::BufWriter::new(file)),
            temp,
            path: path.to_path_buf(),
        })
    }

    pub fn commit(mut self) -> std::io::Result<()> {
        let file = self.file.take().expect("not committed yet");
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.temp, &self.path)?;
        // The rename itself is durable once the directory is.
        #[cfg(unix)]
        std::fs::File::open(directory_of(&self.path))?.sync_all()?;
        Ok(())
    }
}

/// The directory a file is in (`.` for a bare name, whose parent is empty).
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

impl Write for PrivateFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("not committed yet").write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("not committed yet").flush()
    }
}

impl Drop for PrivateFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Creates the SQLite database file with mode 0600 if it is missing, and takes group and other access
/// away from an existing one and its WAL files (SQLite gives those the database file's mode).
pub fn private_database(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?;
    restrict(path, 0o600)?;
    for suffix in ["-wal", "-shm"] {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        let companion = Path::new(&companion);
        if companion.exists() {
            restrict(companion, 0o600)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_existing_loose_file_is_replaced_by_a_private_one() {
        let dir = std::env::temp_dir().join(format!(
            "barrack-private-{}",
            barrack_core::ids::random_alphanumeric(8)
        ));
        private_dir(&dir.join("data")).unwrap();
        assert_eq!(mode(&dir.join("data")), 0o700);
        let path = dir.join("data/credentials");
        std::fs::write(&path, "old, and world-readable").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(mode(&path), 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.join("data")).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

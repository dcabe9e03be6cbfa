//! Files that appear whole or not at all: written under a temporary name in the same folder
//! (starting with `.`, which readers of the folder skip), synced, then renamed into place. A
//! reader, or a process restarted after a crash, never sees half a file.

use std::io::Write;
use std::path::Path;

use tempfile::NamedTempFile;

use crate::error::{Error, Result};
use crate::failpoint::failpoint;

/// Write `path`, replacing it if it exists.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    let tmp = temp_file(dir, bytes, Durability::PowerCut)?;
    tmp.persist(path)
        .map_err(|e| Error::io("rename into", path)(e.error))?;
    Ok(())
}

/// Whether a file must survive a power cut (synced, and its folder too) or only a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Survives a crash of the process (the rename is atomic); a power cut may lose it.
    Crash,
    /// Synced, file and folder: survives a power cut.
    PowerCut,
}

/// Write `path` only if it does not exist, without replacing it (a hard link, which fails if
/// the name is taken). Returns whether this call created it. `failpoint_name` names a point
/// between the write and the rename, for crash tests.
pub fn create_new(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
    failpoint_name: Option<&str>,
) -> Result<bool> {
    let dir = path.parent().expect("a file sits in a folder");
    let tmp = temp_file(dir, bytes, durability)?;
    let created = if let Some(name) = failpoint_name {
        // Keep the temporary file, as a crash would.
        let (_, kept) = tmp.keep().map_err(|e| Error::io("keep", dir)(e.error))?;
        failpoint(name);
        link_new(&kept, path)?
    } else {
        match tmp.persist_noclobber(path) {
            Ok(_) => true,
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(Error::io("rename into", path)(e.error)),
        }
    };
    if created && durability == Durability::PowerCut {
        sync_dir(dir)?;
    }
    Ok(created)
}

fn temp_file(dir: &Path, bytes: &[u8], durability: Durability) -> Result<NamedTempFile> {
    // Readable by others as a file written with `std::fs::write` would be (a temporary file
    // is created 0600).
    use std::os::unix::fs::PermissionsExt;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(Error::io("create a temporary file in", dir))?;
    tmp.write_all(bytes)
        .and_then(|()| match durability {
            Durability::PowerCut => tmp.as_file().sync_all(),
            Durability::Crash => Ok(()),
        })
        .map_err(Error::io("write", tmp.path().to_path_buf()))?;
    Ok(tmp)
}

/// Make a rename in `dir` durable: without it, a power cut can forget a file whose contents
/// were synced.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("sync", dir))
}

fn link_new(tmp: &Path, path: &Path) -> Result<bool> {
    let created = match std::fs::hard_link(tmp, path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(Error::io("rename into", path)(e)),
    };
    std::fs::remove_file(tmp).map_err(Error::io("remove", tmp))?;
    Ok(created)
}

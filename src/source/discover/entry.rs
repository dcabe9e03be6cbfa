//! What a name in the tracker folder is: a file to ingest, a symlink to one inside the data
//! folder, or something passed over (and why).

use std::path::Path;

use crate::error::{Error, Result};

/// What a folder entry is, seen through symbolic links.
pub(super) enum Entry {
    /// A regular file, or a symbolic link to one: its target's metadata.
    File(std::fs::Metadata),
    /// Something that cannot be ingested, and why.
    Skipped(String),
    /// Renamed or removed since the listing.
    Gone,
}

pub(super) fn inspect(path: &Path) -> Result<Entry> {
    let own = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Entry::Gone),
        Err(e) => return Err(Error::io("inspect", path)(e)),
    };
    if !own.file_type().is_symlink() {
        return Ok(kind(
            own,
            "a folder",
            "not a regular file (a pipe, socket or device)",
        ));
    }
    let target =
        std::fs::read_link(path).map_or_else(|_| "?".to_string(), |t| t.display().to_string());
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && !inside_data(path) => Ok(Entry::Skipped(format!(
            "a symbolic link to {target}, outside the data folder: bronze follows links only to \
             files under the data folder, so that a link cannot copy any file this process may \
             read into the warehouse"
        ))),
        Ok(m) => Ok(kind(
            m,
            &format!("a symbolic link to the folder {target}"),
            &format!("a symbolic link to something that is not a regular file ({target})"),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(path).is_err() {
                return Ok(Entry::Gone);
            }
            Ok(Entry::Skipped(format!(
                "a symbolic link to {target}, which does not exist"
            )))
        }
        // A loop, or a target this process may not see.
        Err(e) => Ok(Entry::Skipped(format!(
            "a symbolic link to {target} that cannot be followed ({e})"
        ))),
    }
}

/// Whether a link in the tracker folder (`<data>/healthcare/streaming/tracker/`) resolves to
/// a file under the data folder.
fn inside_data(link: &Path) -> bool {
    let data = link.parent().and_then(|tracker| tracker.ancestors().nth(3));
    match (data.map(std::fs::canonicalize), std::fs::canonicalize(link)) {
        (Some(Ok(data)), Ok(target)) => target.starts_with(data),
        _ => false,
    }
}

/// A regular file, or what else it is.
fn kind(metadata: std::fs::Metadata, folder: &str, other: &str) -> Entry {
    if metadata.is_file() {
        Entry::File(metadata)
    } else if metadata.is_dir() {
        Entry::Skipped(format!(
            "{folder} (bronze reads only the files directly in the tracker folder; a name \
             starting with `_` or `.` keeps it there quietly)"
        ))
    } else {
        Entry::Skipped(other.to_string())
    }
}

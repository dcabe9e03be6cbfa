//! Which tracker files a stream may take: listed from the source folder, never hidden or
//! temporary, and complete (not still being written), oldest first.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Suffixes of files still being written or downloaded.
const TEMP_SUFFIXES: &[&str] = &[".tmp", ".partial", ".inprogress", ".crdownload", ".swp"];

/// A source file as the stream saw it when planning a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// The file's name in the source folder; the stream's identity of the file.
    pub name: String,
    pub size: u64,
    /// Modification time, milliseconds since the epoch.
    #[serde(rename = "modificationTime")]
    pub mtime_ms: i64,
}

/// How a file is judged complete.
#[derive(Debug, Clone, Copy)]
pub struct Completeness {
    /// A file whose modification time is at least this old is complete.
    pub settle: Duration,
    /// A younger file is complete if its size and time do not change across this interval.
    pub recheck: Duration,
}

impl Default for Completeness {
    fn default() -> Self {
        Self {
            settle: Duration::from_secs(2),
            recheck: Duration::from_millis(200),
        }
    }
}

/// Whether a name may be a source file: not hidden (`.`), not internal (`_`), not temporary.
pub fn is_candidate_name(name: &str) -> bool {
    !name.starts_with('.')
        && !name.starts_with('_')
        && !TEMP_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// List the complete files of `dir` that are not in `seen`, oldest first (modification time,
/// then name). A missing folder has no files.
pub async fn discover(
    dir: &Path,
    seen: &HashSet<String>,
    completeness: Completeness,
) -> Result<Vec<SourceFile>> {
    let first = list(dir, seen)?;
    let now = SystemTime::now();
    let young = |f: &SourceFile| {
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_millis(f.mtime_ms.max(0) as u64);
        now.duration_since(mtime).unwrap_or_default() < completeness.settle
    };
    let mut files: Vec<SourceFile> = if first.iter().any(young) {
        // Look again after a moment: a file whose size or time moved is still being written.
        tokio::time::sleep(completeness.recheck).await;
        let second = list(dir, seen)?;
        first
            .into_iter()
            .filter(|f| !young(f) || second.contains(f))
            .collect()
    } else {
        first
    };
    files.sort_by(|a, b| {
        a.mtime_ms
            .cmp(&b.mtime_ms)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(files)
}

/// The candidate files of a folder, with their size and time, that are not in `seen`.
fn list(dir: &Path, seen: &HashSet<String>) -> Result<Vec<SourceFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir)(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("list", dir))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue; // not UTF-8: cannot be named in the table's lineage
        };
        if !is_candidate_name(&name) || seen.contains(&name) {
            continue;
        }
        let metadata = match entry.metadata() {
            Ok(m) => m,
            // Renamed or removed between the listing and now: not there any more.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("inspect", entry.path())(e)),
        };
        if !metadata.is_file() {
            continue;
        }
        files.push(SourceFile {
            name,
            size: metadata.len(),
            mtime_ms: mtime_ms(&metadata),
        });
    }
    Ok(files)
}

pub fn mtime_ms(metadata: &std::fs::Metadata) -> i64 {
    metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// The path of a source file in its folder.
pub fn path_of(dir: &Path, file: &SourceFile) -> PathBuf {
    dir.join(&file.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_internal_and_temporary_names_are_skipped() {
        for name in ["01.json", "data.ndjson", "x"] {
            assert!(is_candidate_name(name), "{name}");
        }
        for name in [
            ".01.json",
            "_SUCCESS",
            "01.json.tmp",
            "a.partial",
            "b.crdownload",
            ".x.swp",
        ] {
            assert!(!is_candidate_name(name), "{name}");
        }
    }

    #[tokio::test]
    async fn lists_new_files_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        for (name, age_s) in [
            ("b.json", 100),
            ("a.json", 100),
            ("c.json", 300),
            (".hidden", 500),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, "[]").unwrap();
            let t = SystemTime::now() - Duration::from_secs(age_s);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        let seen: HashSet<String> = ["b.json".to_string()].into();
        let files = discover(dir.path(), &seen, Completeness::default())
            .await
            .unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["c.json", "a.json"]);
    }

    #[tokio::test]
    async fn a_missing_folder_has_no_files() {
        let files = discover(
            Path::new("/nonexistent/x"),
            &HashSet::new(),
            Completeness::default(),
        )
        .await
        .unwrap();
        assert!(files.is_empty());
    }
}

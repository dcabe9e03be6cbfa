//! Which tracker files a stream may take: listed from the source folder, never hidden or
//! temporary, and complete (not still being written), oldest first.
//!
//! Nothing else is skipped without a word: a file the stream cannot take (a name that is not
//! UTF-8, a folder, a symbolic link that leads nowhere) or will not take again (a file changed
//! after it was ingested) comes back as a warning naming it, once per run. Hidden (`.`),
//! internal (`_`) and temporary names are skipped quietly: that is how a writer hides a file
//! until it is whole. A symbolic link to a regular file is followed: its target is read, under
//! the link's name.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::failpoint::{failpoint, points};
use crate::stream::checkpoint::Checkpoint;

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
    /// A file settles in 2 s, or in `MEDALLION_SETTLE_MS` milliseconds: tests that write every
    /// file whole (temporary name, then rename) set 0 rather than sleep past the 2 s.
    fn default() -> Self {
        Self {
            settle: settle_from_env().unwrap_or(Duration::from_secs(2)),
            recheck: Duration::from_millis(200),
        }
    }
}

/// `MEDALLION_SETTLE_MS`, if it is set to a number of milliseconds.
fn settle_from_env() -> Option<Duration> {
    let ms = std::env::var("MEDALLION_SETTLE_MS").ok()?.parse().ok()?;
    Some(Duration::from_millis(ms))
}

/// The files a stream has taken, with the size and time its plans recorded, and what it has
/// already said about the folder during this run (so a long `every=` stream says it once).
#[derive(Debug, Default)]
pub struct Seen {
    /// Name -> how it was taken; `None` for a file known only by name (a rebuilt checkpoint).
    files: HashMap<String, Option<Taken>>,
    warned: HashSet<String>,
}

/// A file as a batch's plan recorded it.
#[derive(Debug, Clone, Copy)]
struct Taken {
    batch_id: i64,
    size: u64,
    mtime_ms: i64,
}

impl Seen {
    /// Every file a checkpoint's plans took (with its size and time), and the files it
    /// recovered from the table when it was rebuilt (by name only).
    pub fn from_checkpoint(checkpoint: &Checkpoint) -> Result<Self> {
        let mut seen = Self::default();
        if let Some(recovered) = checkpoint.recovered()? {
            seen.files
                .extend(recovered.files.into_iter().map(|name| (name, None)));
        }
        for batch_id in checkpoint.planned()? {
            seen.record(batch_id, &checkpoint.plan(batch_id)?.files);
        }
        Ok(seen)
    }

    /// The files of a batch just planned.
    pub fn record(&mut self, batch_id: i64, files: &[SourceFile]) {
        for file in files {
            let taken = Taken {
                batch_id,
                size: file.size,
                mtime_ms: file.mtime_ms,
            };
            self.files.insert(file.name.clone(), Some(taken));
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }
}

/// What one look at the source folder found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// The new complete files, oldest first (modification time, then name).
    pub files: Vec<SourceFile>,
    /// Files passed over for a reason a user must know, each said once per [`Seen`].
    pub warnings: Vec<String>,
}

/// Whether a name may be a source file: not hidden (`.`), not internal (`_`), not temporary.
pub fn is_candidate_name(name: &str) -> bool {
    !name.starts_with('.')
        && !name.starts_with('_')
        && !TEMP_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// List the complete files of `dir` that `seen` does not hold, oldest first (modification
/// time, then name), and what was passed over and why. A missing folder has no files.
pub async fn discover(
    dir: &Path,
    seen: &mut Seen,
    completeness: Completeness,
) -> Result<Discovery> {
    let (first, skipped) = list(dir, seen)?;
    let now = SystemTime::now();
    let young = |f: &SourceFile| {
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_millis(f.mtime_ms.max(0) as u64);
        now.duration_since(mtime).unwrap_or_default() < completeness.settle
    };
    let mut files: Vec<SourceFile> = if first.iter().any(young) {
        // Look again after a moment: a file whose size or time moved is still being written.
        tokio::time::sleep(completeness.recheck).await;
        failpoint(points::BETWEEN_LOOKS);
        let (second, _) = list(dir, seen)?;
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
    let warnings = skipped
        .into_iter()
        .filter(|s| seen.warned.insert(s.key.clone()))
        .map(|s| s.message)
        .collect();
    Ok(Discovery { files, warnings })
}

/// An entry passed over that a user would expect to be ingested.
struct Skip {
    /// What makes two warnings the same: a file that keeps changing is said once.
    key: String,
    message: String,
}

impl Skip {
    fn new(message: String) -> Self {
        Self {
            key: message.clone(),
            message,
        }
    }
}

/// The candidate files of a folder, with their size and time, that `seen` does not hold; and
/// the entries passed over that a user would expect to be ingested, in name order.
fn list(dir: &Path, seen: &Seen) -> Result<(Vec<SourceFile>, Vec<Skip>)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(Error::io("list", dir)(e)),
    };
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("list", dir))?;
        let path = entry.path();
        let name = match entry.file_name().into_string() {
            Ok(name) => name,
            Err(raw) => {
                if is_candidate_name(&raw.to_string_lossy()) {
                    warnings.push(Skip::new(format!(
                        "{}: the file name is not valid UTF-8, so it cannot be ingested (the \
                         table's lineage names files in UTF-8): rename it",
                        path.display()
                    )));
                }
                continue;
            }
        };
        if !is_candidate_name(&name) {
            continue;
        }
        match inspect(&path)? {
            Entry::Gone => {}
            Entry::File(metadata) => {
                let file = SourceFile {
                    name,
                    size: metadata.len(),
                    mtime_ms: mtime_ms(&metadata),
                };
                match seen.files.get(&file.name) {
                    None => files.push(file),
                    // Known by name only: nothing to compare with.
                    Some(None) => {}
                    Some(Some(taken)) => {
                        if taken.size != file.size || taken.mtime_ms != file.mtime_ms {
                            warnings.push(Skip {
                                key: format!("changed {}", file.name),
                                message: changed(&path, taken, &file),
                            });
                        }
                    }
                }
            }
            // A file already taken that is now something else has nothing new to ingest.
            Entry::Skipped(_) if seen.contains(&name) => {}
            Entry::Skipped(reason) => warnings.push(Skip::new(format!(
                "{}: {reason}; not ingested",
                path.display()
            ))),
        }
    }
    warnings.sort_by(|a, b| a.message.cmp(&b.message));
    Ok((files, warnings))
}

/// What a folder entry is, seen through symbolic links.
enum Entry {
    /// A regular file, or a symbolic link to one: its target's metadata.
    File(std::fs::Metadata),
    /// Something that cannot be ingested, and why.
    Skipped(String),
    /// Renamed or removed since the listing.
    Gone,
}

fn inspect(path: &Path) -> Result<Entry> {
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

/// The warning for a file whose size or time is not what its batch's plan recorded.
fn changed(path: &Path, taken: &Taken, now: &SourceFile) -> String {
    let what = if taken.size != now.size {
        format!("its size is {} bytes, was {}", now.size, taken.size)
    } else {
        "its modification time moved".to_string()
    };
    format!(
        "{}: changed after it was ingested in batch {} ({what}); not ingested again: write new \
         readings to a new file",
        path.display(),
        taken.batch_id
    )
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

    /// Write `name` in `dir`, modified `age_s` seconds ago.
    fn write_aged(dir: &Path, name: &str, text: &str, age_s: u64) {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let t = SystemTime::now() - Duration::from_secs(age_s);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    async fn look(dir: &Path, seen: &mut Seen) -> (Vec<String>, Vec<String>) {
        let found = discover(dir, seen, Completeness::default()).await.unwrap();
        let names = found.files.into_iter().map(|f| f.name).collect();
        (names, found.warnings)
    }

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
            write_aged(dir.path(), name, "[]", age_s);
        }
        let mut seen = Seen::default();
        seen.files.insert("b.json".to_string(), None);
        let (names, warnings) = look(dir.path(), &mut seen).await;
        assert_eq!(names, ["c.json", "a.json"]);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[tokio::test]
    async fn a_missing_folder_has_no_files() {
        let found = discover(
            Path::new("/nonexistent/x"),
            &mut Seen::default(),
            Completeness::default(),
        )
        .await
        .unwrap();
        assert!(found.files.is_empty() && found.warnings.is_empty());
    }

    #[tokio::test]
    async fn a_symlink_to_a_file_is_listed_under_its_own_name() {
        // <data>/healthcare/streaming/tracker/link.json -> <data>/archive/real.json
        let data = tempfile::tempdir().unwrap();
        let tracker = data.path().join("healthcare/streaming/tracker");
        std::fs::create_dir_all(&tracker).unwrap();
        std::fs::create_dir_all(data.path().join("archive")).unwrap();
        write_aged(&data.path().join("archive"), "real.json", "[1, 2]", 100);
        std::os::unix::fs::symlink(
            data.path().join("archive/real.json"),
            tracker.join("link.json"),
        )
        .unwrap();
        let found = discover(&tracker, &mut Seen::default(), Completeness::default())
            .await
            .unwrap();
        assert_eq!(found.files.len(), 1);
        assert_eq!(found.files[0].name, "link.json");
        assert_eq!(found.files[0].size, 6, "the target's size");
        assert!(found.warnings.is_empty(), "{:?}", found.warnings);
    }

    #[tokio::test]
    async fn regression_a_symlink_out_of_the_data_folder_is_not_followed() {
        // A link to any file the process can read (/etc/passwd) put its text in the
        // warehouse, as a quarantined file's excerpt.
        let data = tempfile::tempdir().unwrap();
        let tracker = data.path().join("healthcare/streaming/tracker");
        std::fs::create_dir_all(&tracker).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        write_aged(elsewhere.path(), "secret.json", "[1]", 100);
        std::os::unix::fs::symlink(elsewhere.path().join("secret.json"), tracker.join("x.json"))
            .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", tracker.join("passwd.json")).unwrap();
        let found = discover(&tracker, &mut Seen::default(), Completeness::default())
            .await
            .unwrap();
        assert!(found.files.is_empty(), "{:?}", found.files);
        assert_eq!(found.warnings.len(), 2, "{:?}", found.warnings);
        for w in &found.warnings {
            assert!(w.contains("outside the data folder"), "{w}");
        }
    }

    #[tokio::test]
    async fn what_cannot_be_ingested_is_named_with_its_reason() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_aged(d, "ok.json", "[]", 100);
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling.json")).unwrap();
        std::os::unix::fs::symlink(d.join("loop.json"), d.join("loop.json")).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink(d.join("sub"), d.join("to_folder.json")).unwrap();
        std::fs::write(d.join(std::ffi::OsStr::from_bytes(b"caf\xe9.json")), "[]").unwrap();
        // Skipped by design, quietly.
        std::fs::create_dir(d.join("_archive")).unwrap();
        std::fs::write(d.join(std::ffi::OsStr::from_bytes(b".\xff")), "[]").unwrap();
        std::os::unix::fs::symlink(d.join("nowhere"), d.join(".hidden_link")).unwrap();

        let mut seen = Seen::default();
        let (names, warnings) = look(d, &mut seen).await;
        assert_eq!(names, ["ok.json"]);
        let expected = [
            format!(
                "{}: the file name is not valid UTF-8",
                d.join("caf\u{FFFD}.json").display()
            ),
            format!(
                "{}: a symbolic link to {}, which does not exist; not ingested",
                d.join("dangling.json").display(),
                d.join("nowhere").display()
            ),
            format!(
                "{}: a symbolic link to {} that cannot be followed (",
                d.join("loop.json").display(),
                d.join("loop.json").display()
            ),
            format!(
                "{}: a folder (bronze reads only the files directly in the tracker folder;",
                d.join("sub").display()
            ),
            format!(
                "{}: a symbolic link to the folder {} (bronze reads only",
                d.join("to_folder.json").display(),
                d.join("sub").display()
            ),
        ];
        assert_eq!(warnings.len(), expected.len(), "{warnings:#?}");
        for (warning, start) in warnings.iter().zip(&expected) {
            assert!(
                warning.starts_with(start.as_str()),
                "{warning}\nexpected {start}"
            );
        }

        // Said once per run.
        let (_, again) = look(d, &mut seen).await;
        assert!(again.is_empty(), "{again:?}");
    }

    #[tokio::test]
    async fn a_file_changed_after_its_batch_is_named_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_aged(d, "01.json", "[]", 100);
        let mut seen = Seen::default();
        let found = discover(d, &mut seen, Completeness::default())
            .await
            .unwrap();
        seen.record(7, &found.files);
        assert_eq!(
            look(d, &mut seen).await,
            (vec![], vec![]),
            "unchanged: nothing to say"
        );

        write_aged(d, "01.json", "[1]", 50);
        let (names, warnings) = look(d, &mut seen).await;
        assert!(names.is_empty());
        assert_eq!(
            warnings,
            [format!(
                "{}: changed after it was ingested in batch 7 (its size is 3 bytes, was 2); \
                 not ingested again: write new readings to a new file",
                d.join("01.json").display()
            )]
        );
        // Changed again, in the same run: said already.
        write_aged(d, "01.json", "[1, 2]", 40);
        assert_eq!(look(d, &mut seen).await, (vec![], vec![]));

        // Same size, new time.
        write_aged(d, "02.json", "[]", 100);
        let found = discover(d, &mut seen, Completeness::default())
            .await
            .unwrap();
        seen.record(8, &found.files);
        write_aged(d, "02.json", "[]", 30);
        let (_, warnings) = look(d, &mut seen).await;
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("batch 8 (its modification time moved)"),
            "{warnings:?}"
        );
    }

    #[tokio::test]
    async fn a_file_still_being_written_is_taken_once_it_stops_changing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("01.json");
        let append = |text: &str| {
            use std::io::Write;
            let mut file = std::fs::File::options().append(true).open(&path).unwrap();
            file.write_all(text.as_bytes()).unwrap();
        };
        // Younger than the settle time throughout: only the second look decides.
        let completeness = Completeness {
            settle: Duration::from_secs(3600),
            recheck: Duration::from_millis(50),
        };
        let mut seen = Seen::default();
        std::fs::write(&path, "[{\"mrn\": \"1\"},").unwrap();
        {
            // The first look lists the file, then waits to look again; the writer appends
            // in between.
            let mut looking = std::pin::pin!(discover(dir.path(), &mut seen, completeness));
            assert!(futures::poll!(looking.as_mut()).is_pending());
            append(" {\"mrn\": \"2\"}");
            let found = looking.await.unwrap();
            assert!(
                found.files.is_empty(),
                "taken while it grew: {:?}",
                found.files
            );
            assert!(found.warnings.is_empty(), "{:?}", found.warnings);
        }
        // Finished: the same size and time at both looks.
        append("]");
        let whole = std::fs::metadata(&path).unwrap();
        let found = discover(dir.path(), &mut seen, completeness).await.unwrap();
        assert_eq!(
            found.files,
            [SourceFile {
                name: "01.json".into(),
                size: whole.len(),
                mtime_ms: mtime_ms(&whole),
            }]
        );
    }

    #[tokio::test]
    async fn a_file_known_by_name_only_is_not_compared() {
        let dir = tempfile::tempdir().unwrap();
        write_aged(dir.path(), "01.json", "[]", 100);
        let mut seen = Seen::default();
        seen.files.insert("01.json".to_string(), None);
        assert_eq!(look(dir.path(), &mut seen).await, (vec![], vec![]));
    }
}

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
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::failpoint::{failpoint, points};
use crate::folder::Folder;
use crate::stream::checkpoint::Checkpoint;

mod entry;
#[cfg(test)]
mod tests;

use entry::{Entry, inspect};

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
    /// The object's e-tag, in an object store (a local file has none).
    #[serde(rename = "eTag", default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
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
    /// `--max-file-age`: a new file older than the newest taken minus this is not taken.
    max_age: Option<Duration>,
    /// The newest modification time of a file taken.
    latest_mtime_ms: Option<i64>,
    /// Files modified before this may have been taken and then forgotten (`--max-file-age`):
    /// never taken again.
    forgotten_before_ms: Option<i64>,
}

/// A file as a batch's plan recorded it.
#[derive(Debug, Clone)]
struct Taken {
    batch_id: i64,
    size: u64,
    mtime_ms: i64,
    e_tag: Option<String>,
}

impl Taken {
    /// Whether `now` is not the file this plan took: another size, time or e-tag.
    fn differs(&self, now: &SourceFile) -> bool {
        self.size != now.size
            || self.mtime_ms != now.mtime_ms
            || (self.e_tag.is_some() && now.e_tag.is_some() && self.e_tag != now.e_tag)
    }
}

impl Seen {
    /// Every file a checkpoint's plans took (with its size and time), and the files it
    /// recovered from the table when it was rebuilt (by name only).
    /// `max_age` is the run's `--max-file-age`.
    pub async fn from_checkpoint(
        checkpoint: &Checkpoint,
        max_age: Option<Duration>,
    ) -> Result<Self> {
        let known = checkpoint.known().await?;
        Self::from_known(checkpoint, known, max_age).await
    }

    /// As [`Seen::from_checkpoint`], with the `--max-file-age` the last plan recorded: a
    /// reader of the checkpoint (`status`, `files`) judges the folder as the stream did.
    pub async fn as_the_stream_saw(checkpoint: &Checkpoint) -> Result<Self> {
        let known = checkpoint.known().await?;
        let max_age = known.max_file_age();
        Self::from_known(checkpoint, known, max_age).await
    }

    async fn from_known(
        checkpoint: &Checkpoint,
        known: crate::stream::checkpoint::Known,
        max_age: Option<Duration>,
    ) -> Result<Self> {
        let mut seen = Self {
            max_age,
            ..Self::default()
        };
        if let Some(recovered) = checkpoint.recovered().await? {
            seen.files
                .extend(recovered.files.into_iter().map(|name| (name, None)));
        }
        seen.latest_mtime_ms = known.state.as_ref().and_then(|s| s.latest_mtime_ms);
        seen.forgotten_before_ms = known.state.as_ref().and_then(|s| s.forgotten_before_ms);
        for file in known.files() {
            seen.record(file.batch_id, std::slice::from_ref(&file.file));
        }
        Ok(seen)
    }

    /// The oldest modification time a new file may have to be taken (`--max-file-age`): the
    /// age before the newest file taken, or before now if that file is dated later (one file
    /// with a clock ahead must not make every other file too old).
    fn oldest_taken(&self) -> Option<i64> {
        let now = chrono::Utc::now().timestamp_millis();
        Some(crate::stream::state::oldest_kept(
            self.latest_mtime_ms?.min(now),
            self.max_age?,
        ))
    }

    /// Forget the files `--max-file-age` no longer needs remembered (a checkpoint compaction
    /// just left them out of its state); how many.
    pub fn forget_old(&mut self) -> usize {
        let Some(oldest) = self.oldest_taken() else {
            return 0;
        };
        let before = self.files.len();
        self.files
            .retain(|_, taken| taken.as_ref().is_none_or(|t| t.mtime_ms >= oldest));
        self.forgotten_before_ms = self.forgotten_before_ms.max(Some(oldest));
        before - self.files.len()
    }

    /// Whether a file not seen before is too old to take, and the warning that says so: older
    /// than what the checkpoint forgot (it may have been taken: never again), or than
    /// `--max-file-age` before the newest file taken (it was never taken).
    fn too_old(&self, path: &str, file: &SourceFile) -> Option<Skip> {
        if self
            .forgotten_before_ms
            .is_some_and(|before| file.mtime_ms < before)
        {
            return Some(Skip {
                key: format!("forgotten {}", file.name),
                message: format!(
                    "{path}: modified before {}, when the stream's checkpoint forgot the files \
                     it had taken (--max-file-age), so it cannot tell whether this one was \
                     ingested; not ingested. If it is new, write it under a new name",
                    crate::inspect::format::millis(self.forgotten_before_ms.unwrap_or_default())
                        .as_str()
                        .unwrap_or("?")
                ),
            });
        }
        let oldest = self.oldest_taken()?;
        (file.mtime_ms < oldest).then(|| {
            let age = humantime::format_duration(self.max_age.unwrap_or_default());
            Skip {
                key: format!("old {}", file.name),
                message: format!(
                    "{path}: modified more than --max-file-age {age} before the newest file \
                     the stream has taken, so it is not ingested (Spark's maxFileAge); it was \
                     never ingested: give it a new modification time (touch it) to have it \
                     taken, or run with a longer --max-file-age"
                ),
            }
        })
    }

    /// The files of a batch just planned.
    pub fn record(&mut self, batch_id: i64, files: &[SourceFile]) {
        for file in files {
            let taken = Taken {
                batch_id,
                size: file.size,
                mtime_ms: file.mtime_ms,
                e_tag: file.e_tag.clone(),
            };
            self.files.insert(file.name.clone(), Some(taken));
            self.latest_mtime_ms = self.latest_mtime_ms.max(Some(file.mtime_ms));
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

/// List the complete files of `source` that `seen` does not hold, oldest first (modification
/// time, then name), and what was passed over and why. A missing folder has no files. An
/// object is complete once it is listed (a put is atomic): no wait; a local file is complete
/// once it has settled ([`Completeness`]).
pub async fn discover(
    source: &Folder,
    seen: &mut Seen,
    completeness: Completeness,
) -> Result<Discovery> {
    let dir = match source {
        Folder::Local(dir) => dir.as_path(),
        Folder::Store { .. } => return discover_objects(source, seen).await,
    };
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
    sort_oldest_first(&mut files);
    Ok(Discovery {
        files,
        warnings: seen.say_once(skipped),
    })
}

/// [`discover`] in an object store: the objects directly under the prefix, with their size,
/// last-modified time and e-tag.
async fn discover_objects(source: &Folder, seen: &mut Seen) -> Result<Discovery> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for (name, meta) in source.objects().await? {
        if !is_candidate_name(&name) {
            continue;
        }
        let file = SourceFile {
            name,
            size: meta.size,
            mtime_ms: meta.last_modified.timestamp_millis(),
            e_tag: meta.e_tag,
        };
        match seen.files.get(&file.name) {
            None => match seen.too_old(&source.display_file(&file.name), &file) {
                Some(skip) => skipped.push(skip),
                None => files.push(file),
            },
            Some(None) => {}
            Some(Some(taken)) => {
                if taken.differs(&file) {
                    let path = source.path_of(&file.name);
                    skipped.push(Skip {
                        key: format!("changed {}", file.name),
                        message: changed(&path, taken, &file),
                    });
                }
            }
        }
    }
    sort_oldest_first(&mut files);
    skipped.sort_by(|a, b| a.message.cmp(&b.message));
    Ok(Discovery {
        files,
        warnings: seen.say_once(skipped),
    })
}

/// Oldest first: modification time, then name.
fn sort_oldest_first(files: &mut [SourceFile]) {
    files.sort_by(|a, b| {
        a.mtime_ms
            .cmp(&b.mtime_ms)
            .then_with(|| a.name.cmp(&b.name))
    });
}

impl Seen {
    /// The messages of `skipped` not said before in this run.
    fn say_once(&mut self, skipped: Vec<Skip>) -> Vec<String> {
        skipped
            .into_iter()
            .filter(|s| self.warned.insert(s.key.clone()))
            .map(|s| s.message)
            .collect()
    }
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
                    e_tag: None,
                };
                match seen.files.get(&file.name) {
                    None => match seen.too_old(&path.display().to_string(), &file) {
                        Some(skip) => warnings.push(skip),
                        None => files.push(file),
                    },
                    // Known by name only: nothing to compare with.
                    Some(None) => {}
                    Some(Some(taken)) => {
                        if taken.differs(&file) {
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

/// The warning for a file whose size or time is not what its batch's plan recorded.
fn changed(path: &Path, taken: &Taken, now: &SourceFile) -> String {
    let what = if taken.size != now.size {
        format!("its size is {} bytes, was {}", now.size, taken.size)
    } else if taken.mtime_ms != now.mtime_ms {
        "its modification time moved".to_string()
    } else {
        "its e-tag changed: it was rewritten".to_string()
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

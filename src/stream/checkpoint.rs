//! A stream's checkpoint folder, `<table>/_checkpoint/`, laid out as Spark lays out its own:
//!
//! - `metadata`: the stream's id (the appId of its Delta transactions) and its source: the
//!   canonical path of the folder it reads, as Spark's file source is bound to its path (file
//!   names are the stream's identity of files, so another folder would be half skipped);
//! - `offsets/<N>`: the plan of batch N, the files it takes, written before any data (the
//!   write-ahead log);
//! - `commits/<N>`: batch N is done: committed, and its progress recorded;
//! - `recovered`: files found in the table when the checkpoint had been lost;
//! - `progress.jsonl`: one progress record per batch.
//!
//! Every file appears whole or not at all (written under a temporary name, then renamed), and a
//! plan is created only if absent, so two processes cannot plan the same batch differently.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::{self, Durability};
use crate::error::{Error, Result};
use crate::failpoint::points;
use crate::source::discover::SourceFile;

/// The plan of one micro-batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub batch_id: i64,
    /// When the batch was planned, milliseconds since the epoch.
    pub timestamp: i64,
    pub files: Vec<SourceFile>,
}

/// The record that a batch is done.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Done {
    pub batch_id: i64,
    /// The bronze version holding the batch.
    pub table_version: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Metadata {
    id: String,
    /// The source folder, canonical; absent in a checkpoint made before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
}

/// How a stream's source folder compares with the one its checkpoint is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// No checkpoint yet: the stream will be bound to the folder it is given.
    New,
    /// Bound to this folder.
    Same,
    /// A checkpoint made before sources were recorded: it adopts the folder (with a warning).
    Unrecorded,
    /// Bound to another folder, named here.
    Other(PathBuf),
}

/// Files the table already held when the checkpoint was rebuilt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recovered {
    pub files: Vec<String>,
    /// The first batch id the rebuilt stream uses.
    pub next_batch_id: i64,
}

/// An open checkpoint folder.
#[derive(Debug)]
pub struct Checkpoint {
    dir: PathBuf,
    stream_id: String,
    source: Option<String>,
}

impl Checkpoint {
    /// How `source` (a canonical folder) compares with the folder the checkpoint in `dir` is
    /// bound to; reads only, creates nothing.
    pub fn binding(dir: &Path, source: &Path) -> Result<Binding> {
        let path = dir.join("metadata");
        if !path.is_file() {
            return Ok(Binding::New);
        }
        let metadata: Metadata = read_json(&path)?;
        Ok(match metadata.source {
            None => Binding::Unrecorded,
            Some(bound) if Path::new(&bound) == source => Binding::Same,
            Some(bound) => Binding::Other(PathBuf::from(bound)),
        })
    }

    /// Bind the stream to `source` (a canonical folder), recording it in `metadata` if it is not
    /// the one recorded there. The caller has checked [`Checkpoint::binding`].
    pub fn bind_source(&mut self, source: &Path) -> Result<()> {
        let text = source.to_str().ok_or_else(|| {
            Error::Usage(format!(
                "source folder {} cannot be recorded: its path is not valid UTF-8",
                source.display()
            ))
        })?;
        if self.source.as_deref() == Some(text) {
            return Ok(());
        }
        let metadata = Metadata {
            id: self.stream_id.clone(),
            source: Some(text.to_string()),
        };
        atomic::write_atomically(&self.dir.join("metadata"), &to_json(&metadata))?;
        self.source = metadata.source;
        Ok(())
    }

    /// Open the checkpoint in `dir` to read it, creating and repairing nothing; `None` if
    /// there is none.
    pub fn open(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join("metadata");
        if !path.is_file() {
            return Ok(None);
        }
        let metadata: Metadata = read_json(&path)?;
        Ok(Some(Self {
            dir: dir.to_path_buf(),
            stream_id: metadata.id,
            source: metadata.source,
        }))
    }

    /// The source folder the stream is bound to, if recorded.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref().map(Path::new)
    }

    /// Open the checkpoint in `dir`, creating it (with a new stream id) if there is none. Two
    /// processes creating it at once agree on one id.
    pub fn open_or_create(dir: &Path) -> Result<Self> {
        for sub in ["offsets", "commits"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(Error::io("create", path))?;
        }
        let path = dir.join("metadata");
        if !path.is_file() {
            let metadata = Metadata {
                id: uuid::Uuid::new_v4().to_string(),
                source: None,
            };
            atomic::create_new(&path, &to_json(&metadata), Durability::PowerCut, None)?;
        }
        let metadata: Metadata = read_json(&path)?;
        repair_progress(&dir.join("progress.jsonl"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            stream_id: metadata.id,
            source: metadata.source,
        })
    }

    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The ids of every planned batch, ascending.
    pub fn planned(&self) -> Result<Vec<i64>> {
        batch_ids(&self.dir.join("offsets"))
    }

    pub fn plan(&self, batch_id: i64) -> Result<Plan> {
        read_json(&self.offset_path(batch_id))
    }

    /// Write the plan of a batch, if no plan of that batch exists. Another process that planned
    /// it first wins, and this one gets [`Error::Conflict`].
    pub fn write_plan(&self, plan: &Plan) -> Result<()> {
        let path = self.offset_path(plan.batch_id);
        if atomic::create_new(
            &path,
            &to_json(plan),
            // A plan lost to a power cut while its commit survived would let another plan take
            // its batch id: plans are synced.
            Durability::PowerCut,
            Some(points::PLAN_BEFORE_RENAME),
        )? {
            Ok(())
        } else {
            Err(Error::Conflict {
                table: self.dir.display().to_string(),
                message: format!(
                    "batch {} was planned by another process (a second stream on this \
                     checkpoint?): nothing of this run was committed for it; once the other \
                     stream stops, run bronze again to go on from there",
                    plan.batch_id
                ),
            })
        }
    }

    pub fn is_done(&self, batch_id: i64) -> bool {
        self.commit_path(batch_id).is_file()
    }

    pub fn mark_done(&self, done: &Done) -> Result<()> {
        let path = self.commit_path(done.batch_id);
        // A lost done marker costs only a look at the table's transaction on the next start.
        atomic::create_new(&path, &to_json(done), Durability::Crash, None)?;
        Ok(())
    }

    /// Every file the stream has taken: in any plan, or recovered from the table.
    #[cfg(test)]
    fn seen_files(&self) -> Result<std::collections::HashSet<String>> {
        let mut seen = std::collections::HashSet::new();
        for batch_id in self.planned()? {
            seen.extend(self.plan(batch_id)?.files.into_iter().map(|f| f.name));
        }
        if let Some(recovered) = self.recovered()? {
            seen.extend(recovered.files);
        }
        Ok(seen)
    }

    pub fn recovered(&self) -> Result<Option<Recovered>> {
        let path = self.dir.join("recovered");
        if path.is_file() {
            read_json(&path).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn write_recovered(&self, recovered: &Recovered) -> Result<()> {
        atomic::create_new(
            &self.dir.join("recovered"),
            &to_json(recovered),
            Durability::PowerCut,
            None,
        )?;
        Ok(())
    }

    /// Append one progress record (one JSON line) to `progress.jsonl`.
    pub fn append_progress(&self, record: &impl Serialize) -> Result<()> {
        let path = self.dir.join("progress.jsonl");
        let mut line = serde_json::to_string(record).expect("progress serialises");
        line.push('\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(Error::io("append to", path))
    }

    fn offset_path(&self, batch_id: i64) -> PathBuf {
        self.dir.join("offsets").join(batch_id.to_string())
    }

    fn commit_path(&self, batch_id: i64) -> PathBuf {
        self.dir.join("commits").join(batch_id.to_string())
    }
}

/// A run killed while appending a progress record leaves half a line: cut it, so every line of
/// `progress.jsonl` stays one whole JSON record.
fn repair_progress(path: &Path) -> Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", path)(e)),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(keep as u64))
        .map_err(Error::io("repair", path))
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(value).expect("checkpoint records serialise");
    text.push(b'\n');
    text
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(Error::io("read", path))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        message: format!("line {}: {e}", e.line()),
    })
}

/// The numeric file names of a folder, ascending; other names (temporary files) are ignored.
fn batch_ids(dir: &Path) -> Result<Vec<i64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_created_once_and_the_id_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::open_or_create(dir.path()).unwrap();
        let id = cp.stream_id().to_string();
        let plan = Plan {
            batch_id: 0,
            timestamp: 1,
            files: vec![SourceFile {
                name: "01.json".into(),
                size: 3,
                mtime_ms: 5,
            }],
        };
        cp.write_plan(&plan).unwrap();
        assert!(matches!(cp.write_plan(&plan), Err(Error::Conflict { .. })));
        assert_eq!(cp.plan(0).unwrap(), plan);
        assert!(!cp.is_done(0));
        cp.mark_done(&Done {
            batch_id: 0,
            table_version: 1,
        })
        .unwrap();
        assert!(cp.is_done(0));

        let again = Checkpoint::open_or_create(dir.path()).unwrap();
        assert_eq!(again.stream_id(), id);
        assert_eq!(again.planned().unwrap(), vec![0]);
        assert_eq!(
            again.seen_files().unwrap(),
            std::collections::HashSet::from(["01.json".to_string()])
        );
    }
}

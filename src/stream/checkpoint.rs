//! A stream's checkpoint folder, `<table>/_checkpoint/`, laid out as Spark lays out its own:
//!
//! - `metadata`: the stream's id (the appId of its Delta transactions) and its source: the
//!   canonical path of the folder it reads, as Spark's file source is bound to its path (file
//!   names are the stream's identity of files, so another folder would be half skipped);
//! - `offsets/<N>`: the plan of batch N, the files it takes, written before any data (the
//!   write-ahead log);
//! - `commits/<N>`: batch N is done: committed, and its progress recorded;
//! - `_cleaned/<N>`: what `--clean-source` did with batch N's files, once done;
//! - `_state/<N>`: every file the batches up to N took, after which the older plans and markers
//!   are deleted ([`crate::stream::state`]: the folder stays small however long it runs);
//! - `recovered`: files found in the table when the checkpoint had been lost;
//! - `progress.jsonl`: one progress record per batch (the newest
//!   [`PROGRESS_KEPT`](crate::stream::state::PROGRESS_KEPT)).
//!
//! The folder is local or in an object store ([`Folder`]). Every file appears whole or not at
//! all (locally: written under a temporary name, then renamed; in a store every put is atomic),
//! and a plan is created only if absent (a hard link; a conditional put), so two processes
//! cannot plan the same batch differently.

use serde::{Deserialize, Serialize};

use crate::atomic::Durability;
use crate::error::{Error, Result};
use crate::failpoint::points;
use crate::folder::Folder;
use crate::source::discover::SourceFile;
use crate::stream::state::{self, CleanedFile, FileState, PROGRESS_KEPT, State};

/// The folders of a checkpoint that are not a named source's (source names start with a letter
/// or digit, so `_state` and `_cleaned` cannot be one).
const OWN_FOLDERS: [&str; 4] = ["offsets", "commits", "_state", "_cleaned"];

/// The plan of one micro-batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub batch_id: i64,
    /// When the batch was planned, milliseconds since the epoch.
    pub timestamp: i64,
    pub files: Vec<SourceFile>,
    /// What to do with the files once the batch is done (`--clean-source`: `delete` or
    /// `archive=URL`), as the run that planned it promised; absent: leave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_source: Option<String>,
    /// `--max-file-age` of the run that planned it, milliseconds (so `files` and `status`
    /// judge the folder as the stream does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_age_ms: Option<u64>,
}

/// What clean-up did with a done batch's files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cleaned {
    pub batch_id: i64,
    pub files: Vec<CleanedFile>,
}

/// Every file the checkpoint knows: the latest state, and the batches planned after it.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub state: Option<State>,
    /// Batches after the state, ascending: the plan, its done marker, its clean-up.
    pub batches: Vec<(Plan, Option<Done>, Option<Cleaned>)>,
}

impl Known {
    /// `--max-file-age` of the last batch planned.
    pub fn max_file_age(&self) -> Option<std::time::Duration> {
        let (plan, _, _) = self.batches.last()?;
        plan.max_file_age_ms.map(std::time::Duration::from_millis)
    }

    /// One entry per file (a later plan of a name replaces an earlier), by batch.
    pub fn files(&self) -> Vec<FileState> {
        let newer = self.newer_files();
        let mut files: Vec<FileState> = self
            .state
            .as_ref()
            .map(|s| s.files.clone())
            .unwrap_or_default();
        files.retain(|f| !newer.iter().any(|n| n.file.name == f.file.name));
        files.extend(newer);
        files.sort_by_key(|f| f.batch_id);
        files
    }

    /// The files of the batches after the state.
    fn newer_files(&self) -> Vec<FileState> {
        let mut files = Vec::new();
        for (plan, done, cleaned) in &self.batches {
            for file in &plan.files {
                files.push(FileState {
                    file: file.clone(),
                    batch_id: plan.batch_id,
                    planned_at: plan.timestamp,
                    table_version: done.as_ref().map(|d| d.table_version),
                    cleaned: cleaned
                        .as_ref()
                        .and_then(|c| c.files.iter().find(|f| f.name == file.name).cloned()),
                });
            }
        }
        files
    }
}

/// What a compaction of the checkpoint did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    pub files_in_state: usize,
    pub batches_removed: usize,
    pub forgotten: u64,
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
    /// The source folder (canonical path, or URL); absent in a checkpoint made before it was
    /// recorded.
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
    Other(String),
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
    dir: Folder,
    stream_id: String,
    source: Option<String>,
}

impl Checkpoint {
    /// How `source` (a canonical folder or a URL) compares with the folder the checkpoint in
    /// `dir` is bound to; reads only, creates nothing.
    pub async fn binding(dir: &Folder, source: &str) -> Result<Binding> {
        let Some(metadata) = read_metadata(dir).await? else {
            return Ok(Binding::New);
        };
        Ok(match metadata.source {
            None => Binding::Unrecorded,
            Some(bound) if bound == source => Binding::Same,
            Some(bound) => Binding::Other(bound),
        })
    }

    /// Bind the stream to `source` (a canonical folder or a URL), recording it in `metadata` if
    /// it is not the one recorded there. The caller has checked [`Checkpoint::binding`].
    pub async fn bind_source(&mut self, source: &str) -> Result<()> {
        if self.source.as_deref() == Some(source) {
            return Ok(());
        }
        let metadata = Metadata {
            id: self.stream_id.clone(),
            source: Some(source.to_string()),
        };
        self.dir.replace("metadata", &to_json(&metadata)).await?;
        self.source = metadata.source;
        Ok(())
    }

    /// Open the checkpoint in `dir` to read it, creating and repairing nothing; `None` if
    /// there is none.
    pub async fn open(dir: &Folder) -> Result<Option<Self>> {
        Ok(read_metadata(dir).await?.map(|metadata| Self {
            dir: dir.clone(),
            stream_id: metadata.id,
            source: metadata.source,
        }))
    }

    /// The source folder the stream is bound to, if recorded.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// Open the checkpoint in `dir`, creating it (with a new stream id, bound to `source`) if
    /// there is none. Two processes creating it at once agree on one id. A new checkpoint's
    /// metadata names its source from the start: one without is a checkpoint of an earlier
    /// medallion, never one a concurrent run is creating.
    pub async fn open_or_create(dir: &Folder, source: Option<&str>) -> Result<Self> {
        if let Folder::Local(path) = dir {
            for sub in OWN_FOLDERS {
                let path = path.join(sub);
                std::fs::create_dir_all(&path).map_err(Error::io("create", path))?;
            }
        }
        let metadata = match read_metadata(dir).await? {
            Some(metadata) => metadata,
            None => {
                let metadata = Metadata {
                    id: uuid::Uuid::new_v4().to_string(),
                    source: source.map(str::to_string),
                };
                dir.create_new("metadata", &to_json(&metadata), Durability::PowerCut, None)
                    .await?;
                // Of two processes creating it at once, the one that lost reads the winner's.
                read_metadata(dir).await?.ok_or_else(|| Error::Checkpoint {
                    path: dir.path_of("metadata"),
                    message: "it was created and is gone".into(),
                })?
            }
        };
        repair_progress(dir).await?;
        Ok(Self {
            dir: dir.clone(),
            stream_id: metadata.id,
            source: metadata.source,
        })
    }

    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    pub fn dir(&self) -> &Folder {
        &self.dir
    }

    /// The ids of every planned batch, ascending.
    pub async fn planned(&self) -> Result<Vec<i64>> {
        batch_ids(&self.dir.join("offsets")).await
    }

    pub async fn plan(&self, batch_id: i64) -> Result<Plan> {
        let offsets = self.dir.join("offsets");
        read_json(&offsets, &batch_id.to_string()).await
    }

    /// Write the plan of a batch, if no plan of that batch exists. Another process that planned
    /// it first wins, and this one gets [`Error::Conflict`].
    pub async fn write_plan(&self, plan: &Plan) -> Result<()> {
        let created = self
            .dir
            .join("offsets")
            .create_new(
                &plan.batch_id.to_string(),
                &to_json(plan),
                // A plan lost to a power cut while its commit survived would let another plan
                // take its batch id: plans are synced.
                Durability::PowerCut,
                Some(points::PLAN_BEFORE_RENAME),
            )
            .await?;
        if created {
            Ok(())
        } else {
            Err(Error::Conflict {
                table: self.dir.display(),
                message: format!(
                    "batch {} was planned by another process (a second stream on this \
                     checkpoint?): nothing of this run was committed for it; once the other \
                     stream stops, run bronze again to go on from there",
                    plan.batch_id
                ),
            })
        }
    }

    pub async fn is_done(&self, batch_id: i64) -> Result<bool> {
        self.dir.join("commits").exists(&batch_id.to_string()).await
    }

    pub async fn mark_done(&self, done: &Done) -> Result<()> {
        // A lost done marker costs only a look at the table's transaction on the next start.
        self.mark("commits", done.batch_id, done).await
    }

    /// Batch N's done marker, if it is done.
    pub async fn done(&self, batch_id: i64) -> Result<Option<Done>> {
        read_json_if_any(&self.dir.join("commits"), &batch_id.to_string()).await
    }

    /// What clean-up did with batch N's files, if it ran.
    pub async fn cleaned(&self, batch_id: i64) -> Result<Option<Cleaned>> {
        read_json_if_any(&self.dir.join("_cleaned"), &batch_id.to_string()).await
    }

    pub async fn mark_cleaned(&self, cleaned: &Cleaned) -> Result<()> {
        // Lost in a crash, clean-up runs again: a file already moved is found moved.
        self.mark("_cleaned", cleaned.batch_id, cleaned).await
    }

    /// Write the marker `<folder>/<batch_id>` (once: a marker there already stays).
    async fn mark(&self, folder: &str, batch_id: i64, record: &impl Serialize) -> Result<()> {
        self.dir
            .join(folder)
            .create_new(
                &batch_id.to_string(),
                &to_json(record),
                Durability::Crash,
                None,
            )
            .await?;
        Ok(())
    }

    /// The latest state file, if any.
    pub async fn state(&self) -> Result<Option<State>> {
        let folder = self.dir.join("_state");
        let Some(last) = batch_ids(&folder).await?.last().copied() else {
            return Ok(None);
        };
        read_json(&folder, &last.to_string()).await.map(Some)
    }

    /// Every file the checkpoint knows: the latest state and the batches planned after it.
    /// A compaction by another process may delete a plan between the listing and its read:
    /// then it reads again, from the newer state.
    pub async fn known(&self) -> Result<Known> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.known_once().await {
                Err(Error::Checkpoint { .. }) if attempt < 3 => continue,
                other => return other,
            }
        }
    }

    async fn known_once(&self) -> Result<Known> {
        let state = self.state().await?;
        let covered = state.as_ref().map_or(i64::MIN, |s| s.batch_id);
        let mut batches = Vec::new();
        for batch_id in self.planned().await? {
            if batch_id <= covered {
                continue;
            }
            let plan = self.plan(batch_id).await?;
            let done = self.done(batch_id).await?;
            let cleaned = self.cleaned(batch_id).await?;
            batches.push((plan, done, cleaned));
        }
        Ok(Known { state, batches })
    }

    /// Fold the batches up to `up_to` (done, and cleaned where asked) into a state file, then
    /// delete the plans and markers [`state::plan`] says go, older state files, and progress
    /// records past the newest [`PROGRESS_KEPT`]. `None` if a state covers `up_to` already.
    pub async fn compact(
        &self,
        up_to: i64,
        max_age: Option<std::time::Duration>,
    ) -> Result<Option<Compacted>> {
        let known = self.known().await?;
        let state_dir = self.dir.join("_state");
        let states = batch_ids(&state_dir).await?;
        let planned = self.planned().await?;
        let Some(compaction) = state::plan(
            known.state.as_ref(),
            &known.newer_files(),
            up_to,
            (&planned, &states),
            max_age,
            chrono::Utc::now().timestamp_millis(),
        ) else {
            return Ok(None);
        };
        // The state first: once it is in place, every plan it covers may go.
        state_dir
            .create_new(
                &up_to.to_string(),
                &to_json(&compaction.state),
                Durability::PowerCut,
                None,
            )
            .await?;
        for batch_id in &compaction.delete_batches {
            let name = batch_id.to_string();
            // Markers before the plan: a plan without its done marker is a batch to finish,
            // and it is finished by its transaction in the table (marked done again).
            self.dir.join("_cleaned").delete(&name).await?;
            self.dir.join("commits").delete(&name).await?;
            self.dir.join("offsets").delete(&name).await?;
        }
        for old in &compaction.delete_states {
            state_dir.delete(&old.to_string()).await?;
        }
        self.trim_progress().await?;
        Ok(Some(Compacted {
            files_in_state: compaction.state.files.len(),
            batches_removed: compaction.delete_batches.len(),
            forgotten: compaction.state.forgotten,
        }))
    }

    /// Keep the newest [`PROGRESS_KEPT`] lines of `progress.jsonl`.
    async fn trim_progress(&self) -> Result<()> {
        let Some(bytes) = self.dir.read("progress.jsonl").await? else {
            return Ok(());
        };
        let lines = bytes.iter().filter(|b| **b == b'\n').count();
        if lines <= PROGRESS_KEPT {
            return Ok(());
        }
        let mut skip = lines - PROGRESS_KEPT;
        let start = bytes
            .iter()
            .position(|b| {
                if *b == b'\n' {
                    skip -= 1;
                }
                skip == 0
            })
            .map_or(0, |i| i + 1);
        self.dir.replace("progress.jsonl", &bytes[start..]).await
    }

    /// Every file the stream has taken: in any plan, or recovered from the table.
    #[cfg(test)]
    async fn seen_files(&self) -> Result<std::collections::HashSet<String>> {
        let mut seen = std::collections::HashSet::new();
        seen.extend(self.known().await?.files().into_iter().map(|f| f.file.name));
        if let Some(recovered) = self.recovered().await? {
            seen.extend(recovered.files);
        }
        Ok(seen)
    }

    pub async fn recovered(&self) -> Result<Option<Recovered>> {
        if self.dir.exists("recovered").await? {
            read_json(&self.dir, "recovered").await.map(Some)
        } else {
            Ok(None)
        }
    }

    pub async fn write_recovered(&self, recovered: &Recovered) -> Result<()> {
        self.dir
            .create_new("recovered", &to_json(recovered), Durability::PowerCut, None)
            .await?;
        Ok(())
    }

    /// The lines of `progress.jsonl`, oldest first, each with its (1-based) number and its
    /// record, or why it is not JSON. A last line without its newline is a record being
    /// written (by a running stream) and is left out; blank lines too.
    pub async fn progress_records(
        &self,
    ) -> Result<Vec<(u64, std::result::Result<serde_json::Value, String>)>> {
        let Some(bytes) = self.dir.read("progress.jsonl").await? else {
            return Ok(Vec::new());
        };
        let complete = match bytes.iter().rposition(|b| *b == b'\n') {
            Some(end) => &bytes[..end],
            None => return Ok(Vec::new()),
        };
        Ok(complete
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .map(|(number, line)| {
                let parsed = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"));
                (number as u64 + 1, parsed)
            })
            .collect())
    }

    /// Where the progress records are, for messages.
    pub fn progress_path(&self) -> String {
        self.dir.display_file("progress.jsonl")
    }

    /// Append one progress record (one JSON line) to `progress.jsonl`.
    pub async fn append_progress(&self, record: &impl Serialize) -> Result<()> {
        let mut line = serde_json::to_vec(record).expect("progress serialises");
        line.push(b'\n');
        self.dir.append("progress.jsonl", &line).await
    }
}

/// Every source's checkpoint of a table whose default checkpoint folder is `default` (named
/// `default_name`): that one, and each named source's in `<default>/<name>/`, with the source's
/// name. Checkpoints that cannot be read are left out.
pub async fn all(default: &Folder, default_name: &str) -> Result<Vec<(String, Checkpoint)>> {
    let mut found = Vec::new();
    if let Some(checkpoint) = Checkpoint::open(default).await? {
        found.push((default_name.to_string(), checkpoint));
    }
    for name in default.subfolders().await? {
        if OWN_FOLDERS.contains(&name.as_str()) {
            continue;
        }
        if let Ok(Some(checkpoint)) = Checkpoint::open(&default.join(&name)).await {
            found.push((name, checkpoint));
        }
    }
    Ok(found)
}

async fn read_metadata(dir: &Folder) -> Result<Option<Metadata>> {
    if !dir.exists("metadata").await? {
        return Ok(None);
    }
    read_json(dir, "metadata").await.map(Some)
}

/// A run killed while appending a progress record leaves half a line: cut it, so every line of
/// `progress.jsonl` stays one whole JSON record. (In an object store a record is never half
/// written: every put is whole.)
async fn repair_progress(dir: &Folder) -> Result<()> {
    let Folder::Local(dir) = dir else {
        return Ok(());
    };
    let path = dir.join("progress.jsonl");
    let bytes = match std::fs::read(&path) {
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
        .open(&path)
        .and_then(|f| f.set_len(keep as u64))
        .map_err(Error::io("repair", path))
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(value).expect("checkpoint records serialise");
    text.push(b'\n');
    text
}

async fn read_json<T: for<'de> Deserialize<'de>>(dir: &Folder, name: &str) -> Result<T> {
    read_json_if_any(dir, name)
        .await?
        .ok_or_else(|| Error::Checkpoint {
            path: dir.path_of(name),
            message: "the file is gone (was the checkpoint changed by hand?)".into(),
        })
}

/// The record in `name`, `None` if there is no such file.
async fn read_json_if_any<T: for<'de> Deserialize<'de>>(
    dir: &Folder,
    name: &str,
) -> Result<Option<T>> {
    let Some(bytes) = dir.read(name).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Checkpoint {
            path: dir.path_of(name),
            message: format!("line {}: {e}", e.line()),
        })
}

/// The numeric file names of a folder, ascending; other names (temporary files) are ignored.
async fn batch_ids(dir: &Folder) -> Result<Vec<i64>> {
    let mut ids: Vec<i64> = dir
        .names()
        .await?
        .iter()
        .filter_map(|n| n.parse::<i64>().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plans_are_created_once_and_the_id_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Folder::Local(tmp.path().to_path_buf());
        let cp = Checkpoint::open_or_create(&dir, None).await.unwrap();
        let id = cp.stream_id().to_string();
        let plan = Plan {
            batch_id: 0,
            timestamp: 1,
            files: vec![SourceFile {
                name: "01.json".into(),
                size: 3,
                mtime_ms: 5,
                e_tag: None,
            }],
            clean_source: None,
            max_file_age_ms: None,
        };
        cp.write_plan(&plan).await.unwrap();
        assert!(matches!(
            cp.write_plan(&plan).await,
            Err(Error::Conflict { .. })
        ));
        assert_eq!(cp.plan(0).await.unwrap(), plan);
        assert!(!cp.is_done(0).await.unwrap());
        cp.mark_done(&Done {
            batch_id: 0,
            table_version: 1,
        })
        .await
        .unwrap();
        assert!(cp.is_done(0).await.unwrap());

        let again = Checkpoint::open_or_create(&dir, None).await.unwrap();
        assert_eq!(again.stream_id(), id);
        assert_eq!(again.planned().await.unwrap(), vec![0]);
        assert_eq!(
            again.seen_files().await.unwrap(),
            std::collections::HashSet::from(["01.json".to_string()])
        );
    }

    #[tokio::test]
    async fn in_an_object_store_two_writers_of_one_plan_get_one_win() {
        use deltalake::logstore::object_store::memory::InMemory;
        let dir = Folder::Store {
            store: std::sync::Arc::new(InMemory::new()),
            prefix: deltalake::Path::from("t/_checkpoint"),
            url: url::Url::parse("s3://lake/t/_checkpoint/").unwrap(),
        };
        let (a, b) = tokio::join!(
            Checkpoint::open_or_create(&dir, None),
            Checkpoint::open_or_create(&dir, None)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.stream_id(), b.stream_id(), "one stream id");
        let plan = |name: &str| Plan {
            batch_id: 0,
            timestamp: 1,
            files: vec![SourceFile {
                name: name.into(),
                size: 3,
                mtime_ms: 5,
                e_tag: Some("\"e\"".into()),
            }],
            clean_source: None,
            max_file_age_ms: None,
        };
        let (plan_a, plan_b) = (plan("a.json"), plan("b.json"));
        let (first, second) = tokio::join!(a.write_plan(&plan_a), b.write_plan(&plan_b));
        assert_eq!(
            [first.is_ok(), second.is_ok()]
                .iter()
                .filter(|ok| **ok)
                .count(),
            1,
            "{first:?} {second:?}"
        );
        let kept = a.plan(0).await.unwrap();
        assert!(kept == plan("a.json") || kept == plan("b.json"));
        assert_eq!(a.planned().await.unwrap(), vec![0]);
        a.append_progress(&serde_json::json!({"batchId": 0}))
            .await
            .unwrap();
        a.append_progress(&serde_json::json!({"batchId": 1}))
            .await
            .unwrap();
        let progress = dir.read("progress.jsonl").await.unwrap().unwrap();
        assert_eq!(String::from_utf8(progress).unwrap().lines().count(), 2);
    }
}

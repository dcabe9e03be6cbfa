//! The bronze stream's commit path: one Delta commit per micro-batch, whose cost does not grow
//! with the table.
//!
//! `deltalake`'s own commit (`table.write`, `CommitBuilder`) rebuilds the snapshot's whole file
//! list after every commit, so a stream of one-file batches gets slower with every file
//! (shared/FACTS.md). A blind append needs none of that: it needs the next version number, the
//! version of its own application transaction (for exactly-once), and to know whether anyone
//! else committed meanwhile. [`AppendLog`] keeps exactly that, builds the commit with
//! `deltalake`'s own types (`CommitData`, `Action`, `Transaction`), and writes it with the log
//! store's put-if-absent, so the commit file appears whole or not at all. A checkpoint is
//! written every [`CHECKPOINT_INTERVAL`] versions so readers stay fast.

use std::collections::HashMap;

use deltalake::DeltaTable;
use deltalake::kernel::transaction::{CommitData, TransactionError};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::logstore::{CommitOrBytes, LogStoreRef};
use deltalake::protocol::{DeltaOperation, OutputMode};
use serde_json::Value;

use super::TableId;
use crate::error::{Error, Result};
use crate::failpoint::{failpoint, points};

/// Versions between two checkpoints, Delta's default.
pub const CHECKPOINT_INTERVAL: u64 = 100;

/// The append-only log of one table, as one application (a stream) writes it.
pub struct AppendLog {
    id: TableId,
    log_store: LogStoreRef,
    /// The latest version this writer knows of.
    version: u64,
    app_id: String,
    /// The last batch id the application committed, as of `version`.
    app_version: Option<i64>,
    /// The highest batch id of any application in the table as far as this writer has seen
    /// (the rows' `_batch_id` statistics when opened, then every commit it reads or makes).
    batch_max: Option<i64>,
    /// Problems that did not stop a commit (a checkpoint that could not be written).
    warnings: Vec<String>,
    /// The Delta checkpoint being written in the background, if any.
    checkpointing: Option<tokio::task::JoinHandle<Result<usize>>>,
}

/// One commit's content.
pub struct AppendCommit {
    pub adds: Vec<Add>,
    /// The batch id, recorded as the application transaction's version.
    pub batch_id: i64,
    /// Rows in the added files.
    pub rows: usize,
    /// Keys added to `commitInfo` (lineage any Delta reader can see).
    pub info: HashMap<String, Value>,
}

impl AppendLog {
    /// Start from a loaded table.
    pub async fn open(id: TableId, table: &DeltaTable, app_id: &str) -> Result<Self> {
        let snapshot = table.snapshot().map_err(id.err("load"))?;
        let app_version = snapshot
            .transaction_version(table.log_store().as_ref(), app_id)
            .await
            .map_err(id.err("read application transactions"))?;
        let batch_max = snapshot
            .log_data()
            .iter()
            .filter_map(|file| max_batch_id(&file.stats()?))
            .max()
            .max(app_version);
        Ok(Self {
            version: snapshot.version(),
            log_store: table.log_store(),
            app_id: app_id.to_string(),
            app_version,
            batch_max,
            id,
            warnings: Vec::new(),
            checkpointing: None,
        })
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The store the table's files are in.
    pub fn object_store(&self) -> std::sync::Arc<dyn deltalake::ObjectStore> {
        self.log_store.object_store(None)
    }

    /// The last batch id committed by this application.
    pub fn app_version(&self) -> Option<i64> {
        self.app_version
    }

    /// The highest batch id in the table, of any application, as far as this writer has seen:
    /// a stream numbers its next batch above it, so that batch ids order the deliveries of
    /// several sources into one table as their commits do.
    pub fn batch_max(&self) -> Option<i64> {
        self.batch_max
    }

    /// Commit one batch: its files, its transaction, its lineage. Refuses a batch id the
    /// application already committed, and loses (with [`Error::Conflict`]) to another writer
    /// of the same application, so a batch is never in the table twice.
    pub async fn commit(&mut self, commit: AppendCommit) -> Result<u64> {
        let AppendCommit {
            adds,
            batch_id,
            rows,
            mut info,
        } = commit;
        let bytes: i64 = adds.iter().map(|a| a.size).sum();
        info.insert(
            "operationMetrics".into(),
            serde_json::json!({
                "numAddedFiles": adds.len().to_string(),
                "numOutputRows": rows.to_string(),
                "numOutputBytes": bytes.to_string(),
            }),
        );
        info.insert("isBlindAppend".into(), Value::Bool(true));
        let actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
        let operation = DeltaOperation::StreamingUpdate {
            output_mode: OutputMode::Append,
            query_id: self.app_id.clone(),
            epoch_id: batch_id,
        };
        let known = self.version;
        loop {
            self.refuse_committed(batch_id)?;
            info.insert("readVersion".into(), Value::from(self.version));
            let data = CommitData::new(
                actions.clone(),
                operation.clone(),
                info.clone(),
                vec![Transaction::new(&self.app_id, batch_id)],
            );
            let bytes = data.get_bytes().map_err(|e| self.tx_err(e))?;
            let version = self.version + 1;
            failpoint(points::APPEND_BEFORE_WRITE);
            match self
                .log_store
                .write_commit_entry(
                    version,
                    CommitOrBytes::LogBytes(bytes),
                    uuid::Uuid::new_v4(),
                )
                .await
            {
                Ok(()) => {
                    self.version = version;
                    self.app_version = Some(batch_id);
                    self.batch_max = self.batch_max.max(Some(batch_id));
                    // Every time the log crosses a multiple of the interval (others' commits
                    // may have taken us past one), in the background: the stream goes on
                    // committing meanwhile. A checkpoint only speeds up readers: if it cannot
                    // be written, the commit still stands.
                    if version / CHECKPOINT_INTERVAL > known / CHECKPOINT_INTERVAL {
                        self.finish().await;
                        let id = self.id.clone();
                        self.checkpointing = Some(tokio::spawn(checkpoint(id, version)));
                    }
                    return Ok(version);
                }
                // Someone else committed this version: read what they did, then try the next.
                Err(TransactionError::VersionAlreadyExists(_)) => self.catch_up().await?,
                Err(e) => return Err(self.tx_err(e)),
            }
        }
    }

    /// Wait for the checkpoint being written, if any (its failure becomes a warning).
    pub async fn finish(&mut self) {
        if let Some(task) = self.checkpointing.take() {
            match task.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => self.warnings.push(e.chain()),
                Err(e) => self.warnings.push(format!(
                    "table {}: writing a checkpoint failed: {e}",
                    self.id.name
                )),
            }
        }
    }

    /// Problems since the last call that did not stop a commit.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn refuse_committed(&self, batch_id: i64) -> Result<()> {
        match self.app_version {
            Some(done) if done >= batch_id => Err(Error::Conflict {
                table: self.id.name.clone(),
                message: format!(
                    "stream {} already committed batch {done} (as of version {}), refusing to \
                     commit batch {batch_id} again",
                    self.app_id, self.version
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Read the commits made by others since `version`. Blind appends of other writers are
    /// fine; a commit of this application, or a change of schema or protocol, is a conflict.
    /// The next versions are read one by one until one is not there, not found by a listing
    /// of `_delta_log`: a listing taken while others commit can miss a file the directory
    /// gains meanwhile and see a gap, and commits are put whole, one after the other.
    async fn catch_up(&mut self) -> Result<()> {
        let from = self.version;
        loop {
            let version = self.version + 1;
            let Some(commit) =
                super::log::read_commit(&self.id, self.log_store.as_ref(), version).await?
            else {
                // The version this commit found taken is not there to read: never loop on it.
                if self.version == from {
                    return Err(self.id.lost_race());
                }
                return Ok(());
            };
            self.batch_max = self
                .batch_max
                .max(commit.txns.iter().map(|t| t.version).max());
            let ours = commit.txns.iter().find(|txn| txn.app_id == self.app_id);
            let conflict = if let Some(txn) = ours {
                self.app_version = Some(txn.version);
                Some(format!(
                    "another `bronze` of stream {} committed its batch {} as version {version} \
                     first (a second `bronze` on the same checkpoint?), so nothing of this \
                     batch was committed; run it again to go on from there",
                    self.app_id, txn.version
                ))
            } else if commit.changes_table {
                Some(format!(
                    "version {version} changed the table's schema or protocol while the stream \
                     was writing, so nothing of this batch was committed; run it again to go on \
                     from there"
                ))
            } else {
                None
            };
            if let Some(message) = conflict {
                // Not past it: a later batch of this writer was planned without that commit.
                return Err(Error::Conflict {
                    table: self.id.name.clone(),
                    message,
                });
            }
            self.version = version;
        }
    }

    fn tx_err(&self, e: TransactionError) -> Error {
        self.id.err("commit")(e.into())
    }
}

/// The highest `_batch_id` of a data file, from its statistics (`maxValues`).
fn max_batch_id(stats: &str) -> Option<i64> {
    let stats: Value = serde_json::from_str(stats).ok()?;
    stats.get("maxValues")?.get("_batch_id")?.as_i64()
}

/// Write a Delta checkpoint of `version`, then delete the commit files older than the table's
/// `delta.logRetentionDuration` (30 days unless set) that the checkpoint makes unneeded, unless
/// `delta.enableExpiredLogCleanup` is false (as Delta does after a checkpoint). Returns how
/// many log files went.
pub async fn checkpoint(id: TableId, version: u64) -> Result<usize> {
    // Opened through the table's own store (its storage options, durable local writes).
    let table = super::open_version(&id, version).await?;
    deltalake::checkpoints::create_checkpoint(&table, None)
        .await
        .map_err(id.err("write a checkpoint"))?;
    use deltalake::table::config::TablePropertiesExt;
    let cleanup = table
        .snapshot()
        .map_err(id.err("read"))?
        .table_config()
        .enable_expired_log_cleanup();
    if !cleanup {
        return Ok(0);
    }
    deltalake::checkpoints::cleanup_metadata(&table, None)
        .await
        .map_err(id.err("clean up expired log files"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

    use super::*;
    use crate::catalog::Table;
    use crate::warehouse::Warehouse;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]))
    }

    const T: Table = Table {
        name: "t",
        writer: "test",
        description: "test",
        key: &[],
        properties: &[],
        plain_columns: &[],
        schema,
    };

    /// A new, empty table (version 0) in a temporary warehouse.
    async fn new_table() -> (tempfile::TempDir, TableId) {
        let dir = tempfile::tempdir().unwrap();
        let id = TableId::of(&Warehouse::local(dir.path()).unwrap(), &T);
        crate::delta::create(&id, &T, &[]).await.unwrap();
        (dir, id)
    }

    /// A writer of `app`, from the table's latest version.
    async fn writer(id: &TableId, app: &str) -> AppendLog {
        let table = crate::delta::open(id).await.unwrap().unwrap();
        AppendLog::open(id.clone(), &table, app).await.unwrap()
    }

    /// Batch `batch_id`, adding one (made-up) file: the log never reads it.
    fn batch(batch_id: i64, file: &str) -> AppendCommit {
        AppendCommit {
            adds: vec![Add {
                path: file.to_string(),
                size: 1,
                data_change: true,
                ..Default::default()
            }],
            batch_id,
            rows: 1,
            info: HashMap::new(),
        }
    }

    fn log_dir(id: &TableId) -> std::path::PathBuf {
        id.url.to_file_path().unwrap().join("_delta_log")
    }

    /// Each commit file's added paths, by version, as the log holds them.
    fn added(id: &TableId) -> Vec<(u64, Vec<String>)> {
        let mut versions = Vec::new();
        for entry in std::fs::read_dir(log_dir(id)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let Some(version) = name.strip_suffix(".json").and_then(|v| v.parse().ok()) else {
                continue;
            };
            let text = std::fs::read_to_string(log_dir(id).join(&name)).unwrap();
            let paths = text
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter_map(|a| Some(a.get("add")?["path"].as_str()?.to_string()))
                .collect();
            versions.push((version, paths));
        }
        versions.sort();
        versions
    }

    /// The latest version and the batch id each app recorded, as a reader loads them.
    async fn recorded(id: &TableId, apps: &[&str]) -> (u64, Vec<Option<i64>>) {
        let table = crate::delta::open(id).await.unwrap().unwrap();
        let mut versions = Vec::new();
        for app in apps {
            versions.push(crate::delta::app_version(id, &table, app).await.unwrap());
        }
        (table.version().unwrap(), versions)
    }

    fn assert_conflict(result: Result<u64>, says: &str) {
        match result {
            Err(Error::Conflict { message, .. }) => {
                assert!(message.contains(says), "{message}")
            }
            other => panic!("expected a conflict saying {says:?}, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn two_writers_of_one_app_cannot_both_commit() {
        let (_dir, id) = new_table().await;
        let mut first = writer(&id, "stream").await;
        let mut second = writer(&id, "stream").await;
        assert_eq!(first.commit(batch(0, "first.parquet")).await.unwrap(), 1);
        // The second still knows version 0: version 1 is taken, and by its own app.
        let lost = second.commit(batch(0, "second.parquet")).await;
        assert_conflict(
            lost,
            "another `bronze` of stream stream committed its batch 0",
        );
        // Not a later batch either: whatever it planned was planned without the first's batch.
        let lost = second.commit(batch(1, "second.parquet")).await;
        assert_conflict(lost, "committed its batch 0 as version 1 first");
        assert_eq!(added(&id), [(0, vec![]), (1, vec!["first.parquet".into()])]);
        assert_eq!(recorded(&id, &["stream"]).await, (1, vec![Some(0)]));
    }

    #[tokio::test]
    async fn another_apps_blind_append_does_not_stop_a_commit() {
        let (_dir, id) = new_table().await;
        let mut a = writer(&id, "a").await;
        let mut b = writer(&id, "b").await;
        assert_eq!(a.commit(batch(0, "a.parquet")).await.unwrap(), 1);
        // `b` knows version 0: it reads version 1 (a blind append of another app), then
        // takes version 2.
        assert_eq!(b.commit(batch(0, "b.parquet")).await.unwrap(), 2);
        assert_eq!(b.version(), 2);
        assert_eq!(
            added(&id),
            [
                (0, vec![]),
                (1, vec!["a.parquet".into()]),
                (2, vec!["b.parquet".into()])
            ]
        );
        assert_eq!(
            recorded(&id, &["a", "b"]).await,
            (2, vec![Some(0), Some(0)])
        );
        // And `a`, a version behind now, goes on the same way.
        assert_eq!(a.commit(batch(1, "a1.parquet")).await.unwrap(), 3);
        assert_eq!(
            recorded(&id, &["a", "b"]).await,
            (3, vec![Some(1), Some(0)])
        );
    }

    #[tokio::test]
    async fn a_batch_id_already_committed_is_refused() {
        let (_dir, id) = new_table().await;
        let mut log = writer(&id, "stream").await;
        assert_eq!(log.commit(batch(0, "0.parquet")).await.unwrap(), 1);
        assert_eq!(log.commit(batch(1, "1.parquet")).await.unwrap(), 2);
        for replay in [1, 0] {
            let again = log.commit(batch(replay, "again.parquet")).await;
            assert_conflict(again, "already committed batch 1");
        }
        // A writer opened later knows it from the table's transactions.
        let mut later = writer(&id, "stream").await;
        assert_eq!(later.app_version(), Some(1));
        let again = later.commit(batch(1, "again.parquet")).await;
        assert_conflict(again, "already committed batch 1 (as of version 2)");
        assert!(
            added(&id).iter().all(|(_, paths)| paths.len() <= 1
                && !paths.contains(&"again.parquet".to_string())),
            "{:?}",
            added(&id)
        );
        assert_eq!(later.commit(batch(2, "2.parquet")).await.unwrap(), 3);
        assert_eq!(recorded(&id, &["stream"]).await, (3, vec![Some(2)]));
    }

    #[tokio::test]
    async fn a_commit_crossing_version_100_writes_a_checkpoint() {
        let (_dir, id) = new_table().await;
        let checkpoint = |v: u64| log_dir(&id).join(format!("{v:020}.checkpoint.parquet"));
        let mut stream = writer(&id, "stream").await;
        // Another app takes versions 1 to 99 meanwhile; no commit of it crosses 100.
        let mut other = writer(&id, "other").await;
        for b in 0..99 {
            other
                .commit(batch(b, &format!("o{b}.parquet")))
                .await
                .unwrap();
        }
        other.finish().await;
        assert!(!checkpoint(100).exists() && !checkpoint(99).exists());
        // The stream knew version 0; its commit lands on 100, past the interval.
        assert_eq!(stream.commit(batch(0, "s.parquet")).await.unwrap(), 100);
        stream.finish().await;
        assert_eq!(stream.take_warnings(), Vec::<String>::new());
        assert!(checkpoint(100).is_file());
        let last: Value =
            serde_json::from_slice(&std::fs::read(log_dir(&id).join("_last_checkpoint")).unwrap())
                .unwrap();
        assert_eq!(last["version"], 100);
        // A reader loading from the checkpoint sees both apps' transactions.
        assert_eq!(
            recorded(&id, &["stream", "other"]).await,
            (100, vec![Some(0), Some(98)])
        );
        // The next commit is not a crossing: no other checkpoint.
        assert_eq!(stream.commit(batch(1, "s1.parquet")).await.unwrap(), 101);
        stream.finish().await;
        assert!(!checkpoint(101).exists());
    }
}

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
    /// Problems that did not stop a commit (a checkpoint that could not be written).
    warnings: Vec<String>,
    /// The Delta checkpoint being written in the background, if any.
    checkpointing: Option<tokio::task::JoinHandle<Result<()>>>,
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
        Ok(Self {
            version: snapshot.version(),
            log_store: table.log_store(),
            app_id: app_id.to_string(),
            app_version,
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
                Ok(Ok(())) => {}
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
    async fn catch_up(&mut self) -> Result<()> {
        let latest = self
            .log_store
            .get_latest_version(self.version)
            .await
            .map_err(self.id.err("list the log"))?;
        for version in self.version + 1..=latest {
            let Some(commit) =
                super::log::read_commit(&self.id, self.log_store.as_ref(), version).await?
            else {
                continue;
            };
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
                return Err(Error::Conflict {
                    table: self.id.name.clone(),
                    message,
                });
            }
        }
        self.version = latest;
        Ok(())
    }

    fn tx_err(&self, e: TransactionError) -> Error {
        self.id.err("commit")(e.into())
    }
}

/// Write a Delta checkpoint of `version`.
async fn checkpoint(id: TableId, version: u64) -> Result<()> {
    deltalake::checkpoints::create_checkpoint_from_table_url_and_cleanup(
        id.url.clone(),
        version,
        Some(false),
        None,
    )
    .await
    .map_err(id.err("write a checkpoint"))
}

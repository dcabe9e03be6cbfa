//! A compaction's commit: files replaced by others holding the same rows (`remove`s and `add`s
//! with `dataChange=false`), written with the log store's put-if-absent as the stream's appends
//! are ([`super::append`]).
//!
//! Why not deltalake's OPTIMIZE commit: deltalake 1.1.3's conflict checker leaves out removes
//! with `dataChange=false` when it compares a concurrent commit's removes with the files a
//! transaction removes or read (`check_for_deleted_files_against_current_txn_deleted_files`,
//! `..._read_files`). So two compactions of one file both commit (every row of it twice:
//! measured here with a stream's auto-compaction beside `optimize`), and a MERGE that rewrote a
//! file a compaction removed meanwhile commits on top of it (the compaction's copy of the old
//! rows stays). Spark's checker counts every remove. This commit checks for itself: a commit
//! made since the version it read that removed any file it removes (whatever its
//! `dataChange`), or changed the table's schema or protocol, makes it lose with nothing
//! committed; blind appends (the stream) do not, and it goes on top of them. The other
//! direction (a MERGE or RESTORE committing after a compaction it did not see): deltalake
//! notices a compaction there only through the files it added (a conflicting "concurrent
//! append" for a MERGE whose predicate they match), never through its removes. Rather than rely
//! on that, those jobs commit with no retry ([`NO_RETRY`]): any commit made meanwhile makes
//! them lose (exit 3), and a rerun is exact. Only our own jobs write silver and gold, one at a
//! time, so this costs a rerun only when a compaction or restore ran at the same moment.

use std::collections::{HashMap, HashSet};

use deltalake::kernel::transaction::{CommitData, TransactionError};
use deltalake::kernel::{Action, Add, Remove};
use deltalake::logstore::{CommitOrBytes, LogStoreRef};
use deltalake::protocol::DeltaOperation;
use serde_json::Value;

use super::TableId;
use crate::error::{Error, Result};

/// Retries a deltalake commit that removes files may make: none (see the module's comment).
pub const NO_RETRY: usize = 0;

/// Files replaced by others with the same rows.
pub struct Rewrite {
    /// The files read and replaced, as the snapshot listed them.
    pub replaced: Vec<Add>,
    /// Their replacement (`dataChange` is set to false here).
    pub added: Vec<Add>,
    pub operation: DeltaOperation,
    /// Keys of `commitInfo` (metrics).
    pub info: HashMap<String, Value>,
}

/// Commit `rewrite` on top of `read_version` (the snapshot its files were chosen from), or on
/// top of later commits that leave its files alone. Returns the version.
pub async fn commit(
    id: &TableId,
    log_store: &LogStoreRef,
    read_version: u64,
    rewrite: Rewrite,
) -> Result<u64> {
    let now = chrono::Utc::now().timestamp_millis();
    let replaced: HashSet<String> = rewrite.replaced.iter().map(|a| a.path.clone()).collect();
    let mut actions: Vec<Action> = rewrite
        .replaced
        .iter()
        .map(|add| {
            Action::Remove(Remove {
                path: add.path.clone(),
                deletion_timestamp: Some(now),
                data_change: false,
                extended_file_metadata: Some(true),
                partition_values: Some(add.partition_values.clone()),
                size: Some(add.size),
                deletion_vector: add.deletion_vector.clone(),
                tags: add.tags.clone(),
                base_row_id: add.base_row_id,
                default_row_commit_version: add.default_row_commit_version,
            })
        })
        .collect();
    actions.extend(rewrite.added.into_iter().map(|mut add| {
        add.data_change = false;
        Action::Add(add)
    }));
    let mut version = read_version;
    loop {
        let mut info = rewrite.info.clone();
        info.insert("readVersion".into(), Value::from(read_version));
        let data = CommitData::new(actions.clone(), rewrite.operation.clone(), info, Vec::new());
        let bytes = data.get_bytes().map_err(|e| id.err("commit")(e.into()))?;
        match log_store
            .write_commit_entry(
                version + 1,
                CommitOrBytes::LogBytes(bytes),
                uuid::Uuid::new_v4(),
            )
            .await
        {
            Ok(()) => return Ok(version + 1),
            Err(TransactionError::VersionAlreadyExists(_)) => {
                // Read the version taken (not a listing of the log: one taken while others
                // commit can miss a file and see a gap), then try the next.
                let v = version + 1;
                let commit = super::log::read_commit(id, log_store.as_ref(), v)
                    .await?
                    .ok_or_else(|| id.lost_race())?;
                let taken = commit.removes.iter().find(|r| replaced.contains(&r.path));
                if let Some(taken) = taken {
                    return Err(Error::Conflict {
                        table: id.name.clone(),
                        message: format!(
                            "version {v} removed {} while this compaction was packing it, so \
                             nothing was committed; run it again",
                            taken.path
                        ),
                    });
                }
                if commit.changes_table {
                    return Err(Error::Conflict {
                        table: id.name.clone(),
                        message: format!(
                            "version {v} changed the table's schema or protocol while this \
                             compaction ran, so nothing was committed; run it again"
                        ),
                    });
                }
                version = v;
            }
            Err(e) => return Err(id.err("commit")(e.into())),
        }
    }
}

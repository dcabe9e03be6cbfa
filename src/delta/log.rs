//! One reader of a table's commit files (`_delta_log/<version>.json`): what a commit holds,
//! sorted into what the jobs and `inspect` ask of it (its `commitInfo`, application
//! transactions, data files added and removed, whether it changed the schema or protocol).
//!
//! Silver reads bronze's slices from it, `history`, `describe`, `restore` and `status` read
//! commits, the stream's append path catches up with other writers' commits, and the clean-up
//! of a failed job finds the files commits name.

use deltalake::DeltaResult;
use deltalake::kernel::{Action, Add, CommitInfo, Remove, Transaction};
use deltalake::logstore::{LogStore, get_actions};
use futures::{StreamExt, TryStreamExt};

use super::TableId;
use crate::error::Result;

/// One commit of a table's log.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    pub version: u64,
    pub info: Option<CommitInfo>,
    /// The application transactions recorded with it (`txn` actions).
    pub txns: Vec<Transaction>,
    pub adds: Vec<Add>,
    pub removes: Vec<Remove>,
    /// Paths of the change-data files it wrote (`cdc` actions).
    pub cdc_files: Vec<String>,
    /// It changed the table's schema or properties (`metaData`) or its protocol.
    pub changes_table: bool,
}

impl Commit {
    /// When it was committed (milliseconds since the epoch): the in-commit timestamp if there
    /// is one, else `commitInfo.timestamp`. Never the commit file's modification time, which a
    /// copy or a restore from backup changes.
    pub fn timestamp(&self) -> Option<i64> {
        let info = self.info.as_ref()?;
        info.in_commit_timestamp.or(info.timestamp)
    }

    /// The files it added with new data (a compaction's re-added files carry none).
    pub fn into_data_adds(self) -> impl Iterator<Item = Add> {
        self.adds.into_iter().filter(|add| add.data_change)
    }

    /// Whether it changed rows or the table (not only files, as a compaction does).
    pub fn changes_data(&self) -> bool {
        self.changes_table
            || self.adds.iter().any(|a| a.data_change)
            || self.removes.iter().any(|r| r.data_change)
            || !self.cdc_files.is_empty()
    }

    /// Its operation (`WRITE`, `MERGE`, `STREAMING UPDATE`, `RESTORE`...).
    pub fn operation(&self) -> Option<&str> {
        self.info.as_ref()?.operation.as_deref()
    }

    fn from_actions(version: u64, actions: Vec<Action>) -> Self {
        let mut commit = Commit {
            version,
            ..Commit::default()
        };
        for action in actions {
            match action {
                Action::CommitInfo(info) => commit.info = Some(info),
                Action::Txn(txn) => commit.txns.push(txn),
                Action::Add(add) => commit.adds.push(add),
                Action::Remove(remove) => commit.removes.push(remove),
                Action::Cdc(cdc) => commit.cdc_files.push(cdc.path),
                Action::Metadata(_) | Action::Protocol(_) => commit.changes_table = true,
                _ => {}
            }
        }
        commit
    }
}

/// A data file's rows, by its statistics (0 without them).
pub fn add_rows(add: &Add) -> u64 {
    add.get_stats()
        .ok()
        .flatten()
        .map_or(0, |s| s.num_records.max(0) as u64)
}

/// The commit of `version`, with deltalake's error (for code that reports its own); `None` if
/// its file is gone (cleaned up after a checkpoint).
pub(crate) async fn read_raw(log: &dyn LogStore, version: u64) -> DeltaResult<Option<Commit>> {
    let Some(bytes) = log.read_commit_entry(version).await? else {
        return Ok(None);
    };
    Ok(Some(Commit::from_actions(
        version,
        get_actions(version, &bytes)?,
    )))
}

/// The commit of `version`, or `None` if its file is gone (cleaned up after a checkpoint).
pub async fn read_commit(id: &TableId, log: &dyn LogStore, version: u64) -> Result<Option<Commit>> {
    read_raw(log, version).await.map_err(id.err("read the log"))
}

/// The version of the checkpoint `_delta_log/_last_checkpoint` names, if any: commits up to
/// it need not be read to know the table (and may have been cleaned up).
pub async fn last_checkpoint(log: &dyn LogStore) -> Option<u64> {
    use deltalake::logstore::object_store::ObjectStoreExt;
    let pointer = deltalake::Path::from("_delta_log/_last_checkpoint");
    let bytes = log
        .object_store(None)
        .get(&pointer)
        .await
        .ok()?
        .bytes()
        .await
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("version")?
        .as_u64()
}

/// The commits of versions `from..=to` still in the log, oldest first.
pub async fn read_commits(
    id: &TableId,
    log: &dyn LogStore,
    from: u64,
    to: u64,
) -> Result<Vec<Commit>> {
    let read: Vec<Option<Commit>> = read_each(id, log, from, to).try_collect().await?;
    Ok(read.into_iter().flatten().collect())
}

/// The commits of versions `from..=to` (`None` where the file is gone), in order, several read
/// at once: a long log's small files cost their latency once per [`READ_AHEAD`], not each.
fn read_each<'a>(
    id: &'a TableId,
    log: &'a dyn LogStore,
    from: u64,
    to: u64,
) -> impl futures::Stream<Item = Result<Option<Commit>>> + 'a {
    futures::stream::iter(from..=to)
        .map(move |version| read_commit(id, log, version))
        .buffered(READ_AHEAD)
}

/// Commit files read at once.
const READ_AHEAD: usize = 16;

/// How many of versions `from..=to` a consumer has to read: those that change rows (or the
/// table), and those no longer in the log (not known not to). A compaction's or vacuum's
/// commit changes nothing a consumer reads.
pub async fn versions_with_changes(
    id: &TableId,
    log: &dyn LogStore,
    from: u64,
    to: u64,
) -> Result<u64> {
    read_each(id, log, from, to)
        .try_fold(0, |count, commit| async move {
            Ok(count + commit.map_or(1, |c| u64::from(c.changes_data())))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_is_sorted_into_what_readers_ask_of_it() {
        let text = concat!(
            r#"{"commitInfo":{"timestamp":1700000000000,"operation":"MERGE","inCommitTimestamp":1700000000500}}"#,
            "\n",
            r#"{"txn":{"appId":"silver<-fact_heartrate_bronze","version":4}}"#,
            "\n",
            r#"{"add":{"path":"a.parquet","partitionValues":{},"size":10,"modificationTime":1,"dataChange":true,"stats":"{\"numRecords\":7}"}}"#,
            "\n",
            r#"{"add":{"path":"b.parquet","partitionValues":{},"size":10,"modificationTime":1,"dataChange":false}}"#,
            "\n",
            r#"{"remove":{"path":"c.parquet","dataChange":true}}"#,
            "\n",
        );
        let actions = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let commit = Commit::from_actions(3, actions);
        assert_eq!(commit.version, 3);
        assert_eq!(commit.operation(), Some("MERGE"));
        assert_eq!(commit.timestamp(), Some(1_700_000_000_500));
        assert_eq!(commit.txns.len(), 1);
        assert_eq!(commit.txns[0].version, 4);
        assert_eq!(commit.adds.len(), 2);
        assert_eq!(commit.removes.len(), 1);
        assert!(!commit.changes_table);
        let data: Vec<Add> = commit.into_data_adds().collect();
        let paths: Vec<&str> = data.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(paths, ["a.parquet"]);
        assert_eq!(data.iter().map(add_rows).sum::<u64>(), 7);
    }
}

//! The read side of the warehouse: what tables there are, what they hold now or held at a past
//! version or time, what changed between two versions, and putting a past version back. One file
//! per command; this module holds what they share: finding tables by a name a user typed, reading
//! the commits of a table's log, and the upstream versions its consumers recorded.
//!
//! Everything here only reads, except `restore`, which writes one new commit.

pub mod describe;
pub mod diff;
pub mod format;
pub mod history;
pub mod restore;
pub mod show;
pub mod sql;
pub mod status;
pub mod tables;

use std::collections::BTreeSet;

use deltalake::DeltaTable;
use deltalake::kernel::{Action, CommitInfo, Transaction};
use deltalake::logstore::get_actions;

use crate::delta::{self, TableId};
use crate::error::{Error, Result};
use crate::layers::{gold, silver};
use crate::warehouse::{self, DATABASE, Warehouse, tables as names};

/// The pipeline's tables in the order it writes them: listings follow this order, then any
/// other table by name.
const PIPELINE_ORDER: [&str; 8] = [
    names::DIM_PATIENTS,
    names::BRONZE,
    names::BRONZE_QUARANTINE,
    names::SILVER,
    names::SILVER_QUARANTINE,
    names::SILVER_WAITING,
    names::GOLD,
    names::DAILY,
];

/// The tables of the warehouse: the folders of `<warehouse>/healthcare_dlh.db/` that hold a
/// `_delta_log` (a stream's `_checkpoint` folder is not a table). Listed on the local file
/// system, as checkpoints are, until the warehouse can be an object store.
pub fn table_names(warehouse: &Warehouse) -> Result<Vec<String>> {
    let url = warehouse
        .root()
        .join(&format!("{DATABASE}.db/"))
        .expect("the database folder is a plain name");
    let dir = url
        .to_file_path()
        .map_err(|()| Error::Usage(format!("{url} is not a local folder")))?;
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", &dir)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("list", &dir))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if warehouse::validate_table_name(&name).is_ok() && entry.path().join("_delta_log").is_dir()
        {
            found.push(name);
        }
    }
    found.sort_by_key(|name| {
        let rank = PIPELINE_ORDER.iter().position(|p| p == name);
        (rank.unwrap_or(PIPELINE_ORDER.len()), name.clone())
    });
    Ok(found)
}

/// Open the latest version of a table named by a user: the name must be a plain identifier, and
/// an unknown table is an error that lists the tables there are.
pub async fn open_table(warehouse: &Warehouse, name: &str) -> Result<(TableId, DeltaTable)> {
    warehouse::validate_table_name(name)?;
    let id = TableId::new(warehouse, name);
    match delta::open(&id).await? {
        Some(table) => Ok((id, table)),
        None => Err(unknown_table(warehouse, &id)),
    }
}

fn unknown_table(warehouse: &Warehouse, id: &TableId) -> Error {
    let hint = match table_names(warehouse) {
        Ok(names) if names.is_empty() => {
            "; the warehouse has no tables yet (run `medallion pipeline`)".to_string()
        }
        Ok(names) => format!("; the tables are: {}", names.join(", ")),
        Err(_) => String::new(),
    };
    id.not_found(&hint)
}

/// The latest version of a loaded table.
pub fn latest_version(id: &TableId, table: &DeltaTable) -> Result<u64> {
    table
        .version()
        .ok_or_else(|| id.not_found(" (it has no version yet)"))
}

/// Check that `version` exists (is not beyond the latest).
pub fn check_version(id: &TableId, table: &DeltaTable, version: u64) -> Result<()> {
    let latest = latest_version(id, table)?;
    if version > latest {
        return Err(Error::VersionNotFound {
            table: id.name.clone(),
            version,
            latest,
        });
    }
    Ok(())
}

/// One commit of a table's log, as read from `_delta_log/<version>.json`.
#[derive(Debug, Clone)]
pub struct Commit {
    pub version: u64,
    pub info: Option<CommitInfo>,
    /// The application transactions recorded with it (`txn` actions).
    pub txns: Vec<Transaction>,
    pub adds: usize,
    pub removes: usize,
}

impl Commit {
    /// When it was committed (milliseconds since the epoch): the in-commit timestamp if there
    /// is one, else `commitInfo.timestamp`. Never the commit file's modification time, which a
    /// copy or a restore from backup changes.
    pub fn timestamp(&self) -> Option<i64> {
        let info = self.info.as_ref()?;
        info.in_commit_timestamp.or(info.timestamp)
    }
}

/// One commit of the table's log, or `None` if its file is gone (log cleanup after a
/// checkpoint).
pub async fn read_commit(id: &TableId, table: &DeltaTable, version: u64) -> Result<Option<Commit>> {
    let Some(bytes) = table
        .log_store()
        .read_commit_entry(version)
        .await
        .map_err(id.err("read the log"))?
    else {
        return Ok(None);
    };
    let mut commit = Commit {
        version,
        info: None,
        txns: Vec::new(),
        adds: 0,
        removes: 0,
    };
    for action in get_actions(version, &bytes).map_err(id.err("read the log"))? {
        match action {
            Action::CommitInfo(info) => commit.info = Some(info),
            Action::Txn(txn) => commit.txns.push(txn),
            Action::Add(_) => commit.adds += 1,
            Action::Remove(_) => commit.removes += 1,
            _ => {}
        }
    }
    Ok(Some(commit))
}

/// The commits of versions `from..=to` still in the log, oldest first.
pub async fn read_commits(
    id: &TableId,
    table: &DeltaTable,
    from: u64,
    to: u64,
) -> Result<Vec<Commit>> {
    let mut commits = Vec::new();
    for version in from..=to {
        if let Some(commit) = read_commit(id, table, version).await? {
            commits.push(commit);
        }
    }
    Ok(commits)
}

/// An application transaction of a table: the latest version an application recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppTransaction {
    pub app_id: String,
    pub version: i64,
    /// The upstream table, for a consumer's app id `<consumer><-<table>` (not silver's
    /// position in its own waiting table, [`silver::WAITING_VERSION`]).
    pub upstream: Option<String>,
    /// Whether the app id is the bronze stream's id (its `_checkpoint/metadata`).
    pub bronze_stream: bool,
}

/// Every application transaction of a table, with the version each application recorded last.
/// App ids come from the commits still in the log, plus the ones the pipeline is known to use
/// (which the log's checkpoint keeps after old commits are cleaned up).
pub async fn app_transactions(
    warehouse: &Warehouse,
    id: &TableId,
    table: &DeltaTable,
) -> Result<Vec<AppTransaction>> {
    let stream_id = bronze_stream_id(warehouse);
    let mut app_ids: BTreeSet<String> = [
        silver::FROM_BRONZE,
        silver::FROM_PATIENTS,
        silver::WAITING_VERSION,
        gold::FROM_SILVER,
    ]
    .into_iter()
    .map(str::to_string)
    .chain(stream_id.clone())
    .collect();
    for commit in read_commits(id, table, 0, latest_version(id, table)?).await? {
        app_ids.extend(commit.txns.into_iter().map(|t| t.app_id));
    }
    let mut found = Vec::new();
    for app_id in app_ids {
        if let Some(version) = delta::app_version(id, table, &app_id).await? {
            found.push(AppTransaction {
                // Silver's position in its own waiting table is not an upstream it consumes.
                upstream: app_id
                    .split_once("<-")
                    .filter(|_| app_id != silver::WAITING_VERSION)
                    .map(|(_, t)| t.to_string()),
                bronze_stream: stream_id.as_deref() == Some(app_id.as_str()),
                app_id,
                version,
            });
        }
    }
    Ok(found)
}

/// The bronze stream's id, if its checkpoint has one.
fn bronze_stream_id(warehouse: &Warehouse) -> Option<String> {
    let path = warehouse
        .checkpoint_dir(names::BRONZE)
        .ok()?
        .join("metadata");
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("id")?.as_str().map(str::to_string)
}

/// A table's downstream consumers: every other table of the warehouse with an application
/// transaction `<consumer><-<table>`, and the version of `table` it recorded.
pub async fn consumers(
    warehouse: &Warehouse,
    table_name: &str,
) -> Result<Vec<(String, AppTransaction)>> {
    let mut found = Vec::new();
    for name in table_names(warehouse)? {
        if name == table_name {
            continue;
        }
        let id = TableId::new(warehouse, &name);
        let Some(table) = delta::open(&id).await? else {
            continue;
        };
        for txn in app_transactions(warehouse, &id, &table).await? {
            if txn.upstream.as_deref() == Some(table_name) {
                found.push((name.clone(), txn));
            }
        }
    }
    Ok(found)
}

/// Rows and bytes of a version's files, from their `add` actions: rows from the statistics
/// (before deletion vectors, which these tables do not use), unknown if any file has none.
pub(crate) fn file_totals(
    snapshot: &deltalake::table::state::DeltaTableState,
) -> (Option<u64>, i64) {
    let files = snapshot.log_data();
    let records = files
        .iter()
        .map(|f| f.num_records().map(|n| n as u64))
        .sum::<Option<u64>>();
    let bytes = files.iter().map(|f| f.size()).sum();
    (records, bytes)
}

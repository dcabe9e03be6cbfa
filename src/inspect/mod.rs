//! The read side of the warehouse: what tables there are, what they hold now or held at a past
//! version or time, what changed between two versions, and putting a past version back. One file
//! per command; this module holds what they share: finding tables by a name a user typed, reading
//! the commits of a table's log, and the upstream versions its consumers recorded.
//!
//! Everything here only reads, except `restore`, which writes one new commit.

pub mod describe;
pub mod diff;
pub mod events;
pub mod files;
pub mod format;
pub mod history;
mod parse;
pub mod restore;
pub mod show;
pub mod sql;
pub mod status;
pub mod tables;

use std::collections::BTreeSet;

use deltalake::DeltaTable;

use crate::catalog::{self, AppId, DATABASE};
use crate::delta::log::{self, Commit};
use crate::delta::{self, TableId};
use crate::error::{Error, Result};
use crate::warehouse::{self, Warehouse};

/// The tables of the warehouse: the folders of `<warehouse>/healthcare_dlh.db/` that hold a
/// `_delta_log` (a stream's `_checkpoint` folder is not a table), on a local disk or in an
/// object store.
pub async fn table_names(warehouse: &Warehouse) -> Result<Vec<String>> {
    let database = warehouse.folder()?.join(&format!("{DATABASE}.db"));
    let mut found = Vec::new();
    for name in database.subfolders().await? {
        if warehouse::validate_table_name(&name).is_ok()
            && database
                .join(&name)
                .subfolders()
                .await?
                .iter()
                .any(|sub| sub == "_delta_log")
        {
            found.push(name);
        }
    }
    found.sort_by_key(|name| catalog::listing_order(name));
    Ok(found)
}

/// Open the latest version of a table named by a user: the name must be a plain identifier, and
/// an unknown table is an error that lists the tables there are.
pub async fn open_table(warehouse: &Warehouse, name: &str) -> Result<(TableId, DeltaTable)> {
    warehouse::validate_table_name(name)?;
    let id = TableId::new(warehouse, name);
    match delta::open(&id).await? {
        Some(table) => Ok((id, table)),
        None => Err(unknown_table(warehouse, &id).await),
    }
}

async fn unknown_table(warehouse: &Warehouse, id: &TableId) -> Error {
    let hint = match table_names(warehouse).await {
        Ok(names) if names.is_empty() => {
            "; the warehouse has no tables yet (run `medallion pipeline`)".to_string()
        }
        // Listed, yet not opened: its first commit is not written (yet).
        Ok(names) if names.contains(&id.name) => {
            "; its folder is there but holds no commit yet (it is being created, or its \
             creation was interrupted: the job that makes it creates it again)"
                .to_string()
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

/// One commit of a table's log, or `None` if its file is gone (log cleanup after a
/// checkpoint).
pub async fn read_commit(id: &TableId, table: &DeltaTable, version: u64) -> Result<Option<Commit>> {
    log::read_commit(id, table.log_store().as_ref(), version).await
}

/// The commits of versions `from..=to` still in the log, oldest first.
pub async fn read_commits(
    id: &TableId,
    table: &DeltaTable,
    from: u64,
    to: u64,
) -> Result<Vec<Commit>> {
    log::read_commits(id, table.log_store().as_ref(), from, to).await
}

/// An application transaction of a table: the latest version an application recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppTransaction {
    pub app_id: String,
    pub version: i64,
    /// The upstream table, for a consumer's app id `<consumer><-<table>` (not a position in a
    /// side table the consumer writes itself, such as silver's waiting rows).
    pub upstream: Option<String>,
    /// The bronze source whose stream id the app id is (its checkpoint's `metadata`), if any.
    pub bronze_source: Option<String>,
}

/// The key under which a consumer's position is listed: the upstream table, `source` for the
/// default bronze stream's batch, `source NAME` for a named source's.
pub const SOURCE_POSITION: &str = "source";

impl AppTransaction {
    /// What this transaction is a position in ([`SOURCE_POSITION`] for the default bronze
    /// stream), or `None` for a side table's position (silver's waiting rows).
    pub fn position_key(&self) -> Option<String> {
        match (&self.upstream, &self.bronze_source) {
            (Some(upstream), _) => Some(upstream.clone()),
            (None, Some(source)) if source == warehouse::DEFAULT_SOURCE => {
                Some(SOURCE_POSITION.to_string())
            }
            (None, Some(source)) => Some(format!("{SOURCE_POSITION} {source}")),
            (None, None) => None,
        }
    }
}

/// Positions keyed by [`AppTransaction::position_key`] as people read them: `batch 11`,
/// `fact_heartrate_bronze v12`, joined by commas.
pub fn positions_text<'a>(positions: impl IntoIterator<Item = (&'a String, &'a i64)>) -> String {
    positions
        .into_iter()
        .map(|(upstream, v)| match upstream.as_str() {
            SOURCE_POSITION => format!("batch {v}"),
            _ => format!("{upstream} v{v}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every application transaction of a table, with the version each application recorded last.
/// App ids are the ones the pipeline uses (the catalog's, and the stream id of every bronze
/// checkpoint), plus any in the commits after the last checkpoint: reading those, not the
/// whole log, keeps the cost flat however long the log (an app id only older commits name,
/// of no checkpoint that is still there, is not listed).
pub async fn app_transactions(
    warehouse: &Warehouse,
    id: &TableId,
    table: &DeltaTable,
) -> Result<Vec<AppTransaction>> {
    let stream_ids = bronze_stream_ids(warehouse).await;
    let mut app_ids: BTreeSet<String> = catalog::APP_IDS
        .iter()
        .map(AppId::id)
        .chain(stream_ids.iter().map(|(_, id)| id.clone()))
        .collect();
    let latest = latest_version(id, table)?;
    let from = log::last_checkpoint(table.log_store().as_ref())
        .await
        .map_or(0, |c| c.min(latest));
    for commit in read_commits(id, table, from, latest).await? {
        app_ids.extend(commit.txns.into_iter().map(|t| t.app_id));
    }
    let mut found = Vec::new();
    for app_id in app_ids {
        if let Some(version) = delta::app_version(id, table, &app_id).await? {
            found.push(AppTransaction {
                upstream: catalog::parse_app_id(&app_id)
                    .filter(|c| c.upstream)
                    .map(|c| c.table.to_string()),
                bronze_source: stream_ids
                    .iter()
                    .find(|(_, id)| *id == app_id)
                    .map(|(name, _)| name.clone()),
                app_id,
                version,
            });
        }
    }
    Ok(found)
}

/// The ids of the bronze streams whose checkpoints are there: the default source's, and every
/// named source's (`_checkpoint/<name>/`).
async fn bronze_stream_ids(warehouse: &Warehouse) -> Vec<(String, String)> {
    let default = crate::warehouse::DEFAULT_SOURCE;
    let Ok(folder) = warehouse.checkpoint(catalog::BRONZE.name, default) else {
        return Vec::new();
    };
    crate::stream::checkpoint::all(&folder, default)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(name, checkpoint)| (name, checkpoint.stream_id().to_string()))
        .collect()
}

/// A table's downstream consumers: every other table of the warehouse with an application
/// transaction `<consumer><-<table>`, and the version of `table` it recorded.
pub async fn consumers(
    warehouse: &Warehouse,
    table_name: &str,
) -> Result<Vec<(String, AppTransaction)>> {
    let mut found = Vec::new();
    for name in table_names(warehouse).await? {
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

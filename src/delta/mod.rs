//! Delta tables as the jobs use them. This module opens and creates the warehouse's tables
//! (from their [`catalog`](crate::catalog) description); the rest is one concern per file:
//!
//! - [`log`]: one reader of commit files (actions of one commit).
//! - [`txn`]: consumed versions (application transactions), transaction-only commits, the
//!   appends that carry them.
//! - [`merge`]: the one upsert every MERGE of the pipeline goes through.
//! - [`query`]: tables as DataFusion providers, and the register/sql/collect plumbing.
//! - [`columns`]: columns of batches read back, in the types the code works with.
//! - [`append`]: the bronze stream's cheap commits (`AppendLog`).
//! - [`files`]: data files read back from their Parquet (without a snapshot listing them).
//! - [`rewrite`]: a compaction's commit (files replaced, no data change), safe against a
//!   concurrent writer that removed one of them.
//! - [`damage`]: torn or garbage commit files and checkpoints, found before a job trusts them.
//! - [`errors`]: deltalake's errors turned into what a user can act on.
//! - `orphans`, `store`: the store a table is opened through (durable commits, clean-up of a
//!   failed job's files).

pub mod append;
pub mod columns;
pub mod damage;
mod errors;
pub mod files;
pub mod log;
pub mod merge;
pub(crate) mod orphans;
pub mod query;
pub mod rewrite;
pub(crate) mod store;
pub mod txn;

pub use columns::{conform, decimals, float64s, int64s, strings, take_rows};
pub use errors::name_the_winner;
pub use query::{collect, provider, query, read_all, session_with};
pub use txn::{app_version, append_once, append_parallel, record_transactions};

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::create::CreateBuilder;
use url::Url;

use crate::catalog::Table;
use crate::error::{Error, Result};
use crate::warehouse::{StorageOptions, Warehouse};

/// A table of the warehouse: its name (for messages), location, and the storage options it is
/// reached with.
#[derive(Debug, Clone)]
pub struct TableId {
    pub name: String,
    pub url: Url,
    pub options: Arc<StorageOptions>,
}

impl TableId {
    /// A table named by a user (or found in the warehouse).
    pub fn new(warehouse: &Warehouse, name: &str) -> Self {
        Self {
            name: name.to_string(),
            url: warehouse.table_url(name),
            options: Arc::new(warehouse.options().clone()),
        }
    }

    /// One of the pipeline's tables.
    pub fn of(warehouse: &Warehouse, table: &Table) -> Self {
        Self::new(warehouse, table.name)
    }
}

/// Open the latest version of a table, or `None` if it has not been created.
pub async fn open(id: &TableId) -> Result<Option<DeltaTable>> {
    let mut table = store::builder(id)
        .and_then(|b| b.build())
        .map_err(id.err("open"))?;
    if !table
        .verify_deltatable_existence()
        .await
        .map_err(id.err("open"))?
    {
        return Ok(None);
    }
    damage::check(id, &table, None).await?;
    table.load().await.map_err(id.err("load"))?;
    orphans::opened(id, table.version());
    Ok(Some(table))
}

/// A past version of a table.
pub async fn open_version(id: &TableId, version: u64) -> Result<DeltaTable> {
    let mut table = store::builder(id)
        .and_then(|b| b.build())
        .map_err(id.err("open"))?;
    damage::check(id, &table, Some(version)).await?;
    table
        .load_version(version)
        .await
        .map_err(id.err("load a version"))?;
    Ok(table)
}

/// Create a table as the catalog describes it, with `extra` properties (e.g. silver's time
/// zone); version 0 holds no rows.
pub async fn create(id: &TableId, table: &Table, extra: &[(&str, &str)]) -> Result<DeltaTable> {
    if let Ok(dir) = id.url.to_file_path() {
        std::fs::create_dir_all(&dir).map_err(Error::io("create", dir))?;
    }
    let columns: StructType =
        table
            .schema()
            .as_ref()
            .try_into_kernel()
            .map_err(|e| Error::Arrow {
                context: format!("table {}: schema", id.name),
                source: e,
            })?;
    let log_store = store::builder(id)
        .and_then(|b| b.build_storage())
        .map_err(id.err("create"))?;
    let created = CreateBuilder::new()
        .with_log_store(log_store.clone())
        .with_table_name(&id.name)
        .with_comment(table.description)
        .with_columns(columns.fields().cloned())
        .with_configuration(
            table
                .properties
                .iter()
                .chain(extra)
                .map(|(k, v)| (*k, Some(*v))),
        )
        // Our own `medallion.*` properties are not Delta's: let them through.
        .with_raise_if_key_not_exists(false)
        // A writer that loses the race to create the table must fail (and open the winner's
        // table), not retry and commit a second CREATE on top of it.
        .with_commit_properties(CommitProperties::default().with_max_retries(0))
        .await;
    match created {
        Ok(table) => Ok(table),
        // It was not there when the caller looked: another job created it meanwhile.
        Err(_) if log_store.is_delta_table_location().await.unwrap_or(false) => Err(id.lost_race()),
        Err(e) => Err(id.err("create")(e)),
    }
}

/// Open a table, or create it as the catalog describes it if it does not exist. Of two
/// processes creating it at once, the loser opens the winner's table. Says whether this call
/// created it.
pub async fn open_or_create(id: &TableId, table: &Table) -> Result<(DeltaTable, bool)> {
    if let Some(table) = open(id).await? {
        return Ok((table, false));
    }
    match create(id, table, &[]).await {
        Ok(table) => Ok((table, true)),
        Err(e) => open(id).await?.map(|t| (t, false)).ok_or(e),
    }
}

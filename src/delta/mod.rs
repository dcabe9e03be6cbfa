//! Delta tables as the layers use them: open or create a table of the warehouse, read it into
//! Arrow, and (in `append`) the cheap append path of the bronze stream.

pub mod append;
pub mod log;
pub(crate) mod orphans;

use std::sync::Arc;

use deltalake::arrow::array::{AsArray, RecordBatch};
use deltalake::arrow::datatypes::Schema;
use deltalake::datafusion::catalog::TableProvider;
use deltalake::datafusion::prelude::{DataFrame, SessionContext};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, StructType, Transaction};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use url::Url;

use crate::error::{Error, Result, Winner};
use crate::warehouse::Warehouse;

/// A table of the warehouse: its name (for messages) and location.
#[derive(Debug, Clone)]
pub struct TableId {
    pub name: String,
    pub url: Url,
}

impl TableId {
    pub fn new(warehouse: &Warehouse, name: &str) -> Self {
        Self {
            name: name.to_string(),
            url: warehouse.table_url(name),
        }
    }

    /// Wrap a Delta error with this table and what was being done. A commit that lost its
    /// version to another writer becomes [`Error::LostRace`], a data file the log names but
    /// the folder lacks [`Error::FileMissing`].
    pub fn err(&self, action: &'static str) -> impl FnOnce(DeltaTableError) -> Error + '_ {
        move |source| {
            if is_lost_race(&source) {
                return self.lost_race();
            }
            if let Some(missing) = self.file_missing(&source) {
                return missing;
            }
            Error::Delta {
                table: self.name.clone(),
                location: self.url.to_string(),
                action,
                source: Box::new(source),
            }
        }
    }

    /// Wrap a DataFusion error with this table and what was being done.
    pub fn query_err(
        &self,
        action: &'static str,
    ) -> impl FnOnce(deltalake::datafusion::error::DataFusionError) -> Error + '_ {
        move |source| {
            if let Some(missing) = self.file_missing(&source) {
                return missing;
            }
            Error::Query {
                table: self.name.clone(),
                action,
                source: Box::new(source),
            }
        }
    }

    /// The error for a table that has not been written yet.
    pub fn not_found(&self, hint: &str) -> Error {
        Error::TableNotFound {
            name: self.name.clone(),
            location: self.url.to_string(),
            hint: hint.to_string(),
        }
    }
}

/// Open the latest version of a table, or `None` if it has not been created.
pub async fn open(id: &TableId) -> Result<Option<DeltaTable>> {
    let mut table = orphans::builder(id)
        .and_then(|b| b.build())
        .map_err(id.err("open"))?;
    if !table
        .verify_deltatable_existence()
        .await
        .map_err(id.err("open"))?
    {
        return Ok(None);
    }
    log::check(id, &table).await?;
    table.load().await.map_err(id.err("load"))?;
    orphans::opened(id, table.version());
    Ok(Some(table))
}

/// A past version of a table.
pub async fn open_version(id: &TableId, version: u64) -> Result<DeltaTable> {
    let mut table = orphans::builder(id)
        .and_then(|b| b.build())
        .map_err(id.err("open"))?;
    log::check(id, &table).await?;
    table
        .load_version(version)
        .await
        .map_err(id.err("load a version"))?;
    Ok(table)
}

/// The version an application recorded in the table's transactions (`txn` actions), if any.
pub async fn app_version(id: &TableId, table: &DeltaTable, app_id: &str) -> Result<Option<i64>> {
    table
        .snapshot()
        .map_err(id.err("load"))?
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(id.err("read application transactions"))
}

/// A commit that adds no data and only records application transactions (which upstream
/// versions a job consumed), so that the next run does not read them again.
pub async fn record_transactions(
    id: &TableId,
    table: DeltaTable,
    props: CommitProperties,
) -> Result<DeltaTable> {
    commit_append(id, table, Vec::new(), props, "record the consumed versions").await
}

/// Commit `actions` as an append (a `WRITE` in mode Append) and load the new version.
async fn commit_append(
    id: &TableId,
    mut table: DeltaTable,
    actions: Vec<Action>,
    props: CommitProperties,
    what: &'static str,
) -> Result<DeltaTable> {
    let snapshot = table.snapshot().map_err(id.err("load"))?;
    CommitBuilder::from(props)
        .with_actions(actions)
        .build(
            Some(snapshot),
            table.log_store(),
            DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: None,
                predicate: None,
            },
        )
        .await
        .map_err(id.err(what))?;
    table.update_state().await.map_err(id.err(what))?;
    Ok(table)
}

/// Append `batches` in one commit carrying `txns`, each batch's Parquet file encoded on a task
/// of its own, so the cores share the encoding (`table.write` encodes on one). Returns the table
/// at the new version.
pub async fn append_parallel(
    id: &TableId,
    table: DeltaTable,
    batches: Vec<RecordBatch>,
    txns: Vec<Transaction>,
) -> Result<DeltaTable> {
    let start = std::time::Instant::now();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut tasks = Vec::new();
    for batch in batches.into_iter().filter(|b| b.num_rows() > 0) {
        let mut writer = RecordBatchWriter::for_table(&table).map_err(id.err("append"))?;
        tasks.push(tokio::spawn(async move {
            writer.write(batch).await?;
            writer.flush().await
        }));
    }
    // Every task is awaited, even after one failed: a file still being written when the job
    // returns would escape the clean-up of what a failed job wrote (`orphans`).
    let mut adds = Vec::new();
    let mut failed = None;
    for task in tasks {
        match task.await {
            Ok(Ok(written)) => adds.extend(written),
            Ok(Err(e)) => failed = failed.or(Some(e)),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => {
                failed = failed.or(Some(DeltaTableError::GenericError {
                    source: Box::new(e),
                }))
            }
        }
    }
    if let Some(e) = failed {
        return Err(id.err("append")(e));
    }
    // The metrics `table.write` records, so history reads the same either way.
    let props = CommitProperties::default()
        .with_metadata([(
            "operationMetrics".to_string(),
            serde_json::json!({
                "num_added_files": adds.len(),
                "num_removed_files": 0,
                "num_partitions": 0,
                "num_added_rows": rows,
                "execution_time_ms": start.elapsed().as_millis() as u64,
            }),
        )])
        .with_application_transactions(txns);
    let actions = adds.into_iter().map(Action::Add).collect();
    commit_append(id, table, actions, props, "append").await
}

/// Create a table with the given columns and `delta.*` properties; version 0 holds no rows.
pub async fn create(
    id: &TableId,
    schema: &Schema,
    properties: &[(&str, &str)],
    comment: &str,
) -> Result<DeltaTable> {
    if let Ok(dir) = id.url.to_file_path() {
        std::fs::create_dir_all(&dir).map_err(Error::io("create", dir))?;
    }
    let columns: StructType = schema.try_into_kernel().map_err(|e| Error::Arrow {
        context: format!("table {}: schema", id.name),
        source: e,
    })?;
    let log_store = orphans::builder(id)
        .and_then(|b| b.build_storage())
        .map_err(id.err("create"))?;
    let created = CreateBuilder::new()
        .with_log_store(log_store.clone())
        .with_table_name(&id.name)
        .with_comment(comment)
        .with_columns(columns.fields().cloned())
        .with_configuration(properties.iter().map(|(k, v)| (*k, Some(*v))))
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

/// The table's current version as a DataFusion table provider, its store registered in `ctx`.
pub async fn provider(
    id: &TableId,
    table: &DeltaTable,
    ctx: &SessionContext,
) -> Result<Arc<dyn TableProvider>> {
    table
        .update_datafusion_session(&ctx.state())
        .map_err(id.err("read"))?;
    table.table_provider().await.map_err(id.query_err("read"))
}

/// Open a table, or create it (`properties`, `comment`) if it does not exist. Of two processes
/// creating it at once, the loser opens the winner's table. Says whether this call created it.
pub async fn open_or_create(
    id: &TableId,
    schema: &Schema,
    properties: &[(&str, &str)],
    comment: &str,
) -> Result<(DeltaTable, bool)> {
    if let Some(table) = open(id).await? {
        return Ok((table, false));
    }
    match create(id, schema, properties, comment).await {
        Ok(table) => Ok((table, true)),
        Err(e) => open(id).await?.map(|t| (t, false)).ok_or(e),
    }
}

/// Append rows to an append-only side table (created if needed), once per application
/// transaction: a table that already records `txn` (or a later version of its app) is left
/// as it is, so a job that crashed after this append can run again.
pub async fn append_once(
    id: &TableId,
    schema: &Schema,
    comment: &str,
    batches: Vec<RecordBatch>,
    txn: Transaction,
    props: CommitProperties,
) -> Result<()> {
    let (table, _) = open_or_create(id, schema, &[("delta.appendOnly", "true")], comment).await?;
    if app_version(id, &table, &txn.app_id).await? >= Some(txn.version) {
        return Ok(());
    }
    table
        .write(batches)
        .with_commit_properties(props.with_application_transaction(txn))
        .await
        .map_err(id.err("append"))?;
    Ok(())
}

/// A DataFusion frame over the table's current version.
pub async fn frame(id: &TableId, table: &DeltaTable, ctx: &SessionContext) -> Result<DataFrame> {
    ctx.read_table(provider(id, table, ctx).await?)
        .map_err(id.query_err("read"))
}

/// Every row of the table's current version.
pub async fn read_all(id: &TableId, table: &DeltaTable) -> Result<Vec<RecordBatch>> {
    let ctx = SessionContext::new();
    frame(id, table, &ctx)
        .await?
        .collect()
        .await
        .map_err(id.query_err("read"))
}

/// A column as plain `Utf8` strings: tables may come back as `Utf8View` or dictionaries.
pub fn strings(batch: &RecordBatch, name: &str) -> Result<deltalake::arrow::array::StringArray> {
    cast_column(batch, name, &deltalake::arrow::datatypes::DataType::Utf8)
        .map(|a| a.as_string::<i32>().clone())
}

/// A column as `Float64` values.
pub fn float64s(batch: &RecordBatch, name: &str) -> Result<deltalake::arrow::array::Float64Array> {
    cast_column(batch, name, &deltalake::arrow::datatypes::DataType::Float64).map(|a| {
        a.as_primitive::<deltalake::arrow::datatypes::Float64Type>()
            .clone()
    })
}

/// A column as `Decimal128` values of `kind` (a `DataType::Decimal128`).
pub fn decimals(
    batch: &RecordBatch,
    name: &str,
    kind: deltalake::arrow::datatypes::DataType,
) -> Result<deltalake::arrow::array::Decimal128Array> {
    cast_column(batch, name, &kind).map(|a| {
        a.as_primitive::<deltalake::arrow::datatypes::Decimal128Type>()
            .clone()
    })
}

/// A column as `Int64` values.
pub fn int64s(batch: &RecordBatch, name: &str) -> Result<deltalake::arrow::array::Int64Array> {
    cast_column(batch, name, &deltalake::arrow::datatypes::DataType::Int64).map(|a| {
        a.as_primitive::<deltalake::arrow::datatypes::Int64Type>()
            .clone()
    })
}

fn cast_column(
    batch: &RecordBatch,
    name: &str,
    to: &deltalake::arrow::datatypes::DataType,
) -> Result<deltalake::arrow::array::ArrayRef> {
    let column = batch.column_by_name(name).ok_or_else(|| Error::Arrow {
        context: format!("column {name}"),
        source: deltalake::arrow::error::ArrowError::SchemaError(format!("no column {name}")),
    })?;
    deltalake::arrow::compute::cast(column, to).map_err(|e| Error::Arrow {
        context: format!("column {name}"),
        source: e,
    })
}

/// A batch with exactly `schema`'s columns, in its order and types (tables read back may use
/// other string encodings, such as `Utf8View`).
pub fn conform(
    batch: &RecordBatch,
    schema: &deltalake::arrow::datatypes::SchemaRef,
) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| cast_column(batch, f.name(), f.data_type()))
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Arrow {
        context: "conform a batch to its table's schema".into(),
        source: e,
    })
}

// What a user can act on in deltalake's errors: a race lost to another writer (exit 3, with
// the winner named), a data file gone from the table's folder (named, not a debug dump).

/// Whether a Delta error says another writer committed the version this commit needed: an
/// existing version, a conflict with a commit made meanwhile, or no retry left.
fn is_lost_race(e: &DeltaTableError) -> bool {
    use deltalake::kernel::transaction::{CommitConflictError as Conflict, TransactionError};
    match e {
        DeltaTableError::VersionAlreadyExists(_) => true,
        DeltaTableError::Transaction { source } => match source {
            TransactionError::VersionAlreadyExists(_) | TransactionError::MaxCommitAttempts(_) => {
                true
            }
            TransactionError::CommitConflict(conflict) => matches!(
                conflict,
                Conflict::ConcurrentAppend
                    | Conflict::ConcurrentDeleteRead
                    | Conflict::ConcurrentDeleteDelete
                    | Conflict::MetadataChanged
                    | Conflict::ConcurrentTransaction
                    | Conflict::ProtocolChanged(_)
            ),
            _ => false,
        },
        _ => false,
    }
}

impl TableId {
    fn lost_race(&self) -> Error {
        Error::LostRace {
            table: self.name.clone(),
            location: self.url.to_string(),
            winner: None,
        }
    }

    /// [`Error::FileMissing`] if `e` (or a cause of it) is a data file that is not found.
    fn file_missing(&self, e: &(dyn std::error::Error + 'static)) -> Option<Error> {
        let path = missing_path(e)?;
        // A commit file missing is another story (a log read while it changed).
        (!path.contains("_delta_log")).then(|| Error::FileMissing {
            table: self.name.clone(),
            path,
        })
    }
}

/// The path of the object an error (or a cause of it) did not find. Parquet's reader keeps
/// object_store's error only as text ("Object at location P not found: ..."): read it there too.
fn missing_path(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if let Some(deltalake::ObjectStoreError::NotFound { path, .. }) = e.downcast_ref() {
            return Some(path.clone());
        }
        let text = e.to_string();
        if let Some((_, rest)) = text.split_once("Object at location ")
            && let Some((path, _)) = rest.split_once(" not found")
        {
            return Some(path.to_string());
        }
        cause = e.source();
    }
    None
}

/// Name the winner of a race this run lost: the job that writes the table (or `restore`) and
/// the latest version, read from the table's log. Any other error is returned as it is.
pub async fn name_the_winner(error: Error) -> Error {
    match error {
        Error::LostRace {
            table,
            location,
            winner: None,
        } => {
            let winner = winner(&table, &location).await;
            Error::LostRace {
                table,
                location,
                winner,
            }
        }
        other => other,
    }
}

async fn winner(table: &str, location: &str) -> Option<Winner> {
    let url = Url::parse(location).ok()?;
    let log_store = DeltaTableBuilder::from_url(url)
        .ok()?
        .build_storage()
        .ok()?;
    let version = log_store.get_latest_version(0).await.ok()?;
    let bytes = log_store.read_commit_entry(version).await.ok()??;
    let operation = deltalake::logstore::get_actions(version, &bytes)
        .ok()?
        .into_iter()
        .find_map(|action| match action {
            Action::CommitInfo(info) => info.operation,
            _ => None,
        });
    let job = match operation.as_deref() {
        Some("RESTORE") => "restore",
        _ => crate::warehouse::writer_of(table)?,
    };
    Some(Winner {
        job: job.to_string(),
        version,
    })
}

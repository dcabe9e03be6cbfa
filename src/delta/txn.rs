//! Application transactions: the versions a job consumed (`txn` actions, read back by app id),
//! commits that only record them, and the appends that carry them (one commit of files
//! encoded in parallel; an append-only side table written once per transaction).

use deltalake::DeltaTable;
use deltalake::DeltaTableError;
use deltalake::arrow::array::RecordBatch;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};

use super::{TableId, open_or_create};
use crate::catalog::{AppId, Table};
use crate::error::Result;

/// The version an application recorded in the table's transactions (`txn` actions), if any.
pub async fn app_version(id: &TableId, table: &DeltaTable, app_id: &str) -> Result<Option<i64>> {
    table
        .snapshot()
        .map_err(id.err("load"))?
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(id.err("read application transactions"))
}

/// The version of `app.upstream` that `app.consumer` recorded in `table` (None: none, or no
/// table).
pub async fn consumed(id: &TableId, table: Option<&DeltaTable>, app: AppId) -> Result<Option<i64>> {
    match table {
        Some(table) => app_version(id, table, &app.id()).await,
        None => Ok(None),
    }
}

/// A transaction recording that `app.consumer` consumed `version` of `app.upstream`.
pub fn transaction(app: AppId, version: u64) -> Transaction {
    Transaction::new(app.id(), version as i64)
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

/// Replace every row of `table` with `batches`, as one commit carrying `props` (a full
/// refresh): earlier versions keep the old rows for time travel. No retry: a commit made
/// meanwhile (a compaction) makes it lose (`delta::rewrite`).
pub async fn replace_all(
    id: &TableId,
    table: DeltaTable,
    schema: deltalake::arrow::datatypes::SchemaRef,
    batches: Vec<RecordBatch>,
    props: CommitProperties,
) -> Result<DeltaTable> {
    let mut batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    if batches.is_empty() {
        // Overwrite with nothing: the write needs a batch to know the schema.
        batches.push(RecordBatch::new_empty(schema));
    }
    table
        .write(batches)
        .with_save_mode(SaveMode::Overwrite)
        .with_commit_properties(props.with_max_retries(super::rewrite::NO_RETRY))
        .await
        .map_err(id.err("replace every row"))
}

/// Append rows to an append-only side table (created if needed), once per application
/// transaction: a table that already records `txn` (or a later version of its app) is left
/// as it is, so a job that crashed after this append can run again.
pub async fn append_once(
    id: &TableId,
    table: &Table,
    batches: Vec<RecordBatch>,
    txn: Transaction,
    props: CommitProperties,
) -> Result<()> {
    let (table, _) = open_or_create(id, table).await?;
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

/// Rows written as data files of a table ahead of the one commit that names them all
/// ([`Staged::commit`]), part by part, so memory holds one part, not every row. Until then no
/// reader sees them; inside [`super::orphans::scoped`] each file is noted as soon as it is
/// written, so a job that fails before its commit deletes them. The table need not exist yet.
pub struct Staged {
    id: TableId,
    of: &'static Table,
    writer: Option<RecordBatchWriter>,
    adds: Vec<Add>,
    rows: u64,
    started: std::time::Instant,
}

impl Staged {
    pub fn new(id: &TableId, of: &'static Table) -> Self {
        Self {
            id: id.clone(),
            of,
            writer: None,
            adds: Vec::new(),
            rows: 0,
            started: std::time::Instant::now(),
        }
    }

    /// The rows staged so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Write one part: `batches` (with the table's columns) as one data file, now.
    pub async fn write(&mut self, batches: &[RecordBatch]) -> Result<()> {
        let id = &self.id;
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => self.writer.insert(
                RecordBatchWriter::try_new(
                    id.url.as_str(),
                    self.of.schema(),
                    None,
                    Some(id.options.as_ref().clone()),
                )
                .map_err(id.err("write Parquet"))?
                .with_writer_properties(self.of.writer_properties()),
            ),
        };
        let mut rows = 0;
        for batch in batches.iter().filter(|b| b.num_rows() > 0) {
            writer
                .write(batch.clone())
                .await
                .map_err(id.err("write Parquet"))?;
            rows += batch.num_rows() as u64;
        }
        let adds = writer.flush().await.map_err(id.err("write Parquet"))?;
        let paths: Vec<String> = adds.iter().map(|a| a.path.clone()).collect();
        super::orphans::note_written(id, &paths);
        self.adds.extend(adds);
        self.rows += rows;
        Ok(())
    }

    /// Commit every part staged to `table` as one version carrying `props`: an append, or
    /// (`replace`) in place of every row the table has (a full refresh, history kept; no
    /// retry: a commit made meanwhile makes it lose, as [`replace_all`]).
    pub async fn commit(
        self,
        table: DeltaTable,
        replace: bool,
        props: CommitProperties,
    ) -> Result<DeltaTable> {
        let Self {
            id,
            adds,
            rows,
            started,
            ..
        } = self;
        let id = &id;
        let paths: Vec<String> = adds.iter().map(|a| a.path.clone()).collect();
        // On disk before the (synced) commit names them.
        super::store::sync_local_files(id, &paths).await?;
        let removes: Vec<Action> = match replace {
            false => Vec::new(),
            true => table
                .snapshot()
                .map_err(id.err("load"))?
                .log_data()
                .iter()
                .map(|file| Action::Remove(file.remove_action(true)))
                .collect(),
        };
        let props = props.with_metadata([(
            "operationMetrics".to_string(),
            serde_json::json!({
                "num_added_files": adds.len(),
                "num_removed_files": removes.len(),
                "num_partitions": 0,
                "num_added_rows": rows,
                "execution_time_ms": started.elapsed().as_millis() as u64,
            }),
        )]);
        let mut actions = removes;
        actions.extend(adds.into_iter().map(Action::Add));
        if !replace {
            return commit_append(id, table, actions, props, "append").await;
        }
        let mut table = table;
        let snapshot = table.snapshot().map_err(id.err("load"))?;
        CommitBuilder::from(props.with_max_retries(super::rewrite::NO_RETRY))
            .with_actions(actions)
            .build(
                Some(snapshot),
                table.log_store(),
                DeltaOperation::Write {
                    mode: SaveMode::Overwrite,
                    partition_by: None,
                    predicate: None,
                },
            )
            .await
            .map_err(id.err("replace every row"))?;
        table
            .update_state()
            .await
            .map_err(id.err("replace every row"))?;
        Ok(table)
    }
}

//! `bronze`: new tracker files into `fact_heartrate_bronze`, one Delta commit per micro-batch,
//! every source row exactly once, whatever instant the process is killed at.
//!
//! The protocol (docs/ARCHITECTURE.md, "Exactly-once bronze"): plan batch N in the checkpoint's
//! write-ahead log, read its files and write Parquet, commit with the application transaction
//! (stream id, N), mark N done. On start, an unfinished batch N is finished: if the table's
//! transaction for the stream already has N, only the done marker is missing; otherwise the
//! batch is redone with exactly its planned files. A file is never planned twice.
//!
//! What cannot be read goes to `fact_heartrate_bronze_quarantine`, committed with the same
//! transaction before bronze, so it too holds each batch once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use deltalake::DeltaTable;
use deltalake::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use futures::StreamExt;
use serde::Serialize;

use crate::delta::append::{AppendCommit, AppendLog};
use crate::delta::{self, TableId};
use crate::error::{Error, Result};
use crate::output::{Report, version_change};
use crate::source::discover::{self, Completeness, SourceFile};
use crate::source::json;
use crate::stream::checkpoint::{Binding, Checkpoint, Done, Plan, Recovered};
use crate::stream::failpoint::{failpoint, points};
use crate::stream::progress::{Durations, Progress, SinkProgress, SourceProgress};
use crate::stream::trigger::Trigger;
use crate::warehouse::{DataDir, Warehouse, tables};

mod ahead;

use ahead::{Ahead, Prepared};

/// What to do with a file or element that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BadFiles {
    /// Keep it in the quarantine table, with the reason, and go on.
    Quarantine,
    /// Stop with an error before the batch commits.
    Fail,
}

#[derive(Debug, Clone)]
pub struct BronzeOptions {
    /// Files per micro-batch; `None` takes every new file in one batch.
    pub max_files_per_trigger: Option<usize>,
    pub trigger: Trigger,
    pub bad_files: BadFiles,
    pub completeness: Completeness,
    /// The source folder has moved on purpose: bind the checkpoint to the new one.
    pub source_moved: bool,
}

impl Default for BronzeOptions {
    fn default() -> Self {
        Self {
            max_files_per_trigger: Some(1),
            trigger: Trigger::AvailableNow,
            bad_files: BadFiles::Quarantine,
            completeness: Completeness::default(),
            source_moved: false,
        }
    }
}

/// What a `bronze` run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BronzeReport {
    pub table: String,
    pub stream_id: String,
    pub batches: u64,
    pub files: u64,
    pub rows: u64,
    pub quarantined_rows: u64,
    /// Batches an earlier run had planned and this run finished.
    pub recovered_batches: u64,
    pub version_before: Option<u64>,
    pub version_after: u64,
    pub duration_ms: u64,
    /// Warnings also printed on stderr (bad files, files passed over, a rebuilt checkpoint).
    pub warnings: Vec<String>,
}

impl Report for BronzeReport {
    fn summary(&self) -> String {
        let version = version_change(self.version_before, Some(self.version_after));
        let recovered = if self.recovered_batches > 0 {
            format!(
                " ({} finished after an interrupted run)",
                self.recovered_batches
            )
        } else {
            String::new()
        };
        format!(
            "bronze: {} batches{recovered}, {} files, {} rows, {} quarantined; {} {} ({} ms)",
            self.batches,
            self.files,
            self.rows,
            self.quarantined_rows,
            self.table,
            version,
            self.duration_ms
        )
    }
}

/// Hooks a caller gives the stream to show what it does.
pub trait Observer {
    /// New files were found; `pending` of them wait for batches.
    fn discovered(&mut self, _pending: usize) {}
    /// A batch is done.
    fn batch(&mut self, _progress: &Progress) {}
    /// Something a user must know (a bad file, a rebuilt checkpoint).
    fn warn(&mut self, _message: &str) {}
}

/// A bronze table made before rows carried their delivery position (`_position`) cannot tell
/// silver which delivery of a reading is the last: refuse it rather than guess.
fn require_position(id: &TableId, table: &DeltaTable) -> Result<()> {
    let has = table
        .snapshot()
        .map_err(id.err("load"))?
        .schema()
        .field(json::POSITION)
        .is_some();
    if has {
        return Ok(());
    }
    Err(Error::Refused {
        table: id.name.clone(),
        message: format!(
            "this table was made by an earlier medallion whose rows do not carry their delivery \
             position ({}), which silver needs to keep the last delivery of a reading; \
             rebuild the warehouse from the source files: remove the whole warehouse ({}, \
             with every table and the stream's checkpoint, since silver and its waiting rows \
             were built from this bronze) and rerun",
            json::POSITION,
            id.url
                .join("../..")
                .map_or_else(|_| id.url.to_string(), |u| u.to_string())
        ),
    })
}

/// The tracker folder, canonical, checked before anything is written: it must exist (a typo
/// in `--data` would otherwise ingest nothing into a new, empty table; an empty folder is fine)
/// and be the folder the stream's checkpoint is bound to, unless `source_moved`.
pub fn check_source(warehouse: &Warehouse, data: &DataDir, source_moved: bool) -> Result<PathBuf> {
    let tracker = data.tracker_dir();
    let folder = match std::fs::metadata(&tracker) {
        Ok(m) if m.is_dir() => {
            std::fs::canonicalize(&tracker).map_err(Error::io("resolve", &tracker))?
        }
        Ok(_) => {
            return Err(Error::Usage(format!(
                "source folder {} is not a folder",
                tracker.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let root = data.root();
            let hint = if root.is_dir() {
                format!(
                    " (--data {} holds no healthcare/streaming/tracker/: run `medallion \
                     generate` to write the lab's data, or give --data the folder that holds it)",
                    root.display()
                )
            } else {
                format!(
                    " (--data {} does not exist: check its spelling, or run `medallion \
                     generate` to write the lab's data there)",
                    root.display()
                )
            };
            return Err(Error::SourceFolderMissing {
                path: tracker,
                hint,
            });
        }
        Err(e) => return Err(Error::io("read", &tracker)(e)),
    };
    let checkpoint_dir = warehouse.checkpoint_dir(tables::BRONZE)?;
    if let Binding::Other(bound) = Checkpoint::binding(&checkpoint_dir, &folder)?
        && !source_moved
    {
        return Err(Error::Usage(format!(
            "the bronze stream (checkpoint {}) reads source folder {}, but --data gives {}: a \
             stream knows files by name, so it would skip the files of the new folder whose \
             names it has seen and ingest the others. Give --data the folder it reads; if the \
             source has moved there on purpose, run again with --source-moved (files whose \
             names were already ingested are not read again)",
            checkpoint_dir.display(),
            bound.display(),
            folder.display()
        )));
    }
    Ok(folder)
}

/// Stream the tracker folder into bronze until the trigger says stop.
pub async fn run(
    warehouse: &Warehouse,
    data: &DataDir,
    options: &BronzeOptions,
    observer: &mut dyn Observer,
) -> Result<BronzeReport> {
    let start = Instant::now();
    let source = check_source(warehouse, data, options.source_moved)?;
    let id = TableId::new(warehouse, tables::BRONZE);
    let (table, created) = delta::open_or_create(
        &id,
        &json::bronze_schema(),
        &[("delta.appendOnly", "true")],
        "Raw heart-rate readings, as delivered, with lineage; appended by the bronze stream",
    )
    .await?;
    require_position(&id, &table)?;
    let version_before = if created { None } else { table.version() };
    let mut report = BronzeReport {
        table: id.name.clone(),
        version_before,
        ..BronzeReport::default()
    };

    let checkpoint_dir = warehouse.checkpoint_dir(tables::BRONZE)?;
    let binding = Checkpoint::binding(&checkpoint_dir, &source)?;
    let mut checkpoint = Checkpoint::open_or_create(&checkpoint_dir)?;
    checkpoint.bind_source(&source)?;
    let bound = match binding {
        Binding::New | Binding::Same => None,
        Binding::Unrecorded => Some(format!(
            "the bronze stream's checkpoint recorded no source folder (made by an earlier \
             medallion): it is now bound to {}",
            source.display()
        )),
        Binding::Other(before) => Some(format!(
            "the bronze stream's source moved from {} to {} (--source-moved): files whose \
             names were already ingested are not read again",
            before.display(),
            source.display()
        )),
    };
    if let Some(message) = bound {
        observer.warn(&message);
        report.warnings.push(message);
    }
    // A checkpoint that has never planned a batch, on a table that has data, was lost (or its
    // rebuild was interrupted): take what the table holds as ingested before planning anything.
    let lost = checkpoint.planned()?.is_empty() && checkpoint.recovered()?.is_none();
    if lost && version_before.is_some_and(|v| v > 0) {
        let message = rebuild_checkpoint(warehouse, &id, &table, &checkpoint).await?;
        observer.warn(&message);
        report.warnings.push(message);
    }
    report.stream_id = checkpoint.stream_id().to_string();

    let mut stream = Stream {
        // Absolute, so lineage (`_source_file`, progress records) names files unambiguously.
        source_dir: std::path::absolute(data.tracker_dir())
            .map_err(Error::io("resolve", data.tracker_dir()))?,
        quarantine: TableId::new(warehouse, tables::BRONZE_QUARANTINE),
        log: AppendLog::open(id.clone(), &table, checkpoint.stream_id()).await?,
        run_id: uuid::Uuid::new_v4().to_string(),
        last_trigger: None,
        id,
        checkpoint,
        options: options.clone(),
    };
    drop(table);
    stream.check_table_has_done_batches().await?;

    // The batches, then (also after an error) the Delta checkpoint left writing.
    let outcome = stream_batches(&mut stream, options, &mut report, observer).await;
    stream.log.finish().await;
    for warning in stream.log.take_warnings() {
        observer.warn(&warning);
        report.warnings.push(warning);
    }
    outcome?;
    report.version_after = stream.log.version();
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

/// Finish the batch an earlier run left unfinished, then run triggers until the trigger says
/// stop.
async fn stream_batches(
    stream: &mut Stream,
    options: &BronzeOptions,
    report: &mut BronzeReport,
    observer: &mut dyn Observer,
) -> Result<()> {
    // Finish the batch an earlier run planned and did not mark done.
    let planned = stream.checkpoint.planned()?;
    if let Some(&last) = planned.last()
        && !stream.checkpoint.is_done(last)
    {
        let plan = stream.checkpoint.plan(last)?;
        let started = Instant::now();
        // Committed before the crash (only the done marker is missing), or to redo.
        let prepared = if stream.log.app_version().is_some_and(|v| v >= last) {
            None
        } else {
            let mut ahead = stream.ahead(vec![(last, plan.files.clone())]);
            Some(ahead.next(last).await?)
        };
        stream
            .run_batch(
                &plan,
                prepared,
                true,
                Timing {
                    started,
                    durations: Durations::default(),
                },
                report,
                observer,
            )
            .await?;
        report.recovered_batches += 1;
    }
    let mut next_batch = match planned.last() {
        Some(last) => last + 1,
        None => stream
            .checkpoint
            .recovered()?
            .map_or(0, |r| r.next_batch_id),
    };

    let stop = stop_flag(options.trigger);
    let mut seen = discover::Seen::from_checkpoint(&stream.checkpoint)?;
    let per_batch = options.max_files_per_trigger.unwrap_or(usize::MAX).max(1);
    loop {
        let list_start = Instant::now();
        let discovery =
            discover::discover(&stream.source_dir, &mut seen, options.completeness).await?;
        for warning in discovery.warnings {
            observer.warn(&warning);
            report.warnings.push(warning);
        }
        let files = discovery.files;
        let mut listing_ms = list_start.elapsed().as_millis() as u64;
        if !files.is_empty() {
            observer.discovered(files.len());
        }
        let mut batches: Vec<(i64, Vec<SourceFile>)> = files
            .chunks(per_batch)
            .zip(next_batch..)
            .map(|(chunk, batch_id)| (batch_id, chunk.to_vec()))
            .collect();
        if options.trigger == Trigger::Once {
            batches.truncate(1);
        }
        let mut ahead = stream.ahead(batches.clone());
        let run = async {
            for (batch_id, files) in batches {
                let mut durations = Durations {
                    latest_offset: std::mem::take(&mut listing_ms),
                    ..Durations::default()
                };
                let plan = Plan {
                    batch_id,
                    timestamp: chrono::Utc::now().timestamp_millis(),
                    files,
                };
                let wal_start = Instant::now();
                let started = wal_start;
                stream.checkpoint.write_plan(&plan)?;
                durations.wal_commit = wal_start.elapsed().as_millis() as u64;
                failpoint(points::AFTER_PLAN);
                seen.record(batch_id, &plan.files);
                next_batch = batch_id + 1;
                let prepared = ahead.next(batch_id).await?;
                stream
                    .run_batch(
                        &plan,
                        Some(prepared),
                        false,
                        Timing { started, durations },
                        report,
                        observer,
                    )
                    .await?;
                if stop.load(Ordering::SeqCst) {
                    return Ok(true);
                }
            }
            Ok::<_, Error>(false)
        };
        let stopped = run.await;
        ahead.discard().await;
        if stopped? {
            break;
        }
        match options.trigger {
            // Like Spark's: the files there when the run started, then stop.
            Trigger::AvailableNow | Trigger::Once => break,
            Trigger::Every(interval) => {
                if wait(interval, &stop).await {
                    break;
                }
            }
        }
    }

    Ok(())
}

/// The state of a running stream.
struct Stream {
    id: TableId,
    quarantine: TableId,
    source_dir: PathBuf,
    checkpoint: Checkpoint,
    log: AppendLog,
    options: BronzeOptions,
    run_id: String,
    last_trigger: Option<Instant>,
}

/// When a batch's time on the stream began, and the durations measured so far.
struct Timing {
    started: Instant,
    durations: Durations,
}

struct QuarantineRow {
    source_file: String,
    line: Option<u64>,
    error: String,
    raw: String,
}

impl Stream {
    /// A checkpoint whose done batches are missing from the table (the table was deleted or
    /// replaced) would skip their files for ever: refuse, and say what to do.
    async fn check_table_has_done_batches(&self) -> Result<()> {
        let planned = self.checkpoint.planned()?;
        let Some(last_done) = planned.iter().rev().find(|b| self.checkpoint.is_done(**b)) else {
            return Ok(());
        };
        let behind = |v: Option<i64>| v.is_none_or(|v| v < *last_done);
        if behind(self.log.app_version()) {
            // Another stream may have committed it since this one loaded the table: look again.
            let latest = match delta::open(&self.id).await? {
                Some(table) => {
                    delta::app_version(&self.id, &table, self.checkpoint.stream_id()).await?
                }
                None => None,
            };
            if !behind(latest) {
                return Ok(());
            }
            return Err(Error::Checkpoint {
                path: self.checkpoint.dir().to_path_buf(),
                message: format!(
                    "it says batch {last_done} of stream {} is done, but table {} does not hold \
                     it: the table was replaced. Remove the checkpoint folder to ingest every \
                     file again into the new table.",
                    self.checkpoint.stream_id(),
                    self.id.name
                ),
            });
        }
        Ok(())
    }

    /// Start reading and writing `batches` ahead of their commits.
    fn ahead(&self, batches: Vec<(i64, Vec<SourceFile>)>) -> Ahead {
        Ahead::start(
            &self.id,
            self.log.object_store(),
            self.source_dir.clone(),
            batches,
        )
    }

    /// Commit one planned batch, prepared (read and written as Parquet), then mark it done.
    /// `prepared` is `None` for a batch committed before a crash: only its done marker is
    /// missing.
    async fn run_batch(
        &mut self,
        plan: &Plan,
        prepared: Option<Prepared>,
        recovering: bool,
        timing: Timing,
        report: &mut BronzeReport,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        let Timing {
            started,
            mut durations,
        } = timing;
        let batch_id = plan.batch_id;
        let (rows, quarantined) = match prepared {
            None => (0, 0),
            Some(data) => {
                for row in &data.quarantine {
                    let message = format!(
                        "{}{}: {} (quarantined in {})",
                        row.source_file,
                        row.line.map(|l| format!(":{l}")).unwrap_or_default(),
                        row.error,
                        self.quarantine.name
                    );
                    if self.options.bad_files == BadFiles::Fail {
                        ahead::delete(self.log.object_store().as_ref(), &data.adds).await;
                        return Err(Error::SourceParse {
                            path: PathBuf::from(&row.source_file),
                            line: row.line,
                            message: format!(
                                "{} (--bad-files fail: batch {batch_id} not committed)",
                                row.error
                            ),
                        });
                    }
                    observer.warn(&message);
                    report.warnings.push(message);
                }
                durations.get_batch = data.millis;
                failpoint(points::BEFORE_COMMIT);

                let commit_start = Instant::now();
                if !data.quarantine.is_empty()
                    && let Err(e) = self
                        .commit_quarantine(batch_id, &data.quarantine, data.ingested_at)
                        .await
                {
                    // Bronze's files of this batch will not be committed by this run.
                    ahead::delete(self.log.object_store().as_ref(), &data.adds).await;
                    return Err(e);
                }
                failpoint(points::BETWEEN_COMMITS);
                let info = [
                    ("batchId".to_string(), serde_json::json!(batch_id)),
                    (
                        "sourceFiles".to_string(),
                        serde_json::json!(plan.files.iter().map(|f| &f.name).collect::<Vec<_>>()),
                    ),
                    (
                        "source".to_string(),
                        serde_json::json!(self.source_dir.display().to_string()),
                    ),
                ]
                .into_iter()
                .collect();
                self.log
                    .commit(AppendCommit {
                        adds: data.adds,
                        batch_id,
                        rows: data.rows as usize,
                        info,
                    })
                    .await?;
                durations.add_batch = commit_start.elapsed().as_millis() as u64;
                for warning in self.log.take_warnings() {
                    observer.warn(&warning);
                    report.warnings.push(warning);
                }
                failpoint(points::AFTER_COMMIT);
                (data.rows, data.quarantine.len() as u64)
            }
        };

        let done_start = Instant::now();
        self.checkpoint.mark_done(&Done {
            batch_id,
            table_version: self.log.version(),
        })?;
        durations.commit_offsets = done_start.elapsed().as_millis() as u64;
        // From the plan (or the wait for the batch's data) to done, plus the listing: the
        // batch's time on the stream. Its reading and Parquet (`getBatch`) overlapped the
        // batches before it.
        durations.trigger_execution =
            started.elapsed().as_millis() as u64 + durations.latest_offset;

        let progress = self.progress(plan, rows, quarantined, recovering, durations);
        self.checkpoint.append_progress(&progress)?;
        observer.batch(&progress);
        report.batches += 1;
        report.files += plan.files.len() as u64;
        report.rows += rows;
        report.quarantined_rows += quarantined;
        Ok(())
    }

    /// Append the batch's quarantine rows, once: the commit carries the stream's transaction,
    /// and a batch the quarantine table already has is not written again.
    async fn commit_quarantine(
        &self,
        batch_id: i64,
        rows: &[QuarantineRow],
        quarantined_at: i64,
    ) -> Result<()> {
        let id = &self.quarantine;
        let n = rows.len();
        let batch = RecordBatch::try_new(
            quarantine_schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| &r.source_file),
                )),
                Arc::new(Int64Array::from(vec![batch_id; n])),
                Arc::new(Int64Array::from_iter(
                    rows.iter().map(|r| r.line.map(|l| l as i64)),
                )),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.error))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.raw))),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![quarantined_at; n]).with_timezone("UTC"),
                ),
            ],
        )
        .map_err(|e| Error::Arrow {
            context: format!("table {}: quarantine rows", id.name),
            source: e,
        })?;
        delta::append_once(
            id,
            &quarantine_schema(),
            "Tracker files and elements the bronze stream could not read, with the reason",
            vec![batch],
            Transaction::new(self.checkpoint.stream_id(), batch_id),
            CommitProperties::default()
                .with_metadata([("batchId".to_string(), serde_json::json!(batch_id))]),
        )
        .await
    }

    fn progress(
        &mut self,
        plan: &Plan,
        rows: u64,
        quarantined: u64,
        recovering: bool,
        durations: Durations,
    ) -> Progress {
        let now = Instant::now();
        let since_last = self
            .last_trigger
            .map(|t| now.duration_since(t).as_secs_f64())
            .unwrap_or(0.0);
        self.last_trigger = Some(now);
        let per_second = |seconds: f64| {
            if seconds > 0.0 {
                rows as f64 / seconds
            } else {
                0.0
            }
        };
        Progress {
            id: self.checkpoint.stream_id().to_string(),
            run_id: self.run_id.clone(),
            name: self.id.name.clone(),
            timestamp: chrono::DateTime::from_timestamp_millis(plan.timestamp)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            batch_id: plan.batch_id,
            num_input_rows: rows,
            input_rows_per_second: per_second(since_last),
            processed_rows_per_second: per_second(durations.trigger_execution as f64 / 1000.0),
            sources: vec![SourceProgress {
                description: format!("FileStreamSource[{}]", self.source_dir.display()),
                start_offset: (plan.batch_id > 0).then(|| plan.batch_id - 1),
                end_offset: plan.batch_id,
                num_input_rows: rows + quarantined,
                files: plan.files.iter().map(|f| f.name.clone()).collect(),
            }],
            sink: SinkProgress {
                description: format!("DeltaSink[{}]", self.id.url),
                num_output_rows: rows,
            },
            duration_ms: durations,
            num_quarantined_rows: quarantined,
            table_version: self.log.version(),
            recovered: recovering,
        }
    }
}

/// Open bronze, or create it (append-only). Two streams creating it at once both end with
/// the one table.
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source_file", DataType::Utf8, false),
        Field::new("batch_id", DataType::Int64, false),
        Field::new("line", DataType::Int64, true),
        Field::new("error", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
        Field::new(
            "quarantined_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

/// The checkpoint was lost but the table has data: take the files the table (and its
/// quarantine) already holds as seen, so nothing is ingested twice, and continue the batch ids.
async fn rebuild_checkpoint(
    warehouse: &Warehouse,
    id: &TableId,
    table: &DeltaTable,
    checkpoint: &Checkpoint,
) -> Result<String> {
    let mut files = HashSet::new();
    let mut next_batch_id = 0;
    // The batches bronze committed, from its commits' lineage (a batch of bad files only has
    // no rows, but has its commit).
    let mut committed = HashSet::new();
    let mut history = table.history(None);
    while let Some(info) = history.next().await {
        let info = info.map_err(id.err("read the history"))?;
        if let Some(batch) = info.info.get("batchId").and_then(serde_json::Value::as_i64) {
            committed.insert(batch);
            next_batch_id = next_batch_id.max(batch + 1);
        }
    }
    drop(history);
    let quarantine_id = TableId::new(warehouse, tables::BRONZE_QUARANTINE);
    let quarantine = delta::open(&quarantine_id).await?;
    let sources = [
        (id, Some(table), "_source_file", "_batch_id"),
        (
            &quarantine_id,
            quarantine.as_ref(),
            "source_file",
            "batch_id",
        ),
    ];
    for (index, (table_id, table, file_column, batch_column)) in sources.into_iter().enumerate() {
        let Some(table) = table else { continue };
        let ctx = SessionContext::new();
        ctx.register_table("t", delta::provider(table_id, table, &ctx).await?)
            .map_err(table_id.query_err("read lineage"))?;
        let sql = format!("SELECT DISTINCT {file_column} AS f, {batch_column} AS b FROM t");
        let frame = ctx
            .sql(&sql)
            .await
            .map_err(table_id.query_err("read lineage"))?;
        let batches = frame
            .collect()
            .await
            .map_err(table_id.query_err("read lineage"))?;
        for batch in batches {
            let names = delta::strings(&batch, "f")?;
            let batch_ids = delta::int64s(&batch, "b")?;
            for (name, batch_id) in names.iter().zip(batch_ids.iter()) {
                if let (Some(name), Some(batch_id)) = (name, batch_id) {
                    next_batch_id = next_batch_id.max(batch_id + 1);
                    // A file known only to the quarantine table counts as ingested only if
                    // its batch reached bronze: else its good rows are not in bronze yet.
                    if index == 0 || committed.contains(&batch_id) {
                        files.insert(file_name(name));
                    }
                }
            }
        }
    }
    let mut names: Vec<String> = files.into_iter().collect();
    names.sort();
    let message = format!(
        "the checkpoint of {} was missing: rebuilt it from the table, which holds {} source \
         files; they will not be ingested again (new stream id {}, batches from {})",
        id.name,
        names.len(),
        checkpoint.stream_id(),
        next_batch_id
    );
    checkpoint.write_recovered(&Recovered {
        files: names,
        next_batch_id,
    })?;
    Ok(message)
}

fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}

/// A flag set by SIGINT or SIGTERM, for `every=` streams (which stop after the current batch).
fn stop_flag(trigger: Trigger) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    if let Trigger::Every(_) = trigger {
        let flag = stop.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
            flag.store(true, Ordering::SeqCst);
        });
    }
    stop
}

/// Sleep for `interval`, waking early when asked to stop. Returns whether to stop.
async fn wait(interval: std::time::Duration, stop: &AtomicBool) -> bool {
    let step = std::time::Duration::from_millis(50);
    let until = Instant::now() + interval;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        tokio::time::sleep(step.min(until - Instant::now())).await;
    }
    stop.load(Ordering::SeqCst)
}

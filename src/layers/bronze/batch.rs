//! One batch of the stream, once planned and prepared: its quarantine rows, then its commit
//! to bronze with the stream's transaction (stream id, batch id), its done marker, and its
//! progress record.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use deltalake::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;

use super::ahead::{self, Prepared};
use super::stream::{Stream, Timing};
use super::{BadFiles, BronzeReport, Observer};
use crate::catalog;
use crate::delta::{self, append::AppendCommit};
use crate::error::{Error, Result};
use crate::failpoint::{failpoint, points};
use crate::stream::checkpoint::{Done, Plan};
use crate::stream::progress::{Backlog, Durations, Offset, Progress, SinkProgress, SourceProgress};

/// A file or element the stream could not read, for the quarantine table.
pub(super) struct QuarantineRow {
    pub source_file: String,
    pub line: Option<u64>,
    pub error: String,
    pub raw: String,
}

impl Stream {
    /// Commit one planned batch, prepared (read and written as Parquet), then mark it done.
    /// `prepared` is `None` for a batch committed before a crash: only its done marker is
    /// missing.
    pub(super) async fn run_batch(
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
            backlog,
        } = timing;
        let batch_id = plan.batch_id;
        let (rows, quarantined, rescued) = match prepared {
            None => (0, 0, 0),
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
                        serde_json::json!(self.source.folder.display()),
                    ),
                    (
                        "sourceName".to_string(),
                        serde_json::json!(self.source.name),
                    ),
                ]
                .into_iter()
                .collect();
                let committed = self
                    .log
                    .commit(AppendCommit {
                        adds: data.adds.clone(),
                        batch_id,
                        rows: data.rows as usize,
                        info,
                    })
                    .await;
                if let Err(e) = committed {
                    // Lost to another writer: nothing of this batch is in the table, so its
                    // files are this run's to delete. After any other failure the commit may
                    // have landed: they stay (an orphan is harmless, a deleted file is not).
                    if matches!(e, Error::Conflict { .. } | Error::LostRace { .. }) {
                        ahead::delete(self.log.object_store().as_ref(), &data.adds).await;
                    }
                    return Err(e);
                }
                durations.add_batch = commit_start.elapsed().as_millis() as u64;
                for warning in self.log.take_warnings() {
                    observer.warn(&warning);
                    report.warnings.push(warning);
                }
                failpoint(points::AFTER_COMMIT);
                (data.rows, data.quarantine.len() as u64, data.rescued)
            }
        };

        let done_start = Instant::now();
        self.checkpoint
            .mark_done(&Done {
                batch_id,
                table_version: self.log.version(),
            })
            .await?;
        durations.commit_offsets = done_start.elapsed().as_millis() as u64;
        if plan.clean_source.is_some() {
            failpoint(points::AFTER_DONE);
            self.clean(plan, report, observer).await;
        }
        // From the plan (or the wait for the batch's data) to done, plus the listing: the
        // batch's time on the stream. Its reading and Parquet (`getBatch`) overlapped the
        // batches before it.
        durations.trigger_execution =
            started.elapsed().as_millis() as u64 + durations.latest_offset;

        let mut progress = self.progress(plan, (rows, quarantined), recovering, durations, backlog);
        progress.num_rescued_rows = rescued;
        self.checkpoint.append_progress(&progress).await?;
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
            catalog::BRONZE_QUARANTINE.schema(),
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
            &catalog::BRONZE_QUARANTINE,
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
        (rows, quarantined): (u64, u64),
        recovering: bool,
        durations: Durations,
        backlog: Backlog,
    ) -> Progress {
        let now = Instant::now();
        let since_last = self
            .last_trigger
            .map(|t| now.duration_since(t).as_secs_f64())
            .unwrap_or(0.0);
        self.last_trigger = Some(now);
        // Finite, one decimal, as Spark writes them (it leaves out a rate it cannot compute,
        // which PySpark's reader then refuses: 0 here).
        let per_second = |seconds: f64| {
            let rate = (rows + quarantined) as f64 / seconds;
            if seconds > 0.0 && rate.is_finite() {
                (rate * 10.0).round() / 10.0
            } else {
                0.0
            }
        };
        let input_rows_per_second = per_second(since_last);
        let processed_rows_per_second = per_second(durations.trigger_execution as f64 / 1000.0);
        Progress {
            id: self.checkpoint.stream_id().to_string(),
            run_id: self.run_id.clone(),
            name: self.id.name.clone(),
            timestamp: chrono::DateTime::from_timestamp_millis(plan.timestamp)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            batch_id: plan.batch_id,
            batch_duration: durations.trigger_execution,
            num_input_rows: rows + quarantined,
            input_rows_per_second,
            processed_rows_per_second,
            state_operators: Vec::new(),
            sources: vec![SourceProgress {
                description: format!("FileStreamSource[{}]", self.source.folder.display()),
                start_offset: (plan.batch_id > 0).then(|| Offset {
                    log_offset: plan.batch_id - 1,
                }),
                end_offset: Offset {
                    log_offset: plan.batch_id,
                },
                latest_offset: None,
                num_input_rows: rows + quarantined,
                input_rows_per_second,
                processed_rows_per_second,
                metrics: backlog.metrics(),
                files: plan.files.iter().map(|f| f.name.clone()).collect(),
            }],
            sink: SinkProgress {
                description: format!("DeltaSink[{}]", self.id.url),
                num_output_rows: rows,
                metrics: Default::default(),
            },
            duration_ms: durations,
            num_quarantined_rows: quarantined,
            num_rescued_rows: 0,
            table_version: self.log.version(),
            recovered: recovering,
        }
    }
}

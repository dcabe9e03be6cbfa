//! The trigger loop of a bronze stream: list the source folder, cut the new files into
//! batches ([`plan_batches`]), run each batch, and stop when the trigger says so (the files
//! there when the run started, one batch, or every interval until SIGINT/SIGTERM).

use std::time::Instant;

use super::ahead::Ahead;
use super::{BronzeOptions, BronzeReport, Observer, clean, recovery};
use crate::delta::append::AppendLog;
use crate::delta::{self, TableId};
use crate::error::{Error, Result};
use crate::failpoint::{failpoint, points};
use crate::source::discover::{self, SourceFile};
use crate::stream::checkpoint::{Checkpoint, Plan};
use crate::stream::progress::{Backlog, Durations};
use crate::stream::shutdown::Shutdown;
use crate::stream::state::COMPACT_EVERY;
use crate::stream::trigger::Trigger;

/// Finish the batch an earlier run left unfinished, then run triggers until the trigger says
/// stop.
pub(super) async fn stream_batches(
    stream: &mut Stream,
    options: &BronzeOptions,
    report: &mut BronzeReport,
    observer: &mut dyn Observer,
) -> Result<()> {
    // Finish the batch an earlier run planned and did not mark done.
    let planned = stream.checkpoint.planned().await?;
    recovery::finish_unfinished(stream, &planned, report, observer).await?;
    // Done batches a crash left uncleaned (their files are still in the source folder).
    stream.clean_leftovers(report, observer).await?;
    let mut next_batch = match planned.last() {
        Some(last) => last + 1,
        None => stream
            .checkpoint
            .recovered()
            .await?
            .map_or(0, |r| r.next_batch_id),
    };

    let mut shutdown = match options.trigger {
        Trigger::Every(_) => Shutdown::on_signals(),
        Trigger::AvailableNow | Trigger::Once => Shutdown::never(),
    };
    let mut seen =
        discover::Seen::from_checkpoint(&stream.checkpoint, options.max_file_age).await?;
    let per_batch = options.max_files_per_trigger.unwrap_or(usize::MAX).max(1);
    loop {
        let list_start = Instant::now();
        let discovery =
            discover::discover(&stream.source.folder, &mut seen, options.completeness).await?;
        for warning in discovery.warnings {
            observer.warn(&warning);
            report.warnings.push(warning);
        }
        let files = discovery.files;
        // Above every batch id in the table: several sources' batch ids then order their
        // deliveries as their commits do (a later re-delivery from another source wins).
        next_batch = next_batch.max(stream.log.batch_max().map_or(0, |max| max + 1));
        let mut listing_ms = list_start.elapsed().as_millis() as u64;
        if !files.is_empty() {
            observer.discovered(files.len());
        }
        let batches = plan_batches(&files, next_batch, per_batch, options.trigger);
        let mut ahead = stream.ahead(batches.clone());
        let mut left = listed(&files);
        let run = async {
            for (batch_id, batch_files) in batches {
                let mut durations = Durations {
                    latest_offset: std::mem::take(&mut listing_ms),
                    ..Durations::default()
                };
                let plan = Plan {
                    batch_id,
                    timestamp: chrono::Utc::now().timestamp_millis(),
                    files: batch_files,
                    clean_source: stream.clean_source.clone(),
                    max_file_age_ms: options.max_file_age.map(|a| a.as_millis() as u64),
                };
                let wal_start = Instant::now();
                let started = wal_start;
                stream.checkpoint.write_plan(&plan).await?;
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
                        Timing {
                            started,
                            durations,
                            backlog: backlog_after(&mut left, &plan.files),
                        },
                        report,
                        observer,
                    )
                    .await?;
                stream
                    .compact_checkpoint(batch_id, &mut seen, report, observer)
                    .await;
                // One Parquet file per batch: compact every so many, beside the stream.
                if let Some(ended) = stream.compactor.ended().await {
                    super::compact::record(ended, report, observer);
                }
                if stream.compactor.due(1) {
                    stream.compactor.start(&stream.id);
                }
                if shutdown.asked() || !observer.wants_more() {
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
                if shutdown.sleep(interval).await {
                    break;
                }
            }
        }
    }

    Ok(())
}

/// The batches of a trigger: the new files, oldest first, `per_batch` at a time, numbered from
/// `next_batch`; one batch only for `--trigger once`.
pub(super) fn plan_batches(
    files: &[SourceFile],
    next_batch: i64,
    per_batch: usize,
    trigger: Trigger,
) -> Vec<(i64, Vec<SourceFile>)> {
    let mut batches: Vec<(i64, Vec<SourceFile>)> = files
        .chunks(per_batch.max(1))
        .zip(next_batch..)
        .map(|(chunk, batch_id)| (batch_id, chunk.to_vec()))
        .collect();
    if trigger == Trigger::Once {
        batches.truncate(1);
    }
    batches
}

/// What a trigger's listing holds, files and bytes (counted once per trigger).
pub(super) fn listed(files: &[SourceFile]) -> Backlog {
    Backlog {
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.size).sum(),
    }
}

/// What is left of a trigger's listing once `batch` is taken too: Auto Loader's
/// `numFilesOutstanding` / `numBytesOutstanding`. `left` is what the batches before it left.
pub(super) fn backlog_after(left: &mut Backlog, batch: &[SourceFile]) -> Backlog {
    left.files = left.files.saturating_sub(batch.len() as u64);
    left.bytes = left
        .bytes
        .saturating_sub(batch.iter().map(|f| f.size).sum::<u64>());
    *left
}

/// The state of a running stream.
pub(super) struct Stream {
    pub id: TableId,
    pub quarantine: TableId,
    pub source: super::Source,
    pub checkpoint: Checkpoint,
    pub log: AppendLog,
    pub options: BronzeOptions,
    pub run_id: String,
    pub last_trigger: Option<Instant>,
    pub compactor: super::compact::Compactor,
    /// `--clean-source` as the plans record it (`None`: leave the files).
    pub clean_source: Option<String>,
    /// The batch the checkpoint's latest state covers.
    pub state_batch: Option<i64>,
    /// A clean-up failed in this run: its batch must not be folded into a state uncleaned.
    pub clean_failed: bool,
}

/// When a batch's time on the stream began, the durations measured so far, and what the
/// trigger's listing leaves after it.
pub(super) struct Timing {
    pub started: Instant,
    pub durations: Durations,
    pub backlog: Backlog,
}

impl Stream {
    /// A checkpoint whose done batches are missing from the table (the table was deleted or
    /// replaced) would skip their files for ever: refuse, and say what to do.
    pub(super) async fn check_table_has_done_batches(&self) -> Result<()> {
        let planned = self.checkpoint.planned().await?;
        let mut last_done = None;
        for batch_id in planned.iter().rev() {
            if self.checkpoint.is_done(*batch_id).await? {
                last_done = Some(batch_id);
                break;
            }
        }
        let Some(last_done) = last_done else {
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
                path: self.checkpoint.dir().display().into(),
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

    /// Clean the files of a done batch as its plan asked. A failure is a warning, not the
    /// stream's end (the rows are committed): the files stay, and the next start tries again.
    pub(super) async fn clean(
        &mut self,
        plan: &Plan,
        report: &mut BronzeReport,
        observer: &mut dyn Observer,
    ) {
        if plan.clean_source.is_none() {
            return;
        }
        let warnings = match clean::clean_batch(
            &self.checkpoint,
            &self.source.folder,
            plan,
            &self.source.storage,
        )
        .await
        {
            Ok(warnings) => warnings,
            Err(e) => {
                self.clean_failed = true;
                vec![format!(
                    "clean-up of batch {} failed: {}; its files stay in the source folder and \
                     clean-up is tried again at the next start",
                    plan.batch_id,
                    crate::error::chain_of(&e)
                )]
            }
        };
        for warning in warnings {
            observer.warn(&warning);
            report.warnings.push(warning);
        }
    }

    /// Clean every done batch that was planned to be cleaned and has no `_cleaned` marker (a
    /// crash between its done marker and its clean-up).
    async fn clean_leftovers(
        &mut self,
        report: &mut BronzeReport,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        let known = self.checkpoint.known().await?;
        for (plan, done, cleaned) in known.batches {
            if let (Some(text), Some(_), None) = (&plan.clean_source, &done, &cleaned) {
                // As the plan promised, whatever this run's flags: say so.
                let message = format!(
                    "batch {} was done but its clean-up was not (an interrupted run): cleaning \
                     its files as its plan asked (--clean-source {text})",
                    plan.batch_id
                );
                observer.warn(&message);
                report.warnings.push(message);
                self.clean(&plan, report, observer).await;
            }
        }
        Ok(())
    }

    /// Every [`COMPACT_EVERY`] batches, fold the checkpoint's plans into a state file and
    /// delete the old ones, so the checkpoint stays small. A failure is a warning: the
    /// checkpoint is only larger until the next one.
    async fn compact_checkpoint(
        &mut self,
        batch_id: i64,
        seen: &mut discover::Seen,
        report: &mut BronzeReport,
        observer: &mut dyn Observer,
    ) {
        let since = batch_id - self.state_batch.unwrap_or(-1);
        if since < COMPACT_EVERY || self.clean_failed {
            return;
        }
        match self
            .checkpoint
            .compact(batch_id, self.options.max_file_age)
            .await
        {
            Ok(_) => {
                self.state_batch = Some(batch_id);
                seen.forget_old();
            }
            Err(e) => {
                let warning = format!(
                    "the checkpoint's compaction after batch {batch_id} failed: {}; it is \
                     tried again in {COMPACT_EVERY} batches",
                    crate::error::chain_of(&e)
                );
                self.state_batch = Some(batch_id);
                observer.warn(&warning);
                report.warnings.push(warning);
            }
        }
    }

    /// Start reading and writing `batches` ahead of their commits.
    pub(super) fn ahead(&self, batches: Vec<(i64, Vec<SourceFile>)>) -> Ahead {
        Ahead::start(
            &self.id,
            self.log.object_store(),
            self.source.folder.clone(),
            batches,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_files_are_cut_into_numbered_batches_and_once_takes_one() {
        let files: Vec<SourceFile> = (0..5)
            .map(|i| SourceFile {
                name: format!("{i:02}.json"),
                size: 1,
                mtime_ms: i,
                e_tag: None,
            })
            .collect();
        let every = Trigger::Every(std::time::Duration::from_secs(1));
        // (files, next batch id, files per batch, trigger) -> batches as (id, first..last file)
        type Case = (
            usize,
            i64,
            usize,
            Trigger,
            &'static [(i64, &'static [&'static str])],
        );
        let cases: [Case; 6] = [
            (
                5,
                0,
                2,
                Trigger::AvailableNow,
                &[(0, &["00", "01"]), (1, &["02", "03"]), (2, &["04"])],
            ),
            (5, 7, 5, every, &[(7, &["00", "01", "02", "03", "04"])]),
            (5, 3, 2, Trigger::Once, &[(3, &["00", "01"])]),
            (
                3,
                0,
                usize::MAX,
                Trigger::AvailableNow,
                &[(0, &["00", "01", "02"])],
            ),
            // 0 files per batch is taken as 1, never as an endless loop of empty batches.
            (
                2,
                0,
                0,
                Trigger::AvailableNow,
                &[(0, &["00"]), (1, &["01"])],
            ),
            (0, 4, 1, Trigger::Once, &[]),
        ];
        for (n, next, per_batch, trigger, expected) in cases {
            let batches = plan_batches(&files[..n], next, per_batch, trigger);
            let got: Vec<(i64, Vec<String>)> = batches
                .into_iter()
                .map(|(id, files)| {
                    let names = files
                        .iter()
                        .map(|f| f.name.trim_end_matches(".json").to_string());
                    (id, names.collect())
                })
                .collect();
            let want: Vec<(i64, Vec<String>)> = expected
                .iter()
                .map(|(id, names)| (*id, names.iter().map(|n| n.to_string()).collect()))
                .collect();
            assert_eq!(
                got, want,
                "{n} files from {next}, {per_batch} per batch, {trigger:?}"
            );
        }
    }
}

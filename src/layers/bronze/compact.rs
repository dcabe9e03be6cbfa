//! Auto-compaction: a stream of one-file batches leaves one small Parquet file per batch; every
//! `--auto-compact N` files it commits, the stream starts a compaction of the table's small
//! files (`maintain::optimize`, `dataChange=false`) in the background and goes on with its
//! batches. A compaction never delays or endangers a batch: it runs beside the stream's
//! commits (blind appends and a compaction do not conflict; if a commit of the stream takes the
//! version it wanted, deltalake retries it on top), one at a time, and its failure is a warning,
//! never the stream's. The stream waits for a running compaction only when it stops.

use tokio::task::JoinHandle;

use crate::delta::{self, TableId};
use crate::error::Result;
use crate::maintain::optimize::{self, OptimizeOptions, OptimizeReport};

/// Files committed between two compactions by default (a bronze file is one batch's rows).
pub const DEFAULT_EVERY: usize = 100;

/// What the stream knows of its compactions.
pub(super) struct Compactor {
    /// Start one after this many committed files; 0: never.
    every: usize,
    /// Files committed since the last one started.
    since: usize,
    running: Option<JoinHandle<Result<OptimizeReport>>>,
}

/// What happened to a compaction that ended.
pub(super) enum Ended {
    Compacted(OptimizeReport),
    Failed(String),
}

impl Compactor {
    /// `small` files under the compaction's target size are in the table already (a stream
    /// run one batch per process compacts as one that runs for ever does).
    pub fn new(every: usize, small: usize) -> Self {
        Self {
            every,
            since: small,
            running: None,
        }
    }

    /// The decision after a commit of `files` files: start a compaction now?
    pub fn due(&mut self, files: usize) -> bool {
        if self.every == 0 {
            return false;
        }
        self.since += files;
        self.since >= self.every && self.running.is_none()
    }

    /// Start compacting `id` in the background.
    pub fn start(&mut self, id: &TableId) {
        self.since = 0;
        let id = id.clone();
        self.running = Some(tokio::spawn(async move {
            let table = open_beside_the_stream(&id).await?;
            optimize::run(&id, table, &OptimizeOptions::auto()).await
        }));
    }

    /// The compaction that has ended since the last look, if any (never waits for one that
    /// runs).
    pub async fn ended(&mut self) -> Option<Ended> {
        if !self.running.as_ref().is_some_and(JoinHandle::is_finished) {
            return None;
        }
        self.finish().await
    }

    /// Wait for the running compaction, if any (when the stream stops).
    pub async fn finish(&mut self) -> Option<Ended> {
        let task = self.running.take()?;
        Some(outcome(task.await))
    }
}

/// Open the table while the stream commits to it: a listing of `_delta_log` taken while the
/// stream writes a commit, a checkpoint or deletes expired commits can see a gap or a
/// `_last_checkpoint` ahead of the files listed; a moment later it is whole. Three tries.
async fn open_beside_the_stream(id: &TableId) -> crate::error::Result<deltalake::DeltaTable> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match delta::open(id).await {
            Ok(Some(table)) => return Ok(table),
            Ok(None) => return Err(id.not_found(" (it was there a moment ago)")),
            Err(e) if attempt >= 3 => return Err(e),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await,
        }
    }
}

/// The table's files an auto-compaction would take.
pub(super) fn small_files(table: &deltalake::DeltaTable) -> usize {
    let target = OptimizeOptions::auto().small_below as i64;
    table.snapshot().map_or(0, |s| {
        s.log_data().iter().filter(|f| f.size() < target).count()
    })
}

/// Put an ended compaction in the report (a failure is a warning).
pub(super) fn record(
    ended: Ended,
    report: &mut super::BronzeReport,
    observer: &mut dyn super::Observer,
) {
    match ended {
        Ended::Compacted(done) => {
            if let Some(version) = done.version_after {
                report.compactions += 1;
                report.files_compacted += done.files_removed;
                report.version_after = report.version_after.max(version);
                observer.compacted(&done);
            }
        }
        Ended::Failed(message) => {
            observer.warn(&message);
            report.warnings.push(message);
        }
    }
}

fn outcome(joined: std::result::Result<Result<OptimizeReport>, tokio::task::JoinError>) -> Ended {
    match joined {
        Ok(Ok(report)) => Ended::Compacted(report),
        Ok(Err(e)) => Ended::Failed(format!(
            "auto-compaction failed (the stream goes on; it tries again after the next \
             batches): {}",
            e.chain()
        )),
        Err(e) => Ended::Failed(format!("auto-compaction stopped: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compaction_is_due_every_n_files_one_at_a_time() {
        // (every, files committed per batch, batches) -> batches after which one starts
        let cases: &[(usize, usize, usize, &[usize])] = &[
            (0, 1, 10, &[]),
            (3, 1, 10, &[3, 6, 9]),
            (4, 3, 6, &[2, 4, 6]),
            (1, 1, 3, &[1, 2, 3]),
        ];
        for (every, files, batches, expected) in cases {
            let mut c = Compactor::new(*every, 0);
            let mut started = Vec::new();
            for batch in 1..=*batches {
                if c.due(*files) {
                    started.push(batch);
                    c.since = 0;
                }
            }
            assert_eq!(started, *expected, "every {every}, {files} per batch");
        }
        // The small files already in the table count.
        let mut c = Compactor::new(10, 9);
        assert!(c.due(1));
        assert!(!Compactor::new(10, 8).due(1));
        assert!(!Compactor::new(0, 100).due(1));
    }
}

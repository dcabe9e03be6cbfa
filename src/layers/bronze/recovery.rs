//! What a killed run leaves, finished by the next: the batch it planned and did not mark done
//! (committed already: only the marker is missing; else redone with exactly its planned
//! files), and a checkpoint that was lost while the table has data (rebuilt from the table's
//! lineage, so no file is ingested twice).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use deltalake::DeltaTable;
use futures::StreamExt;

use super::stream::{Stream, Timing};
use super::{BronzeReport, Observer, Source};
use crate::catalog;
use crate::delta::{self, TableId};
use crate::error::Result;
use crate::stream::checkpoint::{Checkpoint, Recovered};
use crate::stream::progress::Durations;
use crate::warehouse::{DEFAULT_SOURCE, Warehouse};

/// What to do about the last batch an earlier run planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unfinished {
    /// Nothing: no batch planned, or the last one is done.
    None,
    /// Committed before the crash: only its done marker is missing.
    MarkDone(i64),
    /// Not committed: redo it with exactly its planned files.
    Redo(i64),
}

/// Decide from the checkpoint's last planned batch, whether it is done, and the table's
/// transaction version for the stream.
pub(super) fn unfinished(
    last_planned: Option<i64>,
    done: bool,
    committed: Option<i64>,
) -> Unfinished {
    match last_planned {
        None => Unfinished::None,
        Some(_) if done => Unfinished::None,
        Some(last) if committed.is_some_and(|v| v >= last) => Unfinished::MarkDone(last),
        Some(last) => Unfinished::Redo(last),
    }
}

/// Finish the batch an earlier run planned and did not mark done, if any.
pub(super) async fn finish_unfinished(
    stream: &mut Stream,
    planned: &[i64],
    report: &mut BronzeReport,
    observer: &mut dyn Observer,
) -> Result<()> {
    let last = planned.last().copied();
    let done = match last {
        Some(batch_id) => stream.checkpoint.is_done(batch_id).await?,
        None => false,
    };
    let (last, redo) = match unfinished(last, done, stream.log.app_version()) {
        Unfinished::None => return Ok(()),
        Unfinished::MarkDone(last) => (last, false),
        Unfinished::Redo(last) => (last, true),
    };
    let plan = stream.checkpoint.plan(last).await?;
    let started = Instant::now();
    let prepared = if redo {
        let mut ahead = stream.ahead(vec![(last, plan.files.clone())]);
        Some(ahead.next(last).await?)
    } else {
        None
    };
    stream
        .run_batch(
            &plan,
            prepared,
            true,
            // Planned by an earlier run: no listing of this run says what is left.
            Timing {
                started,
                durations: Durations::default(),
                backlog: Default::default(),
            },
            report,
            observer,
        )
        .await?;
    report.recovered_batches += 1;
    Ok(())
}

/// The checkpoint was lost but the table has data: take the files the table (and its
/// quarantine) already holds from this source as seen, so nothing is ingested twice, and
/// continue the batch ids. The default source takes every file the table holds (a warehouse of
/// one stream, whose folder may have moved); another source, the files under its folder and the
/// commits that name it.
pub(super) async fn rebuild_checkpoint(
    warehouse: &Warehouse,
    id: &TableId,
    table: &DeltaTable,
    checkpoint: &Checkpoint,
    source: &Source,
) -> Result<Option<String>> {
    let mut files = HashSet::new();
    let mut next_batch_id = 0;
    // Who committed each batch, from the commits' lineage (a batch of bad files has no rows,
    // but has its commit): the source it names (none in a commit made before sources had
    // names: the default source's).
    let mut owners: HashMap<i64, Vec<Option<String>>> = HashMap::new();
    let mut history = table.history(None);
    while let Some(info) = history.next().await {
        let info = info.map_err(id.err("read the history"))?;
        if let Some(batch) = info.info.get("batchId").and_then(serde_json::Value::as_i64) {
            let named = info
                .info
                .get("sourceName")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string);
            owners.entry(batch).or_default().push(named);
            next_batch_id = next_batch_id.max(batch + 1);
        }
    }
    drop(history);
    let ours = Ours {
        name: &source.name,
        folder: source.folder.display_file(""),
    };
    let quarantine_id = TableId::of(warehouse, &catalog::BRONZE_QUARANTINE);
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
        let ctx = delta::session_with(table_id, table, "t").await?;
        let sql = format!("SELECT DISTINCT {file_column} AS f, {batch_column} AS b FROM t");
        let batches = delta::query(&ctx, table_id, "read lineage", &sql).await?;
        for batch in batches {
            let names = delta::strings(&batch, "f")?;
            let batch_ids = delta::int64s(&batch, "b")?;
            for (name, batch_id) in names.iter().zip(batch_ids.iter()) {
                if let (Some(name), Some(batch_id)) = (name, batch_id)
                    && ours.took(name, owners.get(&batch_id).map(Vec::as_slice), index == 0)
                {
                    next_batch_id = next_batch_id.max(batch_id + 1);
                    files.insert(file_name(name));
                }
            }
        }
    }
    let mut names: Vec<String> = files.into_iter().collect();
    names.sort();
    // A new source on a table others fill has nothing of its own there: nothing to say.
    let message = (!names.is_empty()).then(|| {
        format!(
            "the checkpoint of {} (source {}) was missing: rebuilt it from the table, which \
             holds {} of its source files; they will not be ingested again (new stream id {}, \
             batches from {})",
            id.name,
            source.name,
            names.len(),
            checkpoint.stream_id(),
            next_batch_id
        )
    });
    checkpoint
        .write_recovered(&Recovered {
            files: names,
            next_batch_id,
        })
        .await?;
    Ok(message)
}

/// The source whose checkpoint is rebuilt: which of the table's files it took.
struct Ours<'a> {
    name: &'a str,
    /// Its folder, as lineage names files in it (with the trailing separator).
    folder: String,
}

impl Ours<'_> {
    /// Whether `file`, of a batch committed by `owners` (the sources its commits name; `None`
    /// when the history no longer holds its commit), was taken by this source. A bronze row
    /// (`in_bronze`) whose commit is gone counts by its folder; a quarantine row only once its
    /// batch reached bronze. The default source takes what commits name it (or name no source:
    /// made before sources had names), wherever its folder was (it may have moved); another
    /// source takes only files directly in its own folder, from commits that name it.
    fn took(&self, file: &str, owners: Option<&[Option<String>]>, in_bronze: bool) -> bool {
        let default = self.name == DEFAULT_SOURCE;
        let in_folder = file
            .strip_prefix(&self.folder)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
        match owners {
            None => in_bronze && (in_folder || default),
            Some(owners) => owners.iter().any(|owner| {
                owner.as_deref().unwrap_or(DEFAULT_SOURCE) == self.name && (default || in_folder)
            }),
        }
    }
}

fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuilt_checkpoint_takes_only_its_own_sources_files() {
        let site = Ours {
            name: "site_a",
            folder: "s3://lake/a/".into(),
        };
        let tracker = Ours {
            name: DEFAULT_SOURCE,
            folder: "/data/tracker/".into(),
        };
        let named = |n: &str| vec![Some(n.to_string())];
        let legacy = vec![None];
        // (source, file, owners of its batch, in bronze) -> taken
        type Owners = Option<Vec<Option<String>>>;
        let cases: [(&Ours, &str, Owners, bool, bool); 12] = [
            (
                &site,
                "s3://lake/a/01.json",
                Some(named("site_a")),
                true,
                true,
            ),
            // Another source's file of the same name is not ours.
            (
                &site,
                "s3://lake/b/01.json",
                Some(named("site_b")),
                true,
                false,
            ),
            // A folder inside ours is another source's (and not ours even by mistake).
            (
                &site,
                "s3://lake/a/sub/01.json",
                Some(named("site_a")),
                true,
                false,
            ),
            // Two commits with one batch id (two sources at once): ours only by folder.
            (
                &site,
                "s3://lake/b/01.json",
                Some(vec![Some("site_a".into()), Some("site_b".into())]),
                true,
                false,
            ),
            // The commit is gone: a bronze row counts by its folder.
            (&site, "s3://lake/a/02.json", None, true, true),
            (&site, "s3://lake/b/02.json", None, true, false),
            // A quarantine row of a batch that never reached bronze.
            (&site, "s3://lake/a/03.json", None, false, false),
            // The default source: its own commits wherever its folder was.
            (
                &tracker,
                "/old/tracker/01.json",
                Some(named(DEFAULT_SOURCE)),
                true,
                true,
            ),
            (
                &tracker,
                "/old/tracker/01.json",
                Some(legacy.clone()),
                true,
                true,
            ),
            (&tracker, "/data/tracker/01.json", Some(legacy), false, true),
            // Never a named source's files.
            (
                &tracker,
                "s3://lake/a/01.json",
                Some(named("site_a")),
                true,
                false,
            ),
            (
                &tracker,
                "/data/tracker/01.json",
                Some(named("site_a")),
                true,
                false,
            ),
        ];
        for (source, file, owners, in_bronze, taken) in cases {
            assert_eq!(
                source.took(file, owners.as_deref(), in_bronze),
                taken,
                "{} {file} {owners:?} {in_bronze}",
                source.name
            );
        }
    }

    #[test]
    fn an_unfinished_batch_is_marked_done_if_committed_else_redone() {
        // (last planned, done, the table's transaction version) -> what to do
        let cases = [
            ((None, false, None), Unfinished::None),
            ((Some(3), true, Some(3)), Unfinished::None),
            ((Some(3), false, Some(3)), Unfinished::MarkDone(3)),
            ((Some(3), false, Some(4)), Unfinished::MarkDone(3)),
            ((Some(3), false, Some(2)), Unfinished::Redo(3)),
            ((Some(0), false, None), Unfinished::Redo(0)),
        ];
        for ((last, done, committed), expected) in cases {
            assert_eq!(
                unfinished(last, done, committed),
                expected,
                "{last:?} {done} {committed:?}"
            );
        }
    }
}

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
//!
//! One concern per file: this one checks the source and the table and sets the stream up;
//! [`stream`] runs the triggers (batches of new files, until the trigger says stop);
//! [`batch`] is the protocol of one batch (commit, done marker, progress record);
//! [`recovery`] finishes what a killed run left (an unfinished batch, a lost checkpoint);
//! [`ahead`] reads and encodes the next batches while one commits.

mod ahead;
mod batch;
pub mod clean;
mod compact;
mod recovery;
mod stream;

use std::time::Instant;

use deltalake::DeltaTable;
use serde::Serialize;

use crate::catalog::{self, POSITION};
use crate::delta::append::AppendLog;
use crate::delta::{self, TableId};
use crate::error::{Error, Result};
use crate::folder::Folder;
use crate::output::{Report, version_change};
use crate::source::discover::Completeness;
use crate::stream::checkpoint::{Binding, Checkpoint};
use crate::stream::progress::Progress;
use crate::stream::trigger::Trigger;
use crate::warehouse::{DEFAULT_SOURCE, DataDir, Location, SourceSpec, Warehouse};

use stream::Stream;

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
    /// The sources to read (`--source NAME=FOLDER`); empty: the tracker folder of `--data`,
    /// named `tracker`.
    pub sources: Vec<SourceSpec>,
    /// Compact the table's small files every this many committed files (0: never).
    pub auto_compact: usize,
    /// What to do with a batch's source files once it is done (`None`: leave them).
    pub clean_source: Option<clean::CleanSource>,
    /// Take no file older than the newest taken minus this, and forget such files.
    pub max_file_age: Option<std::time::Duration>,
}

impl Default for BronzeOptions {
    fn default() -> Self {
        Self {
            max_files_per_trigger: Some(1),
            trigger: Trigger::AvailableNow,
            bad_files: BadFiles::Quarantine,
            completeness: Completeness::default(),
            source_moved: false,
            sources: Vec::new(),
            auto_compact: compact::DEFAULT_EVERY,
            clean_source: None,
            max_file_age: None,
        }
    }
}

/// What a `bronze` run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BronzeReport {
    pub table: String,
    /// The stream id of the (first) source.
    pub stream_id: String,
    /// Each source read: its name, folder and stream id.
    pub streams: Vec<StreamReport>,
    pub batches: u64,
    pub files: u64,
    pub rows: u64,
    pub quarantined_rows: u64,
    /// Batches an earlier run had planned and this run finished.
    pub recovered_batches: u64,
    pub version_before: Option<u64>,
    pub version_after: u64,
    pub duration_ms: u64,
    /// Auto-compactions that committed, and the small files they packed.
    pub compactions: u64,
    pub files_compacted: u64,
    /// Warnings also printed on stderr (bad files, files passed over, a rebuilt checkpoint).
    pub warnings: Vec<String>,
}

/// One source of a `bronze` run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamReport {
    pub source: String,
    pub location: String,
    pub stream_id: String,
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
        let compacted = if self.compactions > 0 {
            format!(
                "; {} auto-compactions ({} small files packed)",
                self.compactions, self.files_compacted
            )
        } else {
            String::new()
        };
        format!(
            "bronze: {} batches{recovered}, {} files, {} rows, {} quarantined{compacted}; {} {} ({} ms)",
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
    /// An auto-compaction committed.
    fn compacted(&mut self, _report: &crate::maintain::optimize::OptimizeReport) {}
    /// Whether to go on after a batch: `false` (nobody reads the records any more: a closed
    /// stdout) stops the stream there, as a SIGTERM does.
    fn wants_more(&self) -> bool {
        true
    }
}

/// A bronze table made before rows carried their delivery position (`_position`) cannot tell
/// silver which delivery of a reading is the last: refuse it rather than guess.
fn require_position(id: &TableId, table: &DeltaTable) -> Result<()> {
    let has = table
        .snapshot()
        .map_err(id.err("load"))?
        .schema()
        .field(POSITION)
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
            POSITION,
            id.url
                .join("../..")
                .map_or_else(|_| id.url.to_string(), |u| u.to_string())
        ),
    })
}

/// A source of the bronze stream: its name (its checkpoint's folder, its commits' lineage), its
/// folder, and how the checkpoint is bound to it (a local folder's canonical path, or a URL).
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub name: String,
    /// Absolute, so lineage (`_source_file`, progress records) names files unambiguously.
    pub folder: Folder,
    pub identity: String,
    /// How its store (and an archive folder of `--clean-source`) is reached.
    pub storage: crate::warehouse::StorageOptions,
}

/// The sources a run reads: the `--source`s given, else the tracker folder of `--data`.
pub(crate) fn sources(data: &DataDir, options: &BronzeOptions) -> Vec<SourceSpec> {
    if options.sources.is_empty() {
        return vec![SourceSpec {
            name: DEFAULT_SOURCE.to_string(),
            location: data.tracker(),
        }];
    }
    options.sources.clone()
}

/// Check every source before anything is written ([`check_source`]); two sources may not
/// share a name.
pub async fn check_sources(
    warehouse: &Warehouse,
    data: &DataDir,
    options: &BronzeOptions,
) -> Result<()> {
    let specs = sources(data, options);
    for (i, spec) in specs.iter().enumerate() {
        if specs[..i].iter().any(|s| s.name == spec.name) {
            return Err(Error::Usage(format!(
                "two sources are named {:?}: each source needs its own name (its checkpoint)",
                spec.name
            )));
        }
    }
    let mut identities: Vec<(String, String)> = Vec::new();
    for spec in &specs {
        let source = check_source(warehouse, data, spec, options).await?;
        if let Some((other, _)) = identities.iter().find(|(_, id)| *id == source.identity) {
            return Err(Error::Usage(format!(
                "sources {other} and {} are one folder ({}): two streams on one folder would \
                 ingest every file twice; give it once",
                spec.name, source.identity
            )));
        }
        identities.push((spec.name.clone(), source.identity));
    }
    Ok(())
}

/// A source's folder, checked before anything is written: a local folder must exist (a typo in
/// `--data` would otherwise ingest nothing into a new, empty table; an empty folder is fine);
/// and it must be the folder the source's checkpoint is bound to, unless `source_moved`.
pub(crate) async fn check_source(
    warehouse: &Warehouse,
    data: &DataDir,
    spec: &SourceSpec,
    options: &BronzeOptions,
) -> Result<Source> {
    let source_moved = options.source_moved;
    let (folder, identity) = match &spec.location {
        Location::Local(path) => {
            let canonical = local_source(data, path)?;
            let identity = canonical.to_str().map(str::to_string).ok_or_else(|| {
                Error::Usage(format!(
                    "source folder {} cannot be recorded: its path is not valid UTF-8",
                    canonical.display()
                ))
            })?;
            let absolute = std::path::absolute(path).map_err(Error::io("resolve", path))?;
            (Folder::Local(absolute), identity)
        }
        Location::Url(url) => (spec.location.folder(data.options())?, url.to_string()),
    };
    let checkpoint_dir = warehouse.checkpoint(catalog::BRONZE.name, &spec.name)?;
    let binding = Checkpoint::binding(&checkpoint_dir, &identity).await?;
    // Another source's stream on this folder would take every file a second time.
    let default_dir = warehouse.checkpoint(catalog::BRONZE.name, DEFAULT_SOURCE)?;
    for (name, checkpoint) in crate::stream::checkpoint::all(&default_dir, DEFAULT_SOURCE).await? {
        if name != spec.name && checkpoint.source() == Some(identity.as_str()) {
            return Err(Error::Usage(format!(
                "source folder {identity} is already read by source {name} (checkpoint {}): a \
                 second stream on it would ingest every file twice; run it as --source \
                 {name}={}",
                checkpoint.dir().display(),
                spec.location.display()
            )));
        }
    }
    // An object store has no folders: a prefix that lists nothing may be a typo. A new stream
    // is not bound to it (nor a table made) unless it is meant to wait for files.
    if !folder.is_local() {
        let listed = folder.objects().await?;
        if listed.is_empty()
            && binding == Binding::New
            && !matches!(options.trigger, Trigger::Every(_))
        {
            return Err(Error::SourceFolderMissing {
                path: identity.clone().into(),
                hint: " (no object is listed under it: check the URL; a stream meant to wait \
                       for the first files runs with --trigger every=...)"
                    .into(),
            });
        }
    }
    if let Binding::Other(bound) = binding
        && !source_moved
    {
        let given = if spec.name == DEFAULT_SOURCE && data.tracker() == spec.location {
            "--data gives".to_string()
        } else {
            format!("--source {} gives", spec.name)
        };
        return Err(Error::Usage(format!(
            "the bronze stream (checkpoint {}) reads source folder {bound}, but {given} \
             {identity}: a stream knows files by name, so it would skip the files of the new \
             folder whose names it has seen and ingest the others. Give it the folder it \
             reads; if the source has moved there on purpose, run again with --source-moved \
             (files whose names were already ingested are not read again)",
            checkpoint_dir.display(),
        )));
    }
    // An archive that is a source folder or in the warehouse is refused before a table is made.
    if let Some(clean) = &options.clean_source {
        clean_source_text(warehouse, clean, &folder).await?;
    }
    Ok(Source {
        name: spec.name.clone(),
        folder,
        identity,
        storage: data.options().clone(),
    })
}

/// `--clean-source` checked against this source, every stream's source of the warehouse, and
/// the warehouse's folder ([`clean::check`]); the text its plans record.
async fn clean_source_text(
    warehouse: &Warehouse,
    clean: &clean::CleanSource,
    source: &Folder,
) -> Result<String> {
    let default = warehouse.checkpoint(catalog::BRONZE.name, DEFAULT_SOURCE)?;
    let bound: Vec<String> = crate::stream::checkpoint::all(&default, DEFAULT_SOURCE)
        .await?
        .iter()
        .filter_map(|(_, checkpoint)| checkpoint.source().map(str::to_string))
        .collect();
    let root = warehouse.root().to_file_path().ok();
    clean::check(clean, source, &bound, root.as_deref())
}

/// A local source folder, canonical; it must exist and be a folder.
fn local_source(data: &DataDir, tracker: &std::path::Path) -> Result<std::path::PathBuf> {
    match std::fs::metadata(tracker) {
        Ok(m) if m.is_dir() => {
            std::fs::canonicalize(tracker).map_err(Error::io("resolve", tracker))
        }
        Ok(_) => Err(Error::Usage(format!(
            "source folder {} is not a folder",
            tracker.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let hint = match data.local_root() {
                Some(root) if data.tracker() == Location::Local(tracker.to_path_buf()) => {
                    if root.is_dir() {
                        format!(
                            " (--data {} holds no healthcare/streaming/tracker/: run `medallion \
                             generate` to write the lab's data, or give --data the folder that \
                             holds it)",
                            root.display()
                        )
                    } else {
                        format!(
                            " (--data {} does not exist: check its spelling, or run `medallion \
                             generate` to write the lab's data there)",
                            root.display()
                        )
                    }
                }
                _ => " (check the --source folder's spelling)".to_string(),
            };
            Err(Error::SourceFolderMissing {
                path: tracker.to_path_buf(),
                hint,
            })
        }
        Err(e) => Err(Error::io("read", tracker)(e)),
    }
}

/// Stream every source into bronze until the trigger says stop, one source after the other
/// (each its own stream id and checkpoint).
pub async fn run(
    warehouse: &Warehouse,
    data: &DataDir,
    options: &BronzeOptions,
    observer: &mut dyn Observer,
) -> Result<BronzeReport> {
    let start = Instant::now();
    let specs = sources(data, options);
    if specs.len() > 1 && matches!(options.trigger, Trigger::Every(_)) {
        return Err(Error::Usage(
            "--trigger every= reads one source per process: start one `bronze --source ...` \
             per source (they may all append to the same table at once)"
                .into(),
        ));
    }
    check_sources(warehouse, data, options).await?;
    let mut total = BronzeReport::default();
    for spec in &specs {
        let source = check_source(warehouse, data, spec, options).await?;
        let report = run_source(warehouse, source, options, observer).await?;
        total.add(report);
    }
    total.duration_ms = start.elapsed().as_millis() as u64;
    Ok(total)
}

impl BronzeReport {
    /// Add one source's run to the run's report.
    fn add(&mut self, one: BronzeReport) {
        if self.streams.is_empty() {
            self.table = one.table;
            self.stream_id = one.stream_id;
            self.version_before = one.version_before;
        }
        self.streams.extend(one.streams);
        self.batches += one.batches;
        self.files += one.files;
        self.rows += one.rows;
        self.quarantined_rows += one.quarantined_rows;
        self.recovered_batches += one.recovered_batches;
        self.compactions += one.compactions;
        self.files_compacted += one.files_compacted;
        self.version_after = self.version_after.max(one.version_after);
        self.warnings.extend(one.warnings);
    }
}

/// Stream one source into bronze until the trigger says stop.
async fn run_source(
    warehouse: &Warehouse,
    source: Source,
    options: &BronzeOptions,
    observer: &mut dyn Observer,
) -> Result<BronzeReport> {
    let start = Instant::now();
    let id = TableId::of(warehouse, &catalog::BRONZE);
    let (table, created) = delta::open_or_create(&id, &catalog::BRONZE).await?;
    require_position(&id, &table)?;
    let version_before = if created { None } else { table.version() };
    let mut report = BronzeReport {
        table: id.name.clone(),
        version_before,
        ..BronzeReport::default()
    };

    let checkpoint_dir = warehouse.checkpoint(catalog::BRONZE.name, &source.name)?;
    let binding = Checkpoint::binding(&checkpoint_dir, &source.identity).await?;
    let mut checkpoint =
        Checkpoint::open_or_create(&checkpoint_dir, Some(&source.identity)).await?;
    checkpoint.bind_source(&source.identity).await?;
    let bound = match binding {
        Binding::New | Binding::Same => None,
        Binding::Unrecorded => Some(format!(
            "the bronze stream's checkpoint recorded no source folder (made by an earlier \
             medallion): it is now bound to {}",
            source.identity
        )),
        Binding::Other(before) => Some(format!(
            "the bronze stream's source moved from {before} to {} (--source-moved): files whose \
             names were already ingested are not read again",
            source.identity
        )),
    };
    if let Some(message) = bound {
        observer.warn(&message);
        report.warnings.push(message);
    }
    // A checkpoint that has never planned a batch, on a table that has data, was lost (or its
    // rebuild was interrupted): take what the table holds as ingested before planning anything.
    let lost = checkpoint.planned().await?.is_empty() && checkpoint.recovered().await?.is_none();
    if lost
        && version_before.is_some_and(|v| v > 0)
        && let Some(message) =
            recovery::rebuild_checkpoint(warehouse, &id, &table, &checkpoint, &source).await?
    {
        observer.warn(&message);
        report.warnings.push(message);
    }
    let clean_source = match &options.clean_source {
        Some(clean) => Some(clean_source_text(warehouse, clean, &source.folder).await?),
        None => None,
    };
    let state_batch = checkpoint.state().await?.map(|s| s.batch_id);
    report.stream_id = checkpoint.stream_id().to_string();
    report.streams.push(StreamReport {
        source: source.name.clone(),
        location: source.folder.display(),
        stream_id: checkpoint.stream_id().to_string(),
    });

    let mut stream = Stream {
        source,
        quarantine: TableId::of(warehouse, &catalog::BRONZE_QUARANTINE),
        log: AppendLog::open(id.clone(), &table, checkpoint.stream_id()).await?,
        run_id: uuid::Uuid::new_v4().to_string(),
        last_trigger: None,
        id,
        checkpoint,
        options: options.clone(),
        compactor: compact::Compactor::new(options.auto_compact, compact::small_files(&table)),
        clean_source,
        state_batch,
        clean_failed: false,
    };
    drop(table);
    stream.check_table_has_done_batches().await?;

    // The batches, then (also after an error) the Delta checkpoint left writing.
    let outcome = stream::stream_batches(&mut stream, options, &mut report, observer).await;
    if let Some(ended) = stream.compactor.finish().await {
        compact::record(ended, &mut report, observer);
    }
    stream.log.finish().await;
    for warning in stream.log.take_warnings() {
        observer.warn(&warning);
        report.warnings.push(warning);
    }
    outcome?;
    report.version_after = report.version_after.max(stream.log.version());
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

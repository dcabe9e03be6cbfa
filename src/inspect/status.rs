//! `medallion status`: what each layer still has to do, and whether the warehouse adds up.
//!
//! Per table: its version, the upstream positions it has consumed (its `txn`s), and what is
//! left: for bronze the tracker files not yet taken (listed as the stream lists them, against
//! its checkpoint), for silver the bronze and dimension versions after its positions, for gold
//! and daily the silver versions after theirs; with the quarantined and waiting row counts.
//! Then every inconsistency found: a position beyond its upstream's latest version (the
//! upstream was replaced), rows of upstream versions a later restore of the upstream took back
//! (a reader of `add`s never sees them go), a consumer of a table that is missing, a bronze
//! checkpoint bound to another folder or holding batches the table does not. Reads only.

use std::collections::BTreeMap;
use std::time::Duration;

use deltalake::DeltaTable;
use serde::Serialize;
use serde_json::{Value, json};

use super::format::{Format, Rows};
use crate::catalog::{self, Table};
use crate::delta::{self, TableId};
use crate::error::Result;
use crate::folder::Folder;
use crate::output::Report;
use crate::source::discover::{self, Completeness, Seen};
use crate::stream::checkpoint::Checkpoint;
use crate::warehouse::{DEFAULT_SOURCE, DataDir, Location, Warehouse};

/// The warehouse's state, layer by layer.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub tables: Vec<TableStatus>,
    /// What does not add up; empty when the warehouse is consistent.
    pub inconsistencies: Vec<String>,
    pub consistent: bool,
}

/// One table of the pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    pub layer: &'static str,
    pub table: String,
    /// Its latest version; `None` if it does not exist yet.
    pub version: Option<u64>,
    /// Upstream table (or `source` for the bronze stream's batch) -> the version consumed.
    pub consumed: BTreeMap<String, i64>,
    /// Tracker files not yet ingested (bronze).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_to_ingest: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_to_ingest: Option<u64>,
    /// Upstream table -> versions after the consumed one.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub versions_to_consume: BTreeMap<String, u64>,
    /// Rows in the layer's quarantine table (bronze, silver).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<u64>,
    /// Rows waiting for their patient, as silver last left them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<u64>,
    /// What the layer's next run has to do, for people.
    #[serde(skip)]
    pub to_do: String,
}

impl Status {
    /// The aligned table, as `tables` prints.
    pub fn rows(&self) -> Rows {
        let mut rows = Rows::new(&[
            "layer",
            "table",
            "version",
            "consumed",
            "to_do",
            "quarantined",
            "waiting",
        ]);
        for t in &self.tables {
            let consumed = super::positions_text(&t.consumed);
            rows.push(vec![
                json!(t.layer),
                json!(t.table),
                t.version.map_or(Value::Null, Value::from),
                json!(consumed),
                json!(t.to_do),
                t.quarantined.map_or(Value::Null, Value::from),
                t.waiting.map_or(Value::Null, Value::from),
            ]);
        }
        rows
    }
}

impl Report for Status {
    fn summary(&self) -> String {
        let mut text = self.rows().render(Format::Text, false);
        if self.consistent {
            text.push_str("consistent: every consumed position is one its upstream holds");
        } else {
            let lines: Vec<String> = self
                .inconsistencies
                .iter()
                .map(|i| format!("inconsistent: {i}"))
                .collect();
            text.push_str(&lines.join("\n"));
        }
        text
    }
}

/// The pipeline's tables status reports on (its layer: the job that writes it), in order.
const LAYERS: [&Table; 5] = [
    &catalog::DIM_PATIENTS,
    &catalog::BRONZE,
    &catalog::SILVER,
    &catalog::GOLD,
    &catalog::DAILY,
];

/// Look at every layer of the warehouse, and at the tracker folder of `data`.
pub async fn run(warehouse: &Warehouse, data: &DataDir) -> Result<Status> {
    let mut opened: BTreeMap<&str, (TableId, Option<DeltaTable>)> = BTreeMap::new();
    for name in LAYERS
        .iter()
        .chain([&&catalog::BRONZE_QUARANTINE, &&catalog::SILVER_QUARANTINE])
        .map(|t| t.name)
    {
        let id = TableId::new(warehouse, name);
        let table = delta::open(&id).await?;
        opened.insert(name, (id, table));
    }
    let latest = |name: &str| opened.get(name).and_then(|(_, t)| t.as_ref()?.version());
    let mut inconsistencies = Vec::new();
    let mut statuses = Vec::new();
    for (layer, name) in LAYERS.iter().map(|t| (t.writer, t.name)) {
        let (id, table) = &opened[name];
        let mut status = TableStatus {
            layer,
            table: name.to_string(),
            version: table.as_ref().and_then(DeltaTable::version),
            consumed: BTreeMap::new(),
            files_to_ingest: None,
            bytes_to_ingest: None,
            versions_to_consume: BTreeMap::new(),
            quarantined: None,
            waiting: None,
            to_do: String::new(),
        };
        let mut to_do = Vec::new();
        if let Some(t) = table {
            for txn in super::app_transactions(warehouse, id, t).await? {
                let Some(key) = txn.position_key() else {
                    continue;
                };
                if let Some(upstream) = &txn.upstream {
                    inconsistencies.extend(
                        check_position(warehouse, name, upstream, &txn, latest(upstream)).await?,
                    );
                }
                status.consumed.insert(key, txn.version);
            }
        } else {
            to_do.push("not created yet".to_string());
        }
        if name == catalog::BRONZE.name {
            let (files, bytes, problems) = bronze_to_do(warehouse, data, status.version).await?;
            inconsistencies.extend(problems);
            if let Some(files) = files {
                to_do.push(format!(
                    "{} to ingest ({bytes} bytes)",
                    plural(files, "file")
                ));
                status.files_to_ingest = Some(files);
                status.bytes_to_ingest = Some(bytes);
            } else {
                to_do.push(format!("no source folder {}", data.tracker().display()));
            }
            for (source, files, bytes) in named_sources_to_do(warehouse, data).await? {
                to_do.push(format!(
                    "source {source}: {} to ingest ({bytes} bytes)",
                    plural(files, "file")
                ));
                status.files_to_ingest = Some(status.files_to_ingest.unwrap_or(0) + files);
                status.bytes_to_ingest = Some(status.bytes_to_ingest.unwrap_or(0) + bytes);
            }
            status.quarantined = Some(rows_of(opened[catalog::BRONZE_QUARANTINE.name].1.as_ref()));
        } else if name == catalog::SILVER.name {
            for upstream in [catalog::BRONZE.name, catalog::DIM_PATIENTS.name] {
                pending(&mut status, upstream, &opened[upstream], &mut to_do).await?;
            }
            status.quarantined = Some(rows_of(opened[catalog::SILVER_QUARANTINE.name].1.as_ref()));
            status.waiting = Some(match table {
                Some(t) => waiting_rows(warehouse, (id, t)).await?,
                None => 0,
            });
        } else if name == catalog::GOLD.name || name == catalog::DAILY.name {
            let silver = catalog::SILVER.name;
            pending(&mut status, silver, &opened[silver], &mut to_do).await?;
        }
        if to_do.is_empty() {
            to_do.push("nothing".to_string());
        }
        status.to_do = to_do.join("; ");
        statuses.push(status);
    }
    Ok(Status {
        consistent: inconsistencies.is_empty(),
        tables: statuses,
        inconsistencies,
    })
}

/// The versions of `upstream` after the one `status` consumed (all of them if none) that
/// change rows: a compaction's or a vacuum's commit is nothing to consume.
async fn pending(
    status: &mut TableStatus,
    upstream: &str,
    (id, table): &(TableId, Option<DeltaTable>),
    to_do: &mut Vec<String>,
) -> Result<()> {
    let Some(latest) = table.as_ref().and_then(DeltaTable::version) else {
        return Ok(());
    };
    let from = status.consumed.get(upstream).map_or(1, |v| *v as u64 + 1);
    let behind = match table {
        Some(t) if from <= latest => {
            crate::delta::log::versions_with_changes(id, t.log_store().as_ref(), from, latest)
                .await?
        }
        _ => 0,
    };
    if behind > 0 {
        to_do.push(format!(
            "{} of {upstream} to consume",
            plural(behind, "version")
        ));
        status
            .versions_to_consume
            .insert(upstream.to_string(), behind);
    }
    Ok(())
}

/// What is wrong with `consumer`'s position in `upstream`, if anything.
async fn check_position(
    warehouse: &Warehouse,
    consumer: &str,
    upstream: &str,
    txn: &super::AppTransaction,
    latest: Option<u64>,
) -> Result<Vec<String>> {
    let Some(latest) = latest else {
        return Ok(vec![format!(
            "{consumer} consumed {upstream} up to v{}, but {upstream} does not exist",
            txn.version
        )]);
    };
    if txn.version > latest as i64 {
        return Ok(vec![format!(
            "{consumer} consumed {upstream} up to v{}, beyond its latest version v{latest} \
             ({upstream} was replaced?): rebuild {consumer}",
            txn.version
        )]);
    }
    // Silver reads bronze's `add`s: a restore of bronze removes files silver never hears of.
    // (Gold reads silver's change feed, in which a restore's removals are deletes.)
    if txn.app_id != catalog::SILVER_FROM_BRONZE.id() {
        return Ok(Vec::new());
    }
    let upstream_id = TableId::new(warehouse, upstream);
    let consumer_id = TableId::new(warehouse, consumer);
    let (Some(up), Some(down)) = (
        delta::open(&upstream_id).await?,
        delta::open(&consumer_id).await?,
    ) else {
        return Ok(Vec::new());
    };
    let positions: Vec<i64> = super::read_commits(
        &consumer_id,
        &down,
        0,
        super::latest_version(&consumer_id, &down)?,
    )
    .await?
    .into_iter()
    .flat_map(|c| c.txns)
    .filter(|t| t.app_id == txn.app_id)
    .map(|t| t.version)
    .collect();
    let mut problems = Vec::new();
    for commit in super::read_commits(&upstream_id, &up, 0, latest).await? {
        let Some(info) = &commit.info else { continue };
        if info.operation.as_deref() != Some("RESTORE") {
            continue;
        }
        let Some(restored) = info
            .operation_parameters
            .as_ref()
            .and_then(|p| p.get("version"))
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
        else {
            continue;
        };
        let at = commit.version as i64;
        // Consumed past the restored version before the restore, and never taken back.
        if let Some(i) = positions.iter().position(|p| *p > restored && *p < at)
            && !positions[i..].iter().any(|p| *p <= restored)
        {
            problems.push(format!(
                "{consumer} holds rows of {upstream} after v{restored} that {upstream} v{at} (a \
                 restore of v{restored}) took back: rebuild {consumer}, or restore it to a \
                 version that consumed {upstream} up to v{restored} at most"
            ));
        }
    }
    Ok(problems)
}

/// Tracker files not yet taken by the bronze stream (of the default source), with their bytes
/// (`None` without a tracker folder), and what is wrong with its checkpoint.
async fn bronze_to_do(
    warehouse: &Warehouse,
    data: &DataDir,
    version: Option<u64>,
) -> Result<(Option<u64>, u64, Vec<String>)> {
    let mut problems = Vec::new();
    let dir = warehouse.checkpoint(catalog::BRONZE.name, DEFAULT_SOURCE)?;
    let checkpoint = Checkpoint::open(&dir).await?;
    // The tracker folder as the checkpoint records it (a canonical path, or a URL), if it is
    // there.
    let (folder, identity) = match data.tracker() {
        Location::Local(path) => match std::fs::canonicalize(&path) {
            Ok(canonical) => (
                Some(Folder::Local(canonical.clone())),
                Some(canonical.display().to_string()),
            ),
            Err(_) => (None, None),
        },
        location @ Location::Url(_) => (
            Some(location.folder(data.options())?),
            Some(location.display()),
        ),
    };
    if let (Some(cp), Some(identity)) = (&checkpoint, &identity)
        && let Some(bound) = cp.source()
        && bound != identity
    {
        problems.push(format!(
            "the bronze stream (checkpoint {}) reads source folder {bound}, not {identity} \
             (--data)",
            dir.display(),
        ));
    }
    if let Some(cp) = &checkpoint
        && version.is_none()
    {
        let mut any_done = false;
        for batch_id in cp.planned().await? {
            any_done |= cp.is_done(batch_id).await?;
        }
        if any_done {
            problems.push(format!(
                "the bronze stream's checkpoint {} has done batches, but {} does not exist",
                dir.display(),
                catalog::BRONZE.name
            ));
        }
    }
    let Some(folder) = folder else {
        return Ok((None, 0, problems));
    };
    let mut seen = match &checkpoint {
        Some(cp) => Seen::as_the_stream_saw(cp).await?,
        None => Seen::default(),
    };
    // Every file there counts, whether or not its writer has finished it.
    let now = Completeness {
        settle: Duration::ZERO,
        recheck: Duration::ZERO,
    };
    let found = discover::discover(&folder, &mut seen, now).await?;
    let bytes = found.files.iter().map(|f| f.size).sum();
    Ok((Some(found.files.len() as u64), bytes, problems))
}

/// The files each named source's stream (`bronze --source NAME=...`) has not taken yet, from
/// the folder its checkpoint is bound to: (name, files, bytes).
async fn named_sources_to_do(
    warehouse: &Warehouse,
    data: &DataDir,
) -> Result<Vec<(String, u64, u64)>> {
    let default = warehouse.checkpoint(catalog::BRONZE.name, DEFAULT_SOURCE)?;
    let mut found = Vec::new();
    for (name, checkpoint) in crate::stream::checkpoint::all(&default, DEFAULT_SOURCE).await? {
        if name == DEFAULT_SOURCE {
            continue;
        }
        let Some(location) = checkpoint
            .source()
            .and_then(|bound| crate::warehouse::parse_location(bound).ok())
        else {
            continue;
        };
        let folder = location.folder(data.options())?;
        let mut seen = Seen::as_the_stream_saw(&checkpoint).await?;
        let now = Completeness {
            settle: Duration::ZERO,
            recheck: Duration::ZERO,
        };
        let listed = discover::discover(&folder, &mut seen, now).await?;
        let bytes = listed.files.iter().map(|f| f.size).sum();
        found.push((name, listed.files.len() as u64, bytes));
    }
    Ok(found)
}

/// Rows of a table's latest version, from its files' statistics (0 if it does not exist).
fn rows_of(table: Option<&DeltaTable>) -> u64 {
    table
        .and_then(|t| t.snapshot().ok())
        .and_then(|s| super::file_totals(s).0)
        .unwrap_or(0)
}

/// Rows waiting for their patient: the waiting table as of the version silver recorded.
pub(crate) async fn waiting_rows(
    warehouse: &Warehouse,
    table: (&TableId, &DeltaTable),
) -> Result<u64> {
    let id = TableId::of(warehouse, &catalog::SILVER_WAITING);
    let Some(version) =
        delta::app_version(table.0, table.1, &catalog::SILVER_WAITING_VERSION.id()).await?
    else {
        return Ok(0);
    };
    let table = delta::open_version(&id, version as u64).await?;
    Ok(rows_of(Some(&table)))
}

/// `1 file`, `2 files`.
fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

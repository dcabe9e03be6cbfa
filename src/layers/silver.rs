//! `silver`: new bronze rows, typed, cleaned and joined with the patient dimension, MERGEd into
//! `fact_heartrate_silver` on (`device_id`, `mrn`, `datetime`).
//!
//! Incremental: silver's commits carry application transactions naming the bronze version and
//! the `dim_patients` version they consumed. A refresh reads only the files bronze added after
//! that version (bronze is append-only, so its log lists them), and one with nothing new writes
//! nothing. Nothing is dropped: a row that cannot be typed goes to
//! `fact_heartrate_silver_quarantine` with its reason; a reading whose patient is not in the
//! dimension waits in `fact_heartrate_silver_waiting` and joins when the patient arrives; a
//! renamed patient's rows are updated. Every write is safe to repeat: a refresh that dies
//! anywhere is finished by the next one (docs/ARCHITECTURE.md).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use chrono_tz::Tz;
use deltalake::DeltaTable;
use deltalake::arrow::array::{
    Array, AsArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, StringBuilder,
    StringViewArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::datafusion::prelude::{SessionContext, col, lit};
use deltalake::datafusion::scalar::ScalarValue;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::logstore::get_actions;
use deltalake::protocol::SaveMode;
use serde::Serialize;

use crate::delta::{self, TableId};
use crate::error::{Error, Result};
use crate::output::{Report, Steps, version_change};
use crate::parallel;
use crate::source::json::{POSITION, SOURCE_COLUMNS, bronze_schema};
use crate::stream::failpoint::failpoint;
use crate::transform::{Renderer, parse_epoch_micros, parse_float, parse_id};
use crate::warehouse::{Warehouse, tables};

/// The application id of silver's transactions for the bronze version it consumed.
pub const FROM_BRONZE: &str = "silver<-fact_heartrate_bronze";
/// The application id of silver's transactions for the dimension version it consumed.
pub const FROM_PATIENTS: &str = "silver<-dim_patients";
/// The application id of silver's transactions for the version of the waiting table that goes
/// with its own: a refresh reads the waiting rows as of that version, so a refresh that died
/// after replacing them (and before silver's commit) loses none.
pub const WAITING_VERSION: &str = "silver<-fact_heartrate_silver_waiting";

#[derive(Debug, Clone)]
pub struct SilverOptions {
    /// New bronze rows are taken in slices of about this many rows (whole bronze commits), each
    /// its own silver commit, so memory is bounded by a slice, not by what bronze received.
    pub max_rows_per_commit: u64,
    /// The zone the `date` and `time` strings are rendered in. A new silver table takes it
    /// (default UTC) and keeps it as the table property [`TIMEZONE_PROPERTY`]; an existing one
    /// refuses another, since its rows would then mix zones.
    pub timezone: Option<Tz>,
}

impl Default for SilverOptions {
    fn default() -> Self {
        Self {
            max_rows_per_commit: SLICE_ROWS,
            timezone: None,
        }
    }
}

/// The table property holding the zone of silver's `date` and `time` strings.
pub const TIMEZONE_PROPERTY: &str = "medallion.timezone";

/// What a `silver` refresh did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SilverReport {
    pub table: String,
    /// The bronze version consumed before this refresh (None: nothing yet).
    pub bronze_from: Option<u64>,
    pub bronze_to: u64,
    pub patients_version: u64,
    /// New bronze rows read.
    pub rows_read: u64,
    /// Rows that had been waiting for their patient, tried again.
    pub waiting_before: u64,
    pub inserted: u64,
    pub updated: u64,
    pub renamed: u64,
    pub quarantined: u64,
    /// Rows still waiting for their patient after this refresh.
    pub waiting: u64,
    pub version_before: Option<u64>,
    pub version_after: Option<u64>,
    pub duration_ms: u64,
}

impl Report for SilverReport {
    fn summary(&self) -> String {
        let from = self
            .bronze_from
            .map_or("the start".to_string(), |v| format!("v{v}"));
        let version = version_change(self.version_before, self.version_after);
        format!(
            "silver: bronze {from} -> v{}, {} rows read, {} inserted, {} updated, {} renamed, \
             {} quarantined, {} waiting for their patient; {} {} ({} ms)",
            self.bronze_to,
            self.rows_read,
            self.inserted,
            self.updated,
            self.renamed,
            self.quarantined,
            self.waiting,
            self.table,
            version,
            self.duration_ms
        )
    }
}

/// The Arrow schema of `fact_heartrate_silver`.
pub fn silver_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("device_id", DataType::Int32, false),
        Field::new("mrn", DataType::Int64, false),
        Field::new("datetime", timestamp(), false),
        Field::new("date", DataType::Utf8, false),
        Field::new("time", DataType::Utf8, false),
        Field::new("heartrate", DataType::Float64, false),
        Field::new("patient_name", DataType::Utf8, false),
    ]))
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The schema of `fact_heartrate_silver_quarantine`: the bronze row, and why it was refused.
pub fn quarantine_schema() -> SchemaRef {
    let mut fields: Vec<Field> = bronze_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("error", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// A typed reading, before the join.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub device_id: i32,
    pub mrn: i64,
    pub datetime: i64,
    pub heartrate: f64,
}

/// Type one bronze row; `Err` says why it cannot be.
pub fn type_row(
    device_id: Option<&str>,
    heartrate: Option<&str>,
    mrn: Option<&str>,
    time: Option<&str>,
) -> std::result::Result<Reading, String> {
    let (d, h, m, t) = (
        need("device_id", device_id)?,
        need("heartrate", heartrate)?,
        need("mrn", mrn)?,
        need("time", time)?,
    );
    Ok(Reading {
        device_id: parse_id(d)
            .ok_or_else(|| format!("device_id {d:?} is not a positive 32-bit integer"))?,
        mrn: parse_id(m).ok_or_else(|| format!("mrn {m:?} is not a positive integer"))?,
        datetime: parse_epoch_micros(t)
            .ok_or_else(|| format!("time {t:?} is not epoch seconds between 1970 and 9999"))?,
        heartrate: plausible_heartrate(h)?,
    })
}

/// The heart rates silver accepts, in beats per minute. Negative readings down to −1000 are the
/// monitors' device faults (kept: the lab's gold counts them); anything beyond is not a
/// reading, and a value such as `1e300` would make every aggregate of its patient meaningless
/// (or overflow), so it is refused with the reason, like any row that cannot be typed.
pub const HEARTRATE_LIMIT: f64 = 1000.0;

fn plausible_heartrate(text: &str) -> std::result::Result<f64, String> {
    let rate = match parse_float(text) {
        Some(rate) => rate,
        // A number too large for a double (`1e400`) is out of range, not "not a number".
        None if text.trim().parse::<f64>().is_ok_and(f64::is_infinite)
            && !text.trim().to_ascii_lowercase().contains("inf") =>
        {
            f64::INFINITY
        }
        None => return Err(format!("heartrate {text:?} is not a number")),
    };
    if rate.abs() > HEARTRATE_LIMIT {
        return Err(format!(
            "heartrate {text:?} is outside the plausible range -{HEARTRATE_LIMIT} to \
             {HEARTRATE_LIMIT} beats per minute"
        ));
    }
    // -0.0 is 0 beats per minute (and would otherwise print, and compare in min/max, apart).
    Ok(rate + 0.0)
}

fn need<'a>(name: &str, value: Option<&'a str>) -> std::result::Result<&'a str, String> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("{name} is missing"))
}

/// The default of [`SilverOptions::max_rows_per_commit`].
pub const SLICE_ROWS: u64 = 500_000;

/// Refresh silver from bronze's new rows and the dimension's changes, a slice at a time;
/// `steps` hears how many bronze rows there are to read and each slice as it is committed.
pub async fn run(
    warehouse: &Warehouse,
    options: &SilverOptions,
    steps: &mut dyn Steps,
) -> Result<SilverReport> {
    let start = Instant::now();
    // Sizing the bar reads bronze's pending commits once more: only for someone watching.
    let to_read = if steps.watched() {
        rows_to_read(warehouse).await?
    } else {
        0
    };
    steps.begin("silver", to_read, "bronze rows");
    let (mut total, mut more) = refresh_once(warehouse, options).await?;
    let mut slices = 1;
    let mut slice_done = |report: &SilverReport, slices: u64| {
        steps.advance(
            report.rows_read,
            &format!("{slices} slices, bronze v{}", report.bronze_to),
        );
    };
    slice_done(&total, slices);
    while more {
        let (next, again) = refresh_once(warehouse, options).await?;
        slices += 1;
        slice_done(&next, slices);
        more = again;
        total = SilverReport {
            bronze_from: total.bronze_from,
            version_before: total.version_before,
            rows_read: total.rows_read + next.rows_read,
            waiting_before: total.waiting_before,
            inserted: total.inserted + next.inserted,
            updated: total.updated + next.updated,
            renamed: total.renamed + next.renamed,
            quarantined: total.quarantined + next.quarantined,
            ..next
        };
    }
    total.duration_ms = start.elapsed().as_millis() as u64;
    steps.end();
    Ok(total)
}

/// The bronze rows silver has not read yet, by the statistics of the files bronze's later
/// commits added (0 when there is no bronze, or its log no longer holds them).
async fn rows_to_read(warehouse: &Warehouse) -> Result<u64> {
    let bronze_id = TableId::new(warehouse, tables::BRONZE);
    let Some(bronze) = delta::open(&bronze_id).await? else {
        return Ok(0);
    };
    let id = TableId::new(warehouse, tables::SILVER);
    let from = match delta::open(&id).await? {
        Some(silver) => delta::app_version(&id, &silver, FROM_BRONZE).await?,
        None => None,
    };
    let first = from.map_or(1, |v| v as u64 + 1);
    let latest = bronze.version().unwrap_or(0);
    if first > latest {
        return Ok(0);
    }
    Ok(
        match added_files(&bronze_id, &bronze, first, latest, u64::MAX).await? {
            Some((adds, _)) => adds.iter().map(|(_, add)| add_rows(add)).sum(),
            None => 0,
        },
    )
}

/// A data file's rows, by its statistics (0 without them).
fn add_rows(add: &Add) -> u64 {
    add.get_stats()
        .ok()
        .flatten()
        .map_or(0, |s| s.num_records.max(0) as u64)
}

/// One refresh, over about `max_rows_per_commit` new bronze rows; says whether bronze has more.
async fn refresh_once(
    warehouse: &Warehouse,
    options: &SilverOptions,
) -> Result<(SilverReport, bool)> {
    let start = Instant::now();
    let bronze_id = TableId::new(warehouse, tables::BRONZE);
    let bronze = delta::open(&bronze_id)
        .await?
        .ok_or_else(|| bronze_id.not_found(" (run `medallion bronze` first)"))?;
    let dim_id = TableId::new(warehouse, tables::DIM_PATIENTS);
    let dim = delta::open(&dim_id)
        .await?
        .ok_or_else(|| dim_id.not_found(" (run `medallion patients` first)"))?;
    let id = TableId::new(warehouse, tables::SILVER);
    let silver = delta::open(&id).await?;

    let latest = bronze.version().unwrap_or(0);
    let mut bronze_to = latest;
    let patients_version = dim.version().unwrap_or(0);
    let (bronze_from, dim_from, waiting_from) = match &silver {
        Some(t) => (
            delta::app_version(&id, t, FROM_BRONZE).await?,
            delta::app_version(&id, t, FROM_PATIENTS).await?,
            delta::app_version(&id, t, WAITING_VERSION).await?,
        ),
        None => (None, None, None),
    };
    let timezone = table_timezone(&id, silver.as_ref(), options.timezone)?;
    let mut report = SilverReport {
        table: id.name.clone(),
        bronze_from: bronze_from.map(|v| v as u64),
        bronze_to,
        patients_version,
        version_before: silver.as_ref().and_then(DeltaTable::version),
        version_after: silver.as_ref().and_then(DeltaTable::version),
        ..SilverReport::default()
    };
    if bronze_from == Some(bronze_to as i64) && dim_from == Some(patients_version as i64) {
        report.duration_ms = start.elapsed().as_millis() as u64;
        return Ok((report, false));
    }

    // The rows to (re)consider: those waiting for their patient (as silver last left them) and
    // bronze's new rows, each with its delivery position (`_batch_id`, `_position`), by which
    // the last delivery of a reading wins, whatever order they are read in. Rows of bronze versions the quarantine table already covers were refused
    // (or not) by a refresh that died before silver's commit: they are not refused again.
    let waiting_id = TableId::new(warehouse, tables::SILVER_WAITING);
    let waiting_table = delta::open(&waiting_id).await?;
    let waiting_rows = match (&waiting_table, waiting_from) {
        (Some(_), Some(version)) => {
            let table = delta::open_version(&waiting_id, version as u64).await?;
            delta::read_all(&waiting_id, &table).await?
        }
        _ => Vec::new(),
    };
    report.waiting_before = waiting_rows.iter().map(|b| b.num_rows() as u64).sum();
    let q_id = TableId::new(warehouse, tables::SILVER_QUARANTINE);
    let refused_up_to = match delta::open(&q_id).await? {
        Some(t) => delta::app_version(&q_id, &t, FROM_BRONZE)
            .await?
            .map(|v| v as u64),
        None => None,
    };
    let first = bronze_from.map_or(1, |v| v as u64 + 1);
    let (seen_rows, new_rows) = if first > bronze_to {
        (Vec::new(), Vec::new())
    } else {
        match added_files(
            &bronze_id,
            &bronze,
            first,
            bronze_to,
            options.max_rows_per_commit,
        )
        .await?
        {
            Some((adds, slice_to)) => {
                bronze_to = slice_to;
                let (seen, new): (Vec<_>, Vec<_>) = adds
                    .into_iter()
                    .partition(|(version, _)| refused_up_to.is_some_and(|q| *version <= q));
                let strip = |v: Vec<(u64, Add)>| v.into_iter().map(|(_, add)| add).collect();
                (
                    read_files(&bronze_id, &bronze, strip(seen)).await?,
                    read_files(&bronze_id, &bronze, strip(new)).await?,
                )
            }
            // The log no longer holds every commit (expired): a first refresh reads all of it.
            None if bronze_from.is_none() => {
                (Vec::new(), delta::read_all(&bronze_id, &bronze).await?)
            }
            None => {
                return Err(Error::Refused {
                    table: bronze_id.name.clone(),
                    message: format!(
                        "commits after v{} are no longer in the log (expired): silver cannot \
                         read bronze incrementally from there; recreate silver to read bronze whole",
                        first - 1
                    ),
                });
            }
        }
    };
    report.bronze_to = bronze_to;
    report.rows_read = seen_rows
        .iter()
        .chain(&new_rows)
        .map(|b| b.num_rows() as u64)
        .sum();
    let names = patient_names(&dim_id, &dim).await?;

    // Type, join, keep apart what cannot be used.
    let mut joined: Vec<Joined<'_>> = Vec::new();
    let mut still_waiting: Vec<RecordBatch> = Vec::new();
    let mut refused: Vec<(RecordBatch, Vec<String>)> = Vec::new();
    let inputs = [(waiting_rows, false), (seen_rows, false), (new_rows, true)];
    let items: Vec<(&RecordBatch, bool)> = inputs
        .iter()
        .flat_map(|(batches, refuse)| batches.iter().map(move |b| (b, *refuse)))
        .collect();
    let typed = parallel::map_shares(
        &items,
        |(batch, _)| batch.num_rows(),
        parallel::min_share_rows(),
        |share| {
            share
                .iter()
                .map(|(batch, refuse)| type_batch(batch, *refuse, &names))
                .collect::<Result<Vec<_>>>()
        },
    );
    let mut waiting_keys = Vec::new();
    for share in typed {
        for typed in share? {
            joined.extend(typed.joined);
            still_waiting.push(typed.waiting);
            waiting_keys.push(typed.waiting_keys);
            refused.extend(typed.refused);
        }
    }
    drop(inputs);
    let still_waiting: Vec<RecordBatch> = still_waiting
        .iter()
        .zip(last_waiting(&waiting_keys))
        .map(|(batch, rows)| take_rows(batch, &rows))
        .collect::<Result<_>>()?;
    report.waiting = still_waiting.iter().map(|b| b.num_rows() as u64).sum();
    report.quarantined = refused.iter().map(|(b, _)| b.num_rows() as u64).sum();

    let mut txns = vec![
        Transaction::new(FROM_BRONZE, bronze_to as i64),
        Transaction::new(FROM_PATIENTS, patients_version as i64),
    ];

    // 1. Refused rows, once per bronze version.
    if !refused.is_empty() {
        let batches = refused
            .into_iter()
            .map(|(b, reasons)| with_error(&b, reasons))
            .collect::<Result<Vec<_>>>()?;
        delta::append_once(
            &q_id,
            &quarantine_schema(),
            "Rows silver refused, with the reason",
            batches,
            txns[0].clone(),
            CommitProperties::default(),
        )
        .await?;
    }
    // 2. The rows still waiting replace the previous set; silver's commit records the version.
    let mut waiting_version = waiting_from;
    if report.waiting > 0 || report.waiting_before > 0 {
        let table =
            match waiting_table {
                Some(t) => t,
                None => delta::create(
                    &waiting_id,
                    &bronze_schema(),
                    &[],
                    "Bronze rows whose patient is not in dim_patients yet; silver joins them later",
                )
                .await?,
            };
        let mut batches: Vec<RecordBatch> = still_waiting
            .into_iter()
            .filter(|b| b.num_rows() > 0)
            .collect();
        if batches.is_empty() {
            // Overwrite with nothing: the write needs a batch to know the schema.
            batches.push(RecordBatch::new_empty(bronze_schema()));
        }
        let table = table
            .write(batches)
            .with_save_mode(SaveMode::Overwrite)
            .await
            .map_err(waiting_id.err("replace the waiting rows"))?;
        waiting_version = table.version().map(|v| v as i64);
    }
    if let Some(version) = waiting_version {
        txns.push(Transaction::new(WAITING_VERSION, version));
    }
    failpoint(crate::stream::failpoint::points::SILVER_BEFORE_COMMIT);

    // 3. Renamed patients, then the new rows; the last commit records what was consumed.
    let mut silver = match silver {
        Some(t) => t,
        None => {
            delta::create(
                &id,
                &silver_schema(),
                &[
                    ("delta.enableChangeDataFeed", "true"),
                    (TIMEZONE_PROPERTY, timezone.name()),
                ],
                "Heart-rate readings, typed and joined with the patient's name",
            )
            .await?
        }
    };
    if dim_from.is_some_and(|from| from != patients_version as i64) {
        let renamed = renamed_patients(&id, &silver, &names).await?;
        if !renamed.is_empty() {
            let (table, updated) = rename(&id, silver, &renamed).await?;
            silver = table;
            report.renamed = updated;
        }
    }
    let rows = last_per_key(joined);
    // One batch per UTC month (rows come in time order): an append writes each as its own file,
    // by its own task, so that a later MERGE (a re-delivery) rewrites only the files of the
    // months it touches. Rendering is spread over the cores.
    let months = by_month(&rows, |r| r.key.2, FILE_ROWS);
    let source: Vec<RecordBatch> = parallel::map_shares(
        &months,
        |month| month.len(),
        parallel::min_share_rows(),
        |share| {
            share
                .iter()
                .map(|month| readings_batch(month, timezone))
                .collect::<Vec<_>>()
        },
    )
    .into_iter()
    .flatten()
    .collect();
    let props = CommitProperties::default().with_application_transactions(txns.clone());
    let files = file_ranges(&id, &silver)?;
    let writes = plan_writes(
        source.into_iter().filter(|b| b.num_rows() > 0).collect(),
        |batch| time_range(std::slice::from_ref(batch)),
        &files,
    );
    // The last write carries the transactions (what this slice consumed): MERGEs first,
    // without them (a MERGE run again leaves matching rows alone), then the append with them.
    // A refresh that dies between the two has recorded nothing: the next one reads the slice
    // again, its MERGEs change nothing, and it appends. Two refreshes of one slice at once
    // cannot both append it: the second append's transactions conflict with the first's.
    let mut recorded = false;
    let appends = !writes.append.is_empty();
    let merges = writes.merge.len();
    for (i, month) in writes.merge.into_iter().enumerate() {
        let last = i + 1 == merges && !appends;
        let before = silver.version();
        let carried = if last {
            props.clone()
        } else {
            CommitProperties::default()
        };
        let (table, inserted, updated) = merge_readings(&id, silver, vec![month], carried).await?;
        recorded = last && table.version() != before;
        silver = table;
        report.inserted += inserted;
        report.updated += updated;
    }
    if appends {
        if merges > 0 {
            failpoint(crate::stream::failpoint::points::SILVER_BETWEEN_WRITES);
        }
        report.inserted += writes
            .append
            .iter()
            .map(|b| b.num_rows() as u64)
            .sum::<u64>();
        silver = delta::append_parallel(&id, silver, writes.append, txns.clone()).await?;
        recorded = true;
    }
    if !recorded {
        // The last write changed nothing (or there was none), but the versions consumed must
        // be recorded, or the next refresh would read (and quarantine) the same rows again.
        silver = delta::record_transactions(&id, silver, props).await?;
    }
    failpoint(crate::stream::failpoint::points::SILVER_AFTER_COMMIT);
    report.version_after = silver.version();
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok((report, bronze_to < latest))
}

/// The zone to render in: the table's own if it has one (another one asked for is refused),
/// else the one asked for, else UTC.
fn table_timezone(id: &TableId, silver: Option<&DeltaTable>, asked: Option<Tz>) -> Result<Tz> {
    let kept = match silver {
        Some(table) => table
            .snapshot()
            .map_err(id.err("load"))?
            .metadata()
            .configuration()
            .get(TIMEZONE_PROPERTY)
            .cloned(),
        None => None,
    };
    match (kept, asked) {
        (Some(kept), Some(asked)) if kept != asked.name() => Err(Error::Usage(format!(
            "{} renders date and time in {kept} (table property {TIMEZONE_PROPERTY}); refreshing \
             it in {} would mix zones. Leave out --timezone, or recreate {} to change it.",
            id.name,
            asked.name(),
            id.name
        ))),
        (Some(kept), _) => crate::transform::parse_timezone(&kept).map_err(Error::Usage),
        (None, asked) => Ok(asked.unwrap_or(Tz::UTC)),
    }
}

/// The data files bronze's commits from `from` added (bronze is append-only: nothing is
/// removed; files re-added by a compaction carry no new data), with the version that added
/// each, up to the first commit that brings them to `max_rows` rows (by the files' statistics)
/// or to `to`: the next slice, and its last version (a slice ends on a commit boundary). Only
/// the slice's commits are read. `None` if the log no longer holds one of them (expired).
async fn added_files(
    id: &TableId,
    table: &DeltaTable,
    from: u64,
    to: u64,
    max_rows: u64,
) -> Result<Option<(Vec<(u64, Add)>, u64)>> {
    let log = table.log_store();
    let mut adds = Vec::new();
    let mut rows = 0u64;
    for version in from..=to {
        let Some(bytes) = log
            .read_commit_entry(version)
            .await
            .map_err(id.err("read the log"))?
        else {
            return Ok(None);
        };
        for action in get_actions(version, &bytes).map_err(id.err("read the log"))? {
            if let Action::Add(add) = action
                && add.data_change
            {
                rows += add_rows(&add);
                adds.push((version, add));
            }
        }
        if rows >= max_rows {
            return Ok(Some((adds, version)));
        }
    }
    Ok(Some((adds, to)))
}

/// Patients whose name in silver differs from the dimension's: (mrn, new name).
async fn renamed_patients(
    id: &TableId,
    silver: &DeltaTable,
    names: &HashMap<i64, String>,
) -> Result<Vec<(i64, String)>> {
    let ctx = SessionContext::new();
    ctx.register_table("silver", delta::provider(id, silver, &ctx).await?)
        .map_err(id.query_err("read names"))?;
    let batches = ctx
        .sql("SELECT DISTINCT mrn, patient_name FROM silver")
        .await
        .map_err(id.query_err("read names"))?
        .collect()
        .await
        .map_err(id.query_err("read names"))?;
    let mut renamed = BTreeMap::new();
    for batch in &batches {
        let mrns = delta::int64s(batch, "mrn")?;
        let current = delta::strings(batch, "patient_name")?;
        for (mrn, name) in mrns.iter().zip(current.iter()) {
            if let (Some(mrn), Some(name)) = (mrn, name)
                && let Some(new) = names.get(&mrn)
                && new != name
            {
                renamed.insert(mrn, new.clone());
            }
        }
    }
    Ok(renamed.into_iter().collect())
}

async fn read_files(id: &TableId, table: &DeltaTable, adds: Vec<Add>) -> Result<Vec<RecordBatch>> {
    if adds.is_empty() {
        return Ok(Vec::new());
    }
    let ctx = SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .map_err(id.err("read"))?;
    let provider = table
        .table_provider()
        .with_adds(adds)
        .await
        .map_err(id.query_err("read new files"))?;
    ctx.read_table(provider)
        .map_err(id.query_err("read new files"))?
        .collect()
        .await
        .map_err(id.query_err("read new files"))
}

/// mrn -> name of a version of the dimension.
async fn patient_names(id: &TableId, table: &DeltaTable) -> Result<HashMap<i64, String>> {
    let mut names = HashMap::new();
    for batch in delta::read_all(id, table).await? {
        let mrn = delta::int64s(&batch, "mrn")?;
        let name = delta::strings(&batch, "name")?;
        for (mrn, name) in mrn.iter().zip(name.iter()) {
            if let (Some(mrn), Some(name)) = (mrn, name) {
                names.insert(mrn, name.to_string());
            }
        }
    }
    Ok(names)
}

fn take_rows(batch: &RecordBatch, rows: &[u32]) -> Result<RecordBatch> {
    let indices = deltalake::arrow::array::UInt32Array::from(rows.to_vec());
    deltalake::arrow::compute::take_record_batch(batch, &indices).map_err(|e| Error::Arrow {
        context: "select rows".into(),
        source: e,
    })
}

fn with_error(batch: &RecordBatch, reasons: Vec<String>) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(StringArray::from(reasons)));
    RecordBatch::try_new(quarantine_schema(), columns).map_err(|e| Error::Arrow {
        context: "quarantine rows".into(),
        source: e,
    })
}

/// A bronze batch typed: its rows joined with their patient, the rows waiting for their patient,
/// and (when `refuse`) the rows that cannot be typed, with the reason.
struct TypedBatch<'n> {
    joined: Vec<Joined<'n>>,
    waiting: RecordBatch,
    /// The key and delivery of each of `waiting`'s rows.
    waiting_keys: Vec<Delivery>,
    refused: Option<(RecordBatch, Vec<String>)>,
}

fn type_batch<'n>(
    batch: &RecordBatch,
    refuse: bool,
    names: &'n HashMap<i64, String>,
) -> Result<TypedBatch<'n>> {
    let [device, rate, mrn, time] = SOURCE_COLUMNS.map(|name| Text::of(batch, name));
    let (device, rate, mrn, time) = (device?, rate?, mrn?, time?);
    let (batch_ids, positions) = (
        delta::int64s(batch, "_batch_id")?,
        delta::int64s(batch, POSITION)?,
    );
    let mut joined = Vec::with_capacity(batch.num_rows());
    let mut wait_rows = Vec::new();
    let mut waiting_keys = Vec::new();
    let mut bad_rows = Vec::new();
    let mut bad_reasons = Vec::new();
    for i in 0..batch.num_rows() {
        match type_row(device.get(i), rate.get(i), mrn.get(i), time.get(i)) {
            Ok(r) => match names.get(&r.mrn) {
                Some(name) => joined.push(Joined {
                    key: (r.device_id, r.mrn, r.datetime),
                    delivered: (batch_ids.value(i), positions.value(i)),
                    heartrate: r.heartrate,
                    name,
                }),
                None => {
                    wait_rows.push(i as u32);
                    waiting_keys.push((
                        (r.device_id, r.mrn, r.datetime),
                        (batch_ids.value(i), positions.value(i)),
                    ));
                }
            },
            Err(reason) if refuse => {
                bad_rows.push(i as u32);
                bad_reasons.push(reason);
            }
            Err(_) => {} // refused already, by an earlier (interrupted) refresh
        }
    }
    // Bronze's own types for the rows kept as they are (tables come back as `Utf8View`).
    let rows = |rows: &[u32]| delta::conform(&take_rows(batch, rows)?, &bronze_schema());
    let refused = if bad_rows.is_empty() {
        None
    } else {
        Some((rows(&bad_rows)?, bad_reasons))
    };
    Ok(TypedBatch {
        joined,
        waiting: rows(&wait_rows)?,
        waiting_keys,
        refused,
    })
}

/// A reading's key (device_id, mrn, datetime) and its delivery (`_batch_id`, `_position`).
type Delivery = ((i32, i64, i64), (i64, i64));

/// Of the rows waiting for their patient (`keys[b][r]`: row r of batch b), those to keep: the
/// last delivery of each reading (an earlier one would lose anyway when the patient arrives,
/// and keeping it would let the waiting table grow with every re-delivery). Row indices per
/// batch, in order.
fn last_waiting(keys: &[Vec<Delivery>]) -> Vec<Vec<u32>> {
    // Per key: (delivery, batch, row) of the last delivery seen.
    type Kept = ((i64, i64), usize, u32);
    let mut best: HashMap<(i32, i64, i64), Kept> = HashMap::new();
    for (b, batch) in keys.iter().enumerate() {
        for (r, (key, delivered)) in batch.iter().enumerate() {
            let candidate = (*delivered, b, r as u32);
            best.entry(*key)
                .and_modify(|kept| {
                    if candidate.0 > kept.0 {
                        *kept = candidate;
                    }
                })
                .or_insert(candidate);
        }
    }
    let mut kept = vec![Vec::new(); keys.len()];
    for (_, b, r) in best.into_values() {
        kept[b].push(r);
    }
    kept.iter_mut().for_each(|rows| rows.sort_unstable());
    kept
}

/// A text column of bronze, read as it comes (`Utf8View` from a table, `Utf8` otherwise)
/// rather than copied into one encoding.
enum Text {
    View(StringViewArray),
    Plain(StringArray),
}

impl Text {
    fn of(batch: &RecordBatch, name: &str) -> Result<Self> {
        match batch.column_by_name(name).map(|c| c.data_type()) {
            Some(DataType::Utf8View) => Ok(Self::View(
                batch
                    .column_by_name(name)
                    .expect("present")
                    .as_string_view()
                    .clone(),
            )),
            _ => delta::strings(batch, name).map(Self::Plain),
        }
    }

    fn get(&self, i: usize) -> Option<&str> {
        match self {
            Self::View(a) => (!a.is_null(i)).then(|| a.value(i)),
            Self::Plain(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

/// The joined readings as a batch of silver rows.
fn readings_batch(rows: &[Joined<'_>], tz: Tz) -> RecordBatch {
    let mut renderer = Renderer::new(tz);
    let mut dates = StringBuilder::with_capacity(rows.len(), rows.len() * 10);
    let mut times = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
    for row in rows {
        let (date, time) = renderer.render(row.key.2);
        dates.append_value(date);
        times.append_value(time);
    }
    RecordBatch::try_new(
        silver_schema(),
        vec![
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.key.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.key.1))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.key.2))
                    .with_timezone("UTC"),
            ),
            Arc::new(dates.finish()),
            Arc::new(times.finish()),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.heartrate),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.name))),
        ],
    )
    .expect("columns match the schema")
}

/// A typed reading joined with its patient's name, before it goes to silver.
struct Joined<'a> {
    /// (device_id, mrn, datetime): silver's key.
    key: (i32, i64, i64),
    /// When bronze received it: (`_batch_id`, `_position`), a total order of deliveries.
    delivered: (i64, i64),
    heartrate: f64,
    name: &'a str,
}

/// Rows per silver data file at most: a month of the lab's data is about 10,000.
const FILE_ROWS: usize = 1 << 20;

/// `rows`, in time order, cut into runs of one UTC month each (a month of more than
/// `max_rows` rows in several runs).
fn by_month<T>(rows: &[T], time: impl Fn(&T) -> i64, max_rows: usize) -> Vec<&[T]> {
    use chrono::{DateTime, Datelike, NaiveDate};
    let mut runs = Vec::new();
    let mut rest = rows;
    while let Some(first) = rest.first() {
        // The first instant of the next month, in microseconds (None: past chrono's range).
        let next = DateTime::from_timestamp_micros(time(first))
            .map(|t| {
                let (y, m) = (t.year(), t.month());
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                NaiveDate::from_ymd_opt(y, m, 1)
            })
            .and_then(|d| d?.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc().timestamp_micros());
        let end = next.map_or(rest.len(), |next| rest.partition_point(|r| time(r) < next));
        let end = end.clamp(1, max_rows.max(1));
        let (run, tail) = rest.split_at(end);
        runs.push(run);
        rest = tail;
    }
    runs
}

/// One row per key, the last delivered winning (by `delivered`, whatever order the rows come
/// in: waiting rows and scans hand them back in no particular order), sorted by time, then
/// device and patient.
fn last_per_key(mut rows: Vec<Joined<'_>>) -> Vec<Joined<'_>> {
    // Sort by (time, device, patient, delivery), the two halves at once, merge them, keep
    // each key's last.
    let order = |r: &Joined<'_>| ((r.key.2, r.key.0, r.key.1), r.delivered);
    let half = rows.len() / 2;
    let (first, second) = rows.split_at_mut(half);
    std::thread::scope(|scope| {
        scope.spawn(|| first.sort_unstable_by_key(order));
        second.sort_unstable_by_key(order);
    });
    let second = rows.split_off(half);
    let mut kept: Vec<Joined<'_>> = Vec::with_capacity(rows.len() + second.len());
    let (mut a, mut b) = (rows.into_iter().peekable(), second.into_iter().peekable());
    loop {
        let take_b = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => order(y) < order(x),
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => break,
        };
        let Some(row) = (if take_b { b.next() } else { a.next() }) else {
            break;
        };
        match kept.last_mut() {
            Some(last) if last.key == row.key => *last = row,
            _ => kept.push(row),
        }
    }
    kept
}

/// The time range (`datetime` statistics, microseconds) of every data file of silver; a file
/// without statistics spans all time. Delta keeps the statistics to the millisecond: ranges
/// are widened by a second.
fn file_ranges(id: &TableId, silver: &DeltaTable) -> Result<Vec<(i64, i64)>> {
    let files = silver
        .snapshot()
        .map_err(id.err("load"))?
        .add_actions_table(true)
        .map_err(id.err("read file statistics"))?;
    if files.num_rows() == 0 {
        return Ok(Vec::new());
    }
    if files.column_by_name("min.datetime").is_none()
        || files.column_by_name("max.datetime").is_none()
    {
        return Ok(vec![(i64::MIN, i64::MAX)]);
    }
    let lows = delta::int64s(&files, "min.datetime")?;
    let highs = delta::int64s(&files, "max.datetime")?;
    const MARGIN: i64 = 1_000_000;
    Ok(lows
        .iter()
        .zip(highs.iter())
        .map(|range| match range {
            (Some(low), Some(high)) => (low.saturating_sub(MARGIN), high.saturating_add(MARGIN)),
            _ => (i64::MIN, i64::MAX),
        })
        .collect())
}

/// How one slice's readings (one batch per UTC month) reach silver: the months no silver file
/// may hold are appended (one file each), each other month is MERGEd on its own, so that the
/// MERGE rewrites only that month's files and writes one file for it (a single MERGE of
/// several months writes one file spanning them all, which every later MERGE rewrites whole).
#[derive(Debug, Default, PartialEq)]
struct Writes<T> {
    append: Vec<T>,
    merge: Vec<T>,
}

fn plan_writes<T>(
    months: Vec<T>,
    range: impl Fn(&T) -> Option<(i64, i64)>,
    files: &[(i64, i64)],
) -> Writes<T> {
    let mut writes = Writes {
        append: Vec::new(),
        merge: Vec::new(),
    };
    for month in months {
        let held = range(&month)
            .is_some_and(|(min, max)| files.iter().any(|(low, high)| *low <= max && *high >= min));
        if held {
            writes.merge.push(month);
        } else {
            writes.append.push(month);
        }
    }
    writes
}

/// The earliest and latest `datetime` of silver rows.
fn time_range(batches: &[RecordBatch]) -> Option<(i64, i64)> {
    let mut range: Option<(i64, i64)> = None;
    for batch in batches {
        let times = batch
            .column(2)
            .as_primitive::<deltalake::arrow::datatypes::TimestampMicrosecondType>();
        if let (Some(low), Some(high)) = (
            deltalake::arrow::compute::min(times),
            deltalake::arrow::compute::max(times),
        ) {
            range = Some(range.map_or((low, high), |(l, h)| (l.min(low), h.max(high))));
        }
    }
    range
}

fn ts(micros: i64) -> ScalarValue {
    ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into()))
}

/// MERGE readings into silver: insert new keys, update a key whose values changed.
async fn merge_readings(
    id: &TableId,
    silver: DeltaTable,
    source: Vec<RecordBatch>,
    props: CommitProperties,
) -> Result<(DeltaTable, u64, u64)> {
    let (min, max) = time_range(&source).unwrap_or((0, 0));
    let ctx = SessionContext::new();
    let frame = ctx.read_batches(source).map_err(id.query_err("merge"))?;
    // The time range lets the merge skip files that cannot match.
    let predicate = col("target.datetime")
        .gt_eq(lit(ts(min)))
        .and(col("target.datetime").lt_eq(lit(ts(max))))
        .and(col("target.device_id").eq(col("source.device_id")))
        .and(col("target.mrn").eq(col("source.mrn")))
        .and(col("target.datetime").eq(col("source.datetime")));
    let changed = col("target.heartrate")
        .not_eq(col("source.heartrate"))
        .or(col("target.patient_name").not_eq(col("source.patient_name")))
        .or(col("target.date").not_eq(col("source.date")))
        .or(col("target.time").not_eq(col("source.time")));
    let (table, metrics) = silver
        .merge(frame, predicate)
        .with_source_alias("source")
        .with_target_alias("target")
        .with_commit_properties(props)
        .when_matched_update(|u| {
            u.predicate(changed)
                .update("heartrate", col("source.heartrate"))
                .update("patient_name", col("source.patient_name"))
                .update("date", col("source.date"))
                .update("time", col("source.time"))
        })
        .and_then(|m| {
            m.when_not_matched_insert(|i| {
                [
                    "device_id",
                    "mrn",
                    "datetime",
                    "date",
                    "time",
                    "heartrate",
                    "patient_name",
                ]
                .into_iter()
                .fold(i, |i, c| i.set(c, col(format!("source.{c}"))))
            })
        })
        .map_err(id.err("merge"))?
        .await
        .map_err(id.err("merge"))?;
    Ok((
        table,
        metrics.num_target_rows_inserted as u64,
        metrics.num_target_rows_updated as u64,
    ))
}

/// Update the name on every silver row of renamed patients.
async fn rename(
    id: &TableId,
    silver: DeltaTable,
    renamed: &[(i64, String)],
) -> Result<(DeltaTable, u64)> {
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("mrn", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(renamed.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(
                renamed.iter().map(|r| r.1.as_str()),
            )),
        ],
    )
    .expect("columns match");
    let ctx = SessionContext::new();
    let frame = ctx.read_batch(batch).map_err(id.query_err("rename"))?;
    let (table, metrics) = silver
        .merge(frame, col("target.mrn").eq(col("source.mrn")))
        .with_source_alias("source")
        .with_target_alias("target")
        .when_matched_update(|u| {
            u.predicate(col("target.patient_name").not_eq(col("source.name")))
                .update("patient_name", col("source.name"))
        })
        .map_err(id.err("rename"))?
        .await
        .map_err(id.err("rename"))?;
    Ok((table, metrics.num_target_rows_updated as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_delivered_row_of_a_key_wins_whatever_order_rows_come_in() {
        use rand::seq::SliceRandom;
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for len in [0, 1, 2, 3, 10, 1001, 20_000] {
            // Few distinct keys, so duplicates fall in both halves; heartrate = delivery order,
            // over several batches of up to 8,192 rows, then handed over shuffled (as a scan or
            // the waiting table gives them back).
            let mut rows: Vec<Joined<'_>> = (0..len)
                .map(|i| Joined {
                    key: (
                        rng.random_range(1..4),
                        rng.random_range(1..4),
                        rng.random_range(0..8),
                    ),
                    delivered: (i as i64 / 8192, i as i64 % 8192),
                    heartrate: i as f64,
                    name: "n",
                })
                .collect();
            let mut expected: BTreeMap<(i64, i32, i64), f64> = BTreeMap::new();
            for row in &rows {
                expected.insert((row.key.2, row.key.0, row.key.1), row.heartrate);
            }
            rows.shuffle(&mut rng);
            let kept: Vec<((i64, i32, i64), f64)> = last_per_key(rows)
                .into_iter()
                .map(|r| ((r.key.2, r.key.0, r.key.1), r.heartrate))
                .collect();
            assert_eq!(kept, expected.into_iter().collect::<Vec<_>>(), "{len}");
        }
    }

    #[test]
    fn months_no_file_holds_are_appended_and_each_other_month_merged_alone() {
        // (month, its time range); files as (low, high).
        let months = |list: &[(u32, i64, i64)]| list.to_vec();
        let range = |m: &(u32, i64, i64)| Some((m.1, m.2));
        let names = |w: &[(u32, i64, i64)]| w.iter().map(|m| m.0).collect::<Vec<_>>();
        type Case<'a> = (
            &'a [(i64, i64)],
            &'a [(u32, i64, i64)],
            &'a [u32],
            &'a [u32],
        );
        let cases: [Case<'_>; 5] = [
            // An empty table: everything is appended.
            (&[], &[(1, 0, 9), (2, 10, 19)], &[1, 2], &[]),
            // A new month after the table's: appended; a re-delivery in an old month: merged.
            (&[(0, 9)], &[(1, 5, 5), (2, 10, 19)], &[2], &[1]),
            // Two old months touched: two MERGEs, one per month.
            (&[(0, 9), (10, 19)], &[(1, 3, 3), (2, 12, 12)], &[], &[1, 2]),
            // Touching a file's edge counts as held.
            (&[(0, 9)], &[(2, 9, 15)], &[], &[2]),
            // A file without statistics may hold anything.
            (&[(i64::MIN, i64::MAX)], &[(3, 50, 60)], &[], &[3]),
        ];
        for (files, input, append, merge) in cases {
            let writes = plan_writes(months(input), range, files);
            assert_eq!(names(&writes.append), append, "{files:?} {input:?}");
            assert_eq!(names(&writes.merge), merge, "{files:?} {input:?}");
        }
    }

    #[test]
    fn only_the_last_delivery_of_a_waiting_reading_is_kept() {
        let (a, b) = ((1, 10, 100), (1, 10, 200));
        let keys = vec![
            vec![(a, (1, 0)), (b, (1, 1))],
            vec![(a, (3, 5))],
            vec![(a, (2, 0)), (b, (1, 0))],
        ];
        assert_eq!(last_waiting(&keys), vec![vec![1], vec![0], vec![]]);
        assert!(last_waiting(&[]).is_empty());
    }

    #[test]
    fn rows_are_cut_into_utc_months_and_capped_runs() {
        let at = |text: &str| {
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_micros()
        };
        let times = [
            at("1970-01-01T00:00:00Z"),
            at("1970-01-31T23:59:59.999999Z"),
            at("1970-02-01T00:00:00Z"),
            at("2020-12-31T23:59:59Z"),
            at("2021-01-01T00:00:00Z"),
            at("2021-01-15T00:00:00Z"),
            at("2021-01-16T00:00:00Z"),
            at("9999-12-31T23:59:59Z"),
        ];
        let lens = |runs: Vec<&[i64]>| runs.iter().map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(lens(by_month(&times, |t| *t, 100)), [2, 1, 1, 3, 1]);
        assert_eq!(lens(by_month(&times, |t| *t, 2)), [2, 1, 1, 2, 1, 1]);
        assert!(by_month(&[] as &[i64], |t| *t, 2).is_empty());
        assert_eq!(by_month(&times, |t| *t, 0).len(), times.len());
    }

    #[test]
    fn plausible_heart_rates_are_kept_and_zero_has_no_sign() {
        assert_eq!(plausible_heartrate("1000"), Ok(1000.0));
        assert_eq!(plausible_heartrate("-1000"), Ok(-1000.0));
        assert_eq!(plausible_heartrate("71.50"), Ok(71.5));
        let zero = plausible_heartrate("-0.0").unwrap();
        assert!(zero == 0.0 && zero.is_sign_positive());
        assert!(plausible_heartrate("1000.000001").is_err());
        assert!(plausible_heartrate("NaN").is_err());
        let huge = plausible_heartrate("1e400").unwrap_err();
        assert!(huge.contains("outside the plausible range"), "{huge}");
        let inf = plausible_heartrate("inf").unwrap_err();
        assert!(inf.contains("is not a number"), "{inf}");
    }

    #[test]
    fn rows_are_typed_or_refused_with_a_reason() {
        assert_eq!(
            type_row(
                Some("23"),
                Some("96.5"),
                Some("40580129"),
                Some("1578301316.998366")
            ),
            Ok(Reading {
                device_id: 23,
                mrn: 40_580_129,
                datetime: 1_578_301_316_998_366,
                heartrate: 96.5
            })
        );
        let cases = [
            (
                (Some("x"), Some("1"), Some("1"), Some("1")),
                "device_id \"x\" is not",
            ),
            (
                (Some("1"), Some("fast"), Some("1"), Some("1")),
                "heartrate \"fast\" is not",
            ),
            (
                (Some("1"), Some("1e300"), Some("1"), Some("1")),
                "heartrate \"1e300\" is outside the plausible range",
            ),
            (
                (Some("1"), Some("-1000.5"), Some("1"), Some("1")),
                "heartrate \"-1000.5\" is outside the plausible range",
            ),
            (
                (Some("1"), Some("inf"), Some("1"), Some("1")),
                "heartrate \"inf\" is not a number",
            ),
            ((Some("1"), Some("1"), None, Some("1")), "mrn is missing"),
            (
                (Some("1"), Some("1"), Some("1"), Some("yesterday")),
                "time \"yesterday\" is not",
            ),
        ];
        for ((d, h, m, t), expected) in cases {
            let reason = type_row(d, h, m, t).unwrap_err();
            assert!(reason.starts_with(expected), "{reason}");
        }
    }
}

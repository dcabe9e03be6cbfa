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
//!
//! One concern per file: [`slice`] decides which bronze files a refresh reads, [`typing`]
//! types and joins them, [`waiting`] keeps the readings waiting for their patient, [`write`]
//! decides how the readings reach silver (append or MERGE, month by month) and writes them;
//! this file runs a refresh in that order and reports.

mod expect;
mod full;
mod slice;
mod typing;
mod waiting;
mod write;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono_tz::Tz;
use deltalake::DeltaTable;
use deltalake::arrow::array::{RecordBatch, StringArray};
use deltalake::kernel::transaction::CommitProperties;
use serde::Serialize;

use crate::catalog::{self, SILVER_FROM_BRONZE, SILVER_FROM_PATIENTS, SILVER_WAITING_VERSION};
use crate::delta::txn::{consumed, transaction};
use crate::delta::{self, TableId};
use crate::error::{Error, Result};
use crate::failpoint::{failpoint, points};
use crate::output::{Report, Steps, version_change};
use crate::parallel;
use crate::quality::check::RuleCount;
use crate::quality::rules::Rules;
use crate::warehouse::Warehouse;

#[derive(Debug, Clone)]
pub struct SilverOptions {
    /// New bronze rows are taken in slices of about this many rows (whole bronze commits), each
    /// its own silver commit, so memory is bounded by a slice, not by what bronze received.
    pub max_rows_per_commit: u64,
    /// The zone the `date` and `time` strings are rendered in. A new silver table takes it
    /// (default UTC) and keeps it as the table property [`TIMEZONE_PROPERTY`]; an existing one
    /// refuses another, since its rows would then mix zones.
    pub timezone: Option<Tz>,
    /// Rebuild silver from bronze as it is now, as one new version (`full.rs`).
    pub full_refresh: bool,
    /// The expectations file's rules (those on silver apply here).
    pub rules: Rules,
}

impl Default for SilverOptions {
    fn default() -> Self {
        Self {
            max_rows_per_commit: SLICE_ROWS,
            timezone: None,
            full_refresh: false,
            rules: Rules::default(),
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
    /// Rebuilt from the whole of bronze (`--full-refresh`).
    pub full_refresh: bool,
    /// Readings the expectations' `drop` and `quarantine` rules took out (into the quarantine).
    pub dropped: u64,
    /// Earlier deliveries of those readings deleted from silver (the last delivery wins).
    pub deleted: u64,
    /// Each of silver's rules over the readings written.
    pub expectations: Vec<RuleCount>,
}

impl Report for SilverReport {
    fn summary(&self) -> String {
        let from = match self.bronze_from {
            _ if self.full_refresh => "rebuilt from all of bronze at".to_string(),
            Some(v) => format!("v{v} ->"),
            None => "the start ->".to_string(),
        };
        let version = version_change(self.version_before, self.version_after);
        let expectations = if self.expectations.is_empty() {
            String::new()
        } else {
            let rules: Vec<String> = self
                .expectations
                .iter()
                .map(|c| format!("{} {}/{} passed", c.rule, c.passed, c.passed + c.failed))
                .collect();
            format!(
                "; expectations: {} ({} dropped, {} earlier deliveries deleted)",
                rules.join(", "),
                self.dropped,
                self.deleted
            )
        };
        format!(
            "silver: bronze {from} v{}, {} rows read, {} inserted, {} updated, {} renamed, \
             {} quarantined, {} waiting for their patient; {} {} ({} ms){expectations}",
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
    if options.full_refresh {
        steps.begin("silver", 0, "rebuilding from all of bronze");
        let report = full::run(warehouse, options).await;
        steps.end();
        return report;
    }
    // Sizing the bar reads bronze's pending commits once more: only for someone watching.
    let to_read = if steps.watched() {
        pending_rows(warehouse).await?
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
            dropped: total.dropped + next.dropped,
            deleted: total.deleted + next.deleted,
            expectations: {
                let mut counts = std::mem::take(&mut total.expectations);
                expect::add_counts(&mut counts, next.expectations.clone());
                counts
            },
            ..next
        };
    }
    total.duration_ms = start.elapsed().as_millis() as u64;
    steps.end();
    Ok(total)
}

/// The bronze rows silver has not read yet (0 when there is no bronze).
async fn pending_rows(warehouse: &Warehouse) -> Result<u64> {
    let bronze_id = TableId::of(warehouse, &catalog::BRONZE);
    let Some(bronze) = delta::open(&bronze_id).await? else {
        return Ok(0);
    };
    let id = TableId::of(warehouse, &catalog::SILVER);
    let silver = delta::open(&id).await?;
    let from = consumed(&id, silver.as_ref(), SILVER_FROM_BRONZE).await?;
    slice::rows_to_read(&bronze_id, &bronze, from).await
}

/// The tables a refresh reads and writes.
struct Tables {
    bronze_id: TableId,
    dim_id: TableId,
    id: TableId,
    waiting_id: TableId,
    quarantine_id: TableId,
}

impl Tables {
    /// Bronze and the dimension (which must be there), and silver if it is.
    async fn open(&self) -> Result<(DeltaTable, DeltaTable, Option<DeltaTable>)> {
        let bronze = delta::open(&self.bronze_id)
            .await?
            .ok_or_else(|| self.bronze_id.not_found(" (run `medallion bronze` first)"))?;
        let dim = delta::open(&self.dim_id)
            .await?
            .ok_or_else(|| self.dim_id.not_found(" (run `medallion patients` first)"))?;
        Ok((bronze, dim, delta::open(&self.id).await?))
    }

    fn of(warehouse: &Warehouse) -> Self {
        Self {
            bronze_id: TableId::of(warehouse, &catalog::BRONZE),
            dim_id: TableId::of(warehouse, &catalog::DIM_PATIENTS),
            id: TableId::of(warehouse, &catalog::SILVER),
            waiting_id: TableId::of(warehouse, &catalog::SILVER_WAITING),
            quarantine_id: TableId::of(warehouse, &catalog::SILVER_QUARANTINE),
        }
    }
}

/// What a refresh reads: the rows waiting for their patient (as silver last left them), bronze
/// rows of versions the quarantine already covers (not refused again: a refresh that died
/// before silver's commit refused them, or not, already), and bronze's new rows.
struct Input {
    waiting: Vec<RecordBatch>,
    seen: Vec<RecordBatch>,
    new: Vec<RecordBatch>,
    /// The last bronze version read.
    bronze_to: u64,
}

/// One refresh, over about `max_rows_per_commit` new bronze rows; says whether bronze has more.
async fn refresh_once(
    warehouse: &Warehouse,
    options: &SilverOptions,
) -> Result<(SilverReport, bool)> {
    let start = Instant::now();
    let t = Tables::of(warehouse);
    let (bronze, dim, silver) = t.open().await?;

    let latest = bronze.version().unwrap_or(0);
    let patients_version = dim.version().unwrap_or(0);
    let bronze_from = consumed(&t.id, silver.as_ref(), SILVER_FROM_BRONZE).await?;
    let dim_from = consumed(&t.id, silver.as_ref(), SILVER_FROM_PATIENTS).await?;
    let waiting_from = consumed(&t.id, silver.as_ref(), SILVER_WAITING_VERSION).await?;
    let timezone = table_timezone(&t.id, silver.as_ref(), options.timezone)?;
    let mut report = SilverReport {
        table: t.id.name.clone(),
        bronze_from: bronze_from.map(|v| v as u64),
        bronze_to: latest,
        patients_version,
        version_before: silver.as_ref().and_then(DeltaTable::version),
        version_after: silver.as_ref().and_then(DeltaTable::version),
        ..SilverReport::default()
    };
    if bronze_from == Some(latest as i64) && dim_from == Some(patients_version as i64) {
        report.duration_ms = start.elapsed().as_millis() as u64;
        return Ok((report, false));
    }

    let waiting_table = delta::open(&t.waiting_id).await?;
    let input = read_input(
        &t,
        &bronze,
        bronze_from,
        waiting_table.as_ref(),
        waiting_from,
        options,
    )
    .await?;
    let bronze_to = input.bronze_to;
    report.bronze_to = bronze_to;
    // Bronze's new versions hold no new rows (a compaction, a vacuum): silver writes nothing,
    // so gold sees no version for them either; the next refresh reads those commits again,
    // which costs a few log reads.
    let no_new_rows = input.seen.is_empty() && input.new.is_empty();
    if silver.is_some()
        && bronze_from.is_some()
        && dim_from == Some(patients_version as i64)
        && no_new_rows
    {
        report.duration_ms = start.elapsed().as_millis() as u64;
        return Ok((report, false));
    }
    report.waiting_before = rows(&input.waiting);
    report.rows_read = rows(&input.seen) + rows(&input.new);
    let names = patient_names(&t.dim_id, &dim).await?;

    // Type, join, keep apart what cannot be used.
    let typed = type_input(&input, &names)?;
    report.waiting = rows(&typed.waiting);
    report.quarantined = typed.refused.iter().map(|(b, _)| b.num_rows() as u64).sum();
    let mut txns = vec![
        transaction(SILVER_FROM_BRONZE, bronze_to),
        transaction(SILVER_FROM_PATIENTS, patients_version),
    ];
    // The expectations, on the readings as they will be written; a `fail` stops here.
    let readings = write::last_per_key(typed.joined);
    let months = write::month_batches(&readings, timezone);
    let checked = expect::check(&options.rules.of(&catalog::SILVER), &readings, months)?;
    drop(readings);
    report.dropped = checked.reasons.len() as u64;
    report.expectations = checked.counts.clone();
    let mut refused = typed
        .refused
        .into_iter()
        .map(|(b, reasons)| with_error(&b, reasons))
        .collect::<Result<Vec<_>>>()?;
    refused.extend(taken_out(&t, &input, &checked).await?);
    drop(input);

    // 1. Refused rows (and those the expectations took out), once per bronze version.
    if !refused.is_empty() {
        let batches = refused;
        delta::append_once(
            &t.quarantine_id,
            &catalog::SILVER_QUARANTINE,
            batches,
            txns[0].clone(),
            CommitProperties::default(),
        )
        .await?;
    }
    // 2. The rows still waiting replace the previous set; silver's commit records the version.
    let mut waiting_version = waiting_from;
    if report.waiting > 0 || report.waiting_before > 0 {
        waiting_version = waiting::replace(&t.waiting_id, waiting_table, typed.waiting).await?;
    }
    if let Some(version) = waiting_version {
        txns.push(transaction(SILVER_WAITING_VERSION, version as u64));
    }
    failpoint(points::SILVER_BEFORE_COMMIT);

    // 3. Renamed patients, then the new rows; the last write records what was consumed.
    let mut silver = match silver {
        Some(t) => t,
        None => {
            let zone = [(TIMEZONE_PROPERTY, timezone.name())];
            delta::create(&t.id, &catalog::SILVER, &zone).await?
        }
    };
    if dim_from.is_some_and(|from| from != patients_version as i64) {
        let renamed = write::renamed_patients(&t.id, &silver, &names).await?;
        if !renamed.is_empty() {
            let (table, updated) = write::rename(&t.id, silver, &renamed).await?;
            silver = table;
            report.renamed = updated;
        }
    }
    let written =
        write::write_readings(&t.id, silver, checked.months, checked.removed, txns).await?;
    failpoint(points::SILVER_AFTER_COMMIT);
    let table = written.table;
    report.inserted = written.inserted;
    report.updated = written.updated;
    report.deleted = written.deleted;
    report.version_after = table.version();
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok((report, bronze_to < latest))
}

/// The quarantine rows of the readings the expectations took out. Rows of bronze's new
/// versions cannot be in the quarantine yet; a waiting row, or one of versions an interrupted
/// refresh covered, may be: those it holds are left out.
async fn taken_out(
    t: &Tables,
    input: &Input,
    checked: &expect::Checked,
) -> Result<Vec<RecordBatch>> {
    if checked.reasons.is_empty() {
        return Ok(Vec::new());
    }
    let none = std::collections::HashSet::new();
    let new: Vec<&RecordBatch> = input.new.iter().collect();
    let mut out = expect::quarantine_rows(&checked.reasons, &new, &none)?;
    let earlier: Vec<&RecordBatch> = input.waiting.iter().chain(&input.seen).collect();
    let from_earlier = expect::quarantine_rows(&checked.reasons, &earlier, &none)?;
    if !from_earlier.is_empty() {
        let quarantine = delta::open(&t.quarantine_id).await?;
        let held = expect::held_deliveries(&t.quarantine_id, quarantine.as_ref()).await?;
        out.extend(expect::quarantine_rows(&checked.reasons, &earlier, &held)?);
    }
    Ok(out)
}

fn rows(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

/// Read what a refresh considers (see [`Input`]), bronze's rows by the next slice of its log.
async fn read_input(
    t: &Tables,
    bronze: &DeltaTable,
    bronze_from: Option<i64>,
    waiting_table: Option<&DeltaTable>,
    waiting_from: Option<i64>,
    options: &SilverOptions,
) -> Result<Input> {
    let latest = bronze.version().unwrap_or(0);
    let waiting = waiting::rows_as_of(&t.waiting_id, waiting_table, waiting_from).await?;
    let quarantine = delta::open(&t.quarantine_id).await?;
    let refused_up_to = consumed(&t.quarantine_id, quarantine.as_ref(), SILVER_FROM_BRONZE)
        .await?
        .map(|v| v as u64);
    let first = bronze_from.map_or(1, |v| v as u64 + 1);
    if first > latest {
        return Ok(Input {
            waiting,
            seen: Vec::new(),
            new: Vec::new(),
            bronze_to: latest,
        });
    }
    let max_rows = options.max_rows_per_commit;
    match slice::next_slice(
        &t.bronze_id,
        bronze,
        (first, latest),
        max_rows,
        refused_up_to,
    )
    .await?
    {
        Some(slice) => Ok(Input {
            waiting,
            seen: slice::read_files(&t.bronze_id, bronze, slice.seen).await?,
            new: slice::read_files(&t.bronze_id, bronze, slice.new).await?,
            bronze_to: slice.to,
        }),
        // The log no longer holds every commit (expired): a first refresh reads all of it.
        None if bronze_from.is_none() => Ok(Input {
            waiting,
            seen: Vec::new(),
            new: delta::read_all(&t.bronze_id, bronze).await?,
            bronze_to: latest,
        }),
        None => Err(Error::Refused {
            table: t.bronze_id.name.clone(),
            message: format!(
                "commits after v{} are no longer in the log (expired after \
                 delta.logRetentionDuration): silver cannot read bronze incrementally from \
                 there, and reading on would skip their rows; run `medallion silver \
                 --full-refresh` to rebuild silver from bronze as it is now (a new version: \
                 time travel keeps the old ones)",
                first - 1
            ),
        }),
    }
}

/// The input typed: readings joined with their patient, the rows still waiting (the last
/// delivery of each), the refused rows with their reasons.
struct Typed<'n> {
    joined: Vec<write::Joined<'n>>,
    waiting: Vec<RecordBatch>,
    refused: Vec<(RecordBatch, Vec<String>)>,
}

fn type_input<'n>(input: &Input, names: &'n HashMap<i64, String>) -> Result<Typed<'n>> {
    let inputs = [
        (&input.waiting, false),
        (&input.seen, false),
        (&input.new, true),
    ];
    let items: Vec<(&RecordBatch, bool)> = inputs
        .iter()
        .flat_map(|(batches, refuse)| batches.iter().map(move |b| (b, *refuse)))
        .collect();
    let shares = parallel::map_shares(
        &items,
        |(batch, _)| batch.num_rows(),
        parallel::min_share_rows(),
        |share| {
            share
                .iter()
                .map(|(batch, refuse)| typing::type_batch(batch, *refuse, names))
                .collect::<Result<Vec<_>>>()
        },
    );
    let mut typed = Typed {
        joined: Vec::new(),
        waiting: Vec::new(),
        refused: Vec::new(),
    };
    let mut waiting_keys = Vec::new();
    for share in shares {
        for batch in share? {
            typed.joined.extend(batch.joined);
            typed.waiting.push(batch.waiting);
            waiting_keys.push(batch.waiting_keys);
            typed.refused.extend(batch.refused);
        }
    }
    typed.waiting = typed
        .waiting
        .iter()
        .zip(waiting::last_waiting(&waiting_keys))
        .map(|(batch, rows)| delta::take_rows(batch, &rows))
        .collect::<Result<_>>()?;
    Ok(typed)
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

fn with_error(batch: &RecordBatch, reasons: Vec<String>) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(StringArray::from(reasons)));
    RecordBatch::try_new(catalog::SILVER_QUARANTINE.schema(), columns).map_err(|e| Error::Arrow {
        context: "quarantine rows".into(),
        source: e,
    })
}

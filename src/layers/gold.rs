//! `gold`: per-patient aggregates (`fact_heartrate_gold`) and per-patient daily aggregates
//! (`fact_heartrate_daily`), refreshed by MERGE from silver's changes.
//!
//! Incremental: each gold commit records (application transaction) the silver version it
//! consumed. A refresh reads silver's change data feed after that version. A patient whose
//! changes are only new readings gets its gold row from the old one and the new readings (gold
//! keeps the exact `sum_heartrate` for that); a patient with an updated reading (a
//! re-delivery, a rename) is recomputed from all its silver rows. Daily recomputes the UTC days
//! the changes span. Both MERGE: only rows whose values changed are updated. With nothing new in
//! silver it writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use deltalake::DeltaTable;
use deltalake::arrow::array::{
    Array, ArrayRef, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::datafusion::logical_expr::{Operator, binary_expr};
use deltalake::datafusion::prelude::{DataFrame, Expr, SessionContext, abs, col, lit};
use deltalake::delta_datafusion::DeltaCdfTableProvider;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructField, Transaction};
use serde::Serialize;

use crate::delta::{self, TableId};
use crate::error::Result;
use crate::output::{Report, Steps, version_change};
use crate::stream::failpoint::failpoint;
use crate::warehouse::{Warehouse, tables};

/// Aggregates of doubles closer than this, relative to their size, are the same value computed
/// in another order.
const FLOAT_TOLERANCE: f64 = 1e-9;

/// The application id of gold's transactions for the silver version it consumed.
pub const FROM_SILVER: &str = "gold<-fact_heartrate_silver";

/// What a `gold` refresh did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GoldReport {
    pub table: String,
    pub silver_from: Option<u64>,
    pub silver_to: u64,
    /// Patients whose aggregates were refreshed.
    pub patients: u64,
    /// Of those, patients refreshed from their new readings alone (no rescan of silver).
    pub patients_combined: u64,
    pub inserted: u64,
    pub updated: u64,
    pub daily_inserted: u64,
    pub daily_updated: u64,
    pub version_before: Option<u64>,
    pub version_after: Option<u64>,
    pub duration_ms: u64,
}

impl Report for GoldReport {
    fn summary(&self) -> String {
        let from = self
            .silver_from
            .map_or("the start".to_string(), |v| format!("v{v}"));
        let version = version_change(self.version_before, self.version_after);
        format!(
            "gold: silver {from} -> v{}, {} patients refreshed ({} from new readings only), \
             {} inserted, {} updated (daily: {} inserted, {} updated); {} {} ({} ms)",
            self.silver_to,
            self.patients,
            self.patients_combined,
            self.inserted,
            self.updated,
            self.daily_inserted,
            self.daily_updated,
            self.table,
            version,
            self.duration_ms
        )
    }
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow schema of `fact_heartrate_gold`.
pub fn gold_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("patient_name", DataType::Utf8, true),
        Field::new("avg_heartrate", DataType::Int64, true),
        Field::new("count", DataType::Int64, false),
        Field::new("mrn", DataType::Int64, false),
        Field::new("min_heartrate", DataType::Float64, true),
        Field::new("max_heartrate", DataType::Float64, true),
        Field::new("first_reading", timestamp(), true),
        Field::new("last_reading", timestamp(), true),
        // The exact sum behind `avg_heartrate` (to 10 decimals, as the readings are given):
        // new readings update it without a rescan, and any order of adding gives the same.
        Field::new("sum_heartrate", SUM_TYPE, true),
    ]))
}

/// The Arrow schema of `fact_heartrate_daily`.
pub fn daily_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("mrn", DataType::Int64, false),
        Field::new("date", DataType::Date32, false),
        Field::new("avg_heartrate", DataType::Float64, true),
        Field::new("min_heartrate", DataType::Float64, true),
        Field::new("max_heartrate", DataType::Float64, true),
        Field::new("count", DataType::Int64, false),
    ]))
}

/// `sum_heartrate`'s type: a decimal sum is exact, so adding new readings to an old sum and
/// summing all readings again give the same value (a double sum depends on the order, and
/// `ceil` of the mean turns a last-bit difference into a whole beat per minute).
const SUM_TYPE: DataType = DataType::Decimal128(38, SUM_SCALE as i8);
const SUM_SCALE: u32 = 10;

/// A patient's aggregates from all its silver rows; `avg_heartrate` is then computed from the
/// sum and count by [`Stats::avg`], as for a patient whose new readings are combined with its
/// old row, so that both ways give the same row.
const GOLD_SQL: &str = "SELECT MAX(patient_name) AS patient_name, COUNT(*) AS count, mrn, \
     MIN(heartrate) AS min_heartrate, MAX(heartrate) AS max_heartrate, \
     MIN(datetime) AS first_reading, MAX(datetime) AS last_reading, \
     SUM(CAST(heartrate AS DECIMAL(38, 10))) AS sum_heartrate \
     FROM silver WHERE {filter} GROUP BY mrn";

const DAILY_SQL: &str = "SELECT mrn, CAST(datetime AS DATE) AS date, \
     AVG(heartrate) AS avg_heartrate, MIN(heartrate) AS min_heartrate, \
     MAX(heartrate) AS max_heartrate, COUNT(*) AS count \
     FROM silver WHERE {filter} GROUP BY mrn, CAST(datetime AS DATE)";

/// Refresh gold and daily from silver's changes; `steps` hears the patients and days to
/// refresh.
pub async fn run(warehouse: &Warehouse, steps: &mut dyn Steps) -> Result<GoldReport> {
    let report = refresh(warehouse, steps).await;
    steps.end();
    report
}

async fn refresh(warehouse: &Warehouse, steps: &mut dyn Steps) -> Result<GoldReport> {
    let start = Instant::now();
    let silver_id = TableId::new(warehouse, tables::SILVER);
    let silver = delta::open(&silver_id)
        .await?
        .ok_or_else(|| silver_id.not_found(" (run `medallion silver` first)"))?;
    let id = TableId::new(warehouse, tables::GOLD);
    let daily_id = TableId::new(warehouse, tables::DAILY);
    let gold = delta::open(&id).await?;
    let daily = delta::open(&daily_id).await?;
    let silver_to = silver.version().unwrap_or(0);
    let gold_from = consumed(&id, gold.as_ref()).await?;
    let daily_from = consumed(&daily_id, daily.as_ref()).await?;
    let mut report = GoldReport {
        table: id.name.clone(),
        silver_from: gold_from.map(|v| v as u64),
        silver_to,
        version_before: gold.as_ref().and_then(DeltaTable::version),
        version_after: gold.as_ref().and_then(DeltaTable::version),
        ..GoldReport::default()
    };
    let to = silver_to as i64;
    if gold_from == Some(to) && daily_from == Some(to) {
        report.duration_ms = start.elapsed().as_millis() as u64;
        return Ok(report);
    }

    // Which patients changed: all of them the first time, else those in silver's change feed.
    let ctx = SessionContext::new();
    ctx.register_table("silver", delta::provider(&silver_id, &silver, &ctx).await?)
        .map_err(silver_id.query_err("read"))?;
    // Daily recomputes only the UTC days the changes span (a delivery of new readings: its own
    // days, read from the few silver files whose time statistics overlap them).
    let from = gold_from.min(daily_from);
    let changes = match from {
        None => None,
        Some(from) => {
            Some(silver_changes(&silver_id, &silver, &ctx, from as u64 + 1, silver_to).await?)
        }
    };
    let daily_filter = match &changes {
        None => "true".to_string(),
        Some(changes) => match changes.days() {
            None => "false".to_string(),
            Some((first_day, last_day)) => {
                let at = |micros: i64| format!("arrow_cast({micros}, '{UTC_MICROS}')");
                format!(
                    "{} AND datetime >= {} AND datetime < {}",
                    patients_filter(changes.patients.keys()),
                    at(first_day * DAY_MICROS),
                    at((last_day + 1) * DAY_MICROS)
                )
            }
        },
    };
    let txn = Transaction::new(FROM_SILVER, to);

    // Gold, then daily; each table records what it consumed and is skipped if it has it.
    if gold_from != Some(to) {
        let table = match gold {
            Some(t) => with_sum_column(&id, t).await?,
            None => {
                delta::create(
                    &id,
                    &gold_schema(),
                    &[],
                    "Per-patient heart-rate aggregates",
                )
                .await?
            }
        };
        let (source, refreshed) = match &changes {
            None => (
                vec![gold_aggregates(&silver_id, &ctx, "true".to_string()).await?],
                None,
            ),
            Some(changes) => {
                // Combining needs gold's rows as of the first change read.
                let old = if gold_from == from {
                    gold_rows(&id, &table).await?
                } else {
                    BTreeMap::new()
                };
                let mut combined = Vec::new();
                let mut recompute = BTreeSet::new();
                for (mrn, change) in &changes.patients {
                    match (gold_from == from && change.new_rows_only, old.get(mrn)) {
                        // A new patient: its readings are all new.
                        (true, None) => combined.push((*mrn, change.stats.clone())),
                        (true, Some(before)) if before.sum.is_some() => {
                            combined.push((*mrn, before.combine(&change.stats)));
                        }
                        _ => {
                            recompute.insert(*mrn);
                        }
                    }
                }
                report.patients_combined = combined.len() as u64;
                let mut batches = vec![gold_batch(&combined)];
                if !recompute.is_empty() {
                    let filter = patients_filter(recompute.iter());
                    batches.push(gold_aggregates(&silver_id, &ctx, filter).await?);
                }
                (batches, Some(changes.patients.len() as u64))
            }
        };
        let patients: usize = source.iter().map(RecordBatch::num_rows).sum();
        steps.begin("gold", patients as u64, "patients");
        let source = ctx
            .read_batches(source)
            .map_err(silver_id.query_err("aggregate"))?;
        let (table, merged) =
            merge_aggregates(&id, table, source, &["mrn"], &gold_schema(), &txn).await?;
        steps.advance(patients as u64, "merged into fact_heartrate_gold");
        // The first time every patient is computed: as many as the aggregate's rows.
        report.patients = refreshed.unwrap_or(merged.source_rows);
        report.inserted = merged.inserted;
        report.updated = merged.updated;
        report.version_after = table.version();
    }
    failpoint(crate::stream::failpoint::points::GOLD_BETWEEN_COMMITS);
    if daily_from != Some(to) {
        let days = changes
            .as_ref()
            .map(|changes| changes.days().map_or(0, |(first, last)| last - first + 1));
        match days {
            Some(days) => steps.begin("daily", days.max(0) as u64, "days"),
            None => steps.begin("daily", 0, "every patient's days"),
        }
        let source = ctx
            .sql(&DAILY_SQL.replace("{filter}", &daily_filter))
            .await
            .map_err(silver_id.query_err("aggregate by day"))?;
        let table = match daily {
            Some(t) => t,
            None => {
                delta::create(
                    &daily_id,
                    &daily_schema(),
                    &[],
                    "Per-patient, per-UTC-day heart-rate aggregates",
                )
                .await?
            }
        };
        let (_, merged) = merge_aggregates(
            &daily_id,
            table,
            source,
            &["mrn", "date"],
            &daily_schema(),
            &txn,
        )
        .await?;
        report.daily_inserted = merged.inserted;
        report.daily_updated = merged.updated;
        steps.advance(
            days.unwrap_or(0).max(0) as u64,
            "merged into fact_heartrate_daily",
        );
    }
    failpoint(crate::stream::failpoint::points::GOLD_AFTER_COMMIT);
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

const DAY_MICROS: i64 = 86_400_000_000;
const UTC_MICROS: &str = "Timestamp(µs, \"UTC\")";

fn patients_filter<'a>(mrns: impl Iterator<Item = &'a i64>) -> String {
    let list: Vec<String> = mrns.map(i64::to_string).collect();
    format!("mrn IN ({})", list.join(", "))
}

/// What silver's changes in some versions hold, per patient.
struct Changes {
    patients: BTreeMap<i64, PatientChanges>,
}

struct PatientChanges {
    /// Only inserted rows (new readings): no update, no delete.
    new_rows_only: bool,
    /// The aggregates of the changed rows (of the new rows, when they are all new).
    stats: Stats,
}

impl Changes {
    /// The first and last UTC day (days since the epoch) of the changed rows; `None`: none.
    fn days(&self) -> Option<(i64, i64)> {
        let firsts = self.patients.values().filter_map(|p| p.stats.first);
        let lasts = self.patients.values().filter_map(|p| p.stats.last);
        Some((
            firsts.min()?.div_euclid(DAY_MICROS),
            lasts.max()?.div_euclid(DAY_MICROS),
        ))
    }
}

/// A patient's aggregates, as gold keeps them.
#[derive(Debug, Clone, PartialEq)]
struct Stats {
    name: Option<String>,
    count: i64,
    /// In units of 10^-10 (`sum_heartrate`'s scale).
    sum: Option<i128>,
    min: Option<f64>,
    max: Option<f64>,
    /// Microseconds since the epoch.
    first: Option<i64>,
    last: Option<i64>,
}

impl Stats {
    /// The aggregates of both sets of rows.
    fn combine(&self, new: &Stats) -> Stats {
        fn pick<T: Copy>(a: Option<T>, b: Option<T>, f: impl Fn(T, T) -> T) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(f(a, b)),
                (a, b) => a.or(b),
            }
        }
        Stats {
            name: self.name.clone().max(new.name.clone()),
            count: self.count + new.count,
            sum: pick(self.sum, new.sum, |a, b| a.saturating_add(b)),
            min: pick(self.min, new.min, f64::min),
            max: pick(self.max, new.max, f64::max),
            first: pick(self.first, new.first, i64::min),
            last: pick(self.last, new.last, i64::max),
        }
    }

    /// `avg_heartrate`: the mean, rounded up, as the lab computes it. Silver bounds every
    /// reading ([`crate::layers::silver::HEARTRATE_LIMIT`]), so the mean is a small number; a
    /// mean that is not (a table written before the bound) is null, never a saturated cast.
    fn avg(&self) -> Option<i64> {
        let sum = self.sum?;
        if self.count <= 0 {
            return None;
        }
        // ceil(sum / count), exactly, in integers.
        let divisor = i128::from(self.count) * 10i128.pow(SUM_SCALE);
        let floor = sum.div_euclid(divisor);
        let ceil = floor + i128::from(sum.rem_euclid(divisor) != 0);
        i64::try_from(ceil).ok()
    }
}

/// Per patient, what silver's change data feed holds for versions `from..=to`.
async fn silver_changes(
    id: &TableId,
    silver: &DeltaTable,
    ctx: &SessionContext,
    from: u64,
    to: u64,
) -> Result<Changes> {
    let mut changes = Changes {
        patients: BTreeMap::new(),
    };
    if from > to {
        return Ok(changes);
    }
    let cdf = silver
        .clone()
        .scan_cdf()
        .with_starting_version(from)
        .with_ending_version(to);
    let provider = DeltaCdfTableProvider::try_new(cdf).map_err(id.err("read the change feed"))?;
    ctx.register_table("silver_changes", Arc::new(provider))
        .map_err(id.query_err("read the change feed"))?;
    let batches = ctx
        .sql(
            "SELECT mrn, \
             MAX(CASE WHEN _change_type = 'insert' THEN 0 ELSE 1 END) AS other_changes, \
             MAX(patient_name) AS name, COUNT(*) AS count, \
             SUM(CAST(heartrate AS DECIMAL(38, 10))) AS sum, \
             MIN(heartrate) AS min, MAX(heartrate) AS max, \
             CAST(MIN(datetime) AS BIGINT) AS first, CAST(MAX(datetime) AS BIGINT) AS last \
             FROM silver_changes GROUP BY mrn",
        )
        .await
        .map_err(id.query_err("read the change feed"))?
        .collect()
        .await
        .map_err(id.query_err("read the change feed"))?;
    for batch in &batches {
        let other = delta::int64s(batch, "other_changes")?;
        let mrns = delta::int64s(batch, "mrn")?;
        let stats = read_stats(batch, "name", "count", "sum", "min", "max", "first", "last")?;
        for (i, stats) in stats.into_iter().enumerate() {
            if mrns.is_valid(i) {
                changes.patients.insert(
                    mrns.value(i),
                    PatientChanges {
                        new_rows_only: other.is_valid(i) && other.value(i) == 0,
                        stats,
                    },
                );
            }
        }
    }
    Ok(changes)
}

/// The rows of gold's current version, by mrn.
async fn gold_rows(id: &TableId, table: &DeltaTable) -> Result<BTreeMap<i64, Stats>> {
    let mut rows = BTreeMap::new();
    for batch in delta::read_all(id, table).await? {
        rows.extend(gold_stats(&batch)?);
    }
    Ok(rows)
}

/// (mrn, [`Stats`]) of rows with gold's columns.
fn gold_stats(batch: &RecordBatch) -> Result<Vec<(i64, Stats)>> {
    let mrns = delta::int64s(batch, "mrn")?;
    let stats = read_stats(
        batch,
        "patient_name",
        "count",
        "sum_heartrate",
        "min_heartrate",
        "max_heartrate",
        "first_reading",
        "last_reading",
    )?;
    Ok(mrns
        .iter()
        .zip(stats)
        .filter_map(|(mrn, stats)| Some((mrn?, stats)))
        .collect())
}

/// [`Stats`] from a batch's columns of those names.
#[allow(clippy::too_many_arguments)]
fn read_stats(
    batch: &RecordBatch,
    name: &str,
    count: &str,
    sum: &str,
    min: &str,
    max: &str,
    first: &str,
    last: &str,
) -> Result<Vec<Stats>> {
    let names = delta::strings(batch, name)?;
    let counts = delta::int64s(batch, count)?;
    let (sums, mins, maxs) = (
        delta::decimals(batch, sum, SUM_TYPE)?,
        delta::float64s(batch, min)?,
        delta::float64s(batch, max)?,
    );
    let (firsts, lasts) = (delta::int64s(batch, first)?, delta::int64s(batch, last)?);
    Ok((0..batch.num_rows())
        .map(|i| Stats {
            name: names.is_valid(i).then(|| names.value(i).to_string()),
            count: counts.value(i),
            sum: sums.is_valid(i).then(|| sums.value(i)),
            min: mins.is_valid(i).then(|| mins.value(i)),
            max: maxs.is_valid(i).then(|| maxs.value(i)),
            first: firsts.is_valid(i).then(|| firsts.value(i)),
            last: lasts.is_valid(i).then(|| lasts.value(i)),
        })
        .collect())
}

/// Gold rows of patients whose aggregates were combined.
fn gold_batch(rows: &[(i64, Stats)]) -> RecordBatch {
    let times = |f: fn(&Stats) -> Option<i64>| {
        Arc::new(
            TimestampMicrosecondArray::from_iter(rows.iter().map(|(_, s)| f(s)))
                .with_timezone("UTC"),
        ) as ArrayRef
    };
    RecordBatch::try_new(
        gold_schema(),
        vec![
            Arc::new(StringArray::from_iter(
                rows.iter().map(|(_, s)| s.name.as_deref()),
            )),
            Arc::new(Int64Array::from_iter(rows.iter().map(|(_, s)| s.avg()))),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(_, s)| s.count),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(mrn, _)| *mrn),
            )),
            Arc::new(Float64Array::from_iter(rows.iter().map(|(_, s)| s.min))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|(_, s)| s.max))),
            times(|s| s.first),
            times(|s| s.last),
            Arc::new(
                Decimal128Array::from_iter(rows.iter().map(|(_, s)| s.sum))
                    .with_data_type(SUM_TYPE),
            ),
        ],
    )
    .expect("columns match the schema")
}

/// Gold's rows of the patients `filter` selects, recomputed from all their silver rows.
async fn gold_aggregates(
    silver_id: &TableId,
    ctx: &SessionContext,
    filter: String,
) -> Result<RecordBatch> {
    let batches = ctx
        .sql(&GOLD_SQL.replace("{filter}", &filter))
        .await
        .map_err(silver_id.query_err("aggregate"))?
        .collect()
        .await
        .map_err(silver_id.query_err("aggregate"))?;
    let mut rows = Vec::new();
    for batch in &batches {
        rows.extend(gold_stats(batch)?);
    }
    Ok(gold_batch(&rows))
}

/// `sum_heartrate`'s type in the table's (Delta) schema.
fn sum_kind(id: &TableId) -> Result<deltalake::kernel::DataType> {
    deltalake::kernel::DataType::decimal(38, SUM_SCALE as u8)
        .map_err(|e| id.err("schema")(deltalake::DeltaTableError::from(e)))
}

/// A gold table made before gold kept `sum_heartrate` gets the column (null in its rows, so
/// those patients are recomputed the next time they change).
async fn with_sum_column(id: &TableId, table: DeltaTable) -> Result<DeltaTable> {
    let has_sum = table
        .snapshot()
        .map_err(id.err("load"))?
        .schema()
        .field("sum_heartrate")
        .map(|f| f.data_type().clone());
    match has_sum {
        Some(kind) if kind == sum_kind(id)? => {
            return Ok(table);
        }
        Some(kind) => {
            return Err(crate::error::Error::Refused {
                table: id.name.clone(),
                message: format!(
                    "its sum_heartrate is {kind}, from an earlier medallion; gold now keeps an \
                     exact decimal sum: rebuild gold (remove {} and run gold again)",
                    id.url
                ),
            });
        }
        None => {}
    }
    table
        .add_columns()
        .with_fields([StructField::new("sum_heartrate", sum_kind(id)?, true)])
        .await
        .map_err(id.err("add column sum_heartrate"))
}

/// MERGE aggregates on their key: insert new keys, update rows whose values changed. The
/// commit records the silver version consumed; when nothing changed an empty commit does.
/// What one MERGE of aggregates did.
struct Merged {
    source_rows: u64,
    inserted: u64,
    updated: u64,
}

/// The silver version a gold table recorded (None: it does not exist or never consumed).
async fn consumed(id: &TableId, table: Option<&DeltaTable>) -> Result<Option<i64>> {
    match table {
        Some(t) => delta::app_version(id, t, FROM_SILVER).await,
        None => Ok(None),
    }
}

async fn merge_aggregates(
    id: &TableId,
    table: DeltaTable,
    source: DataFrame,
    key: &[&str],
    schema: &SchemaRef,
    txn: &Transaction,
) -> Result<(DeltaTable, Merged)> {
    let props = CommitProperties::default().with_application_transaction(txn.clone());
    let matches = key
        .iter()
        .map(|k| col(format!("target.{k}")).eq(col(format!("source.{k}"))))
        .reduce(Expr::and)
        .expect("a key has columns");
    let values: Vec<&str> = schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| !key.contains(n))
        .collect();
    // A value changed if it differs, NULL included; floating sums and averages are added in
    // whatever order partitions finish (or combined from an earlier sum), so they may differ in
    // their last bits, relative to their size, without having changed.
    let changed = schema
        .fields()
        .iter()
        .filter(|f| !key.contains(&f.name().as_str()))
        .map(|f| {
            let (t, s) = (
                col(format!("target.{}", f.name())),
                col(format!("source.{}", f.name())),
            );
            let distinct = binary_expr(t.clone(), Operator::IsDistinctFrom, s.clone());
            if f.data_type() == &DataType::Float64 {
                let scale = lit(1.0) + abs(t.clone()) + abs(s.clone());
                let far = abs(t.clone() - s.clone()).gt(lit(FLOAT_TOLERANCE) * scale);
                far.or(t.is_null().not_eq(s.is_null()))
            } else {
                distinct
            }
        })
        .reduce(Expr::or)
        .expect("aggregates have values");
    let before = table.version();
    let (table, metrics) = table
        .merge(source, matches)
        .with_source_alias("source")
        .with_target_alias("target")
        .with_commit_properties(props.clone())
        .when_matched_update(|u| {
            values.iter().fold(u.predicate(changed), |u, c| {
                u.update(*c, col(format!("source.{c}")))
            })
        })
        .and_then(|m| {
            m.when_not_matched_insert(|i| {
                schema.fields().iter().fold(i, |i, f| {
                    i.set(f.name(), col(format!("source.{}", f.name())))
                })
            })
        })
        .map_err(id.err("merge"))?
        .await
        .map_err(id.err("merge"))?;
    let table = if table.version() == before {
        delta::record_transactions(id, table, props).await?
    } else {
        table
    };
    Ok((
        table,
        Merged {
            source_rows: metrics.num_source_rows as u64,
            inserted: metrics.num_target_rows_inserted as u64,
            updated: metrics.num_target_rows_updated as u64,
        },
    ))
}

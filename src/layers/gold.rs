//! `gold`: per-patient aggregates (`fact_heartrate_gold`) and per-patient daily aggregates
//! (`fact_heartrate_daily`), refreshed by MERGE from silver's changes.
//!
//! Incremental: each gold commit records (application transaction) the silver version it
//! consumed. A refresh reads silver's change data feed after that version, recomputes the
//! aggregates of the patients it names (from silver, so every reading counts), and MERGEs them:
//! only rows whose values changed are updated. With nothing new in silver it writes nothing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use deltalake::DeltaTable;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::datafusion::logical_expr::{Operator, binary_expr};
use deltalake::datafusion::prelude::{DataFrame, Expr, SessionContext, col, lit};
use deltalake::delta_datafusion::DeltaCdfTableProvider;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use serde::Serialize;

use crate::delta::{self, TableId};
use crate::error::Result;
use crate::output::{Report, version_change};
use crate::stream::failpoint::failpoint;
use crate::warehouse::{Warehouse, tables};

/// Aggregates of doubles closer than this are the same value computed in another order.
const FLOAT_TOLERANCE: f64 = 1e-9;

/// The application id of gold's transactions for the silver version it consumed.
pub const FROM_SILVER: &str = "gold<-fact_heartrate_silver";

/// What a `gold` refresh did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GoldReport {
    pub table: String,
    pub silver_from: Option<u64>,
    pub silver_to: u64,
    /// Patients whose aggregates were recomputed.
    pub patients: u64,
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
            "gold: silver {from} -> v{}, {} patients recomputed, {} inserted, {} updated \
             (daily: {} inserted, {} updated); {} {} ({} ms)",
            self.silver_to,
            self.patients,
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

const GOLD_SQL: &str = "SELECT MAX(patient_name) AS patient_name, \
     CAST(CEIL(AVG(heartrate)) AS BIGINT) AS avg_heartrate, COUNT(*) AS count, mrn, \
     MIN(heartrate) AS min_heartrate, MAX(heartrate) AS max_heartrate, \
     MIN(datetime) AS first_reading, MAX(datetime) AS last_reading \
     FROM silver WHERE {filter} GROUP BY mrn";

const DAILY_SQL: &str = "SELECT mrn, CAST(datetime AS DATE) AS date, \
     AVG(heartrate) AS avg_heartrate, MIN(heartrate) AS min_heartrate, \
     MAX(heartrate) AS max_heartrate, COUNT(*) AS count \
     FROM silver WHERE {filter} GROUP BY mrn, CAST(datetime AS DATE)";

/// Refresh gold and daily from silver's changes.
pub async fn run(warehouse: &Warehouse) -> Result<GoldReport> {
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
    // Gold recomputes the changed patients from all their rows; daily only the UTC days the
    // changes span (a delivery of new readings: its own days, read from the few silver files
    // whose time statistics overlap them).
    let from = gold_from.min(daily_from);
    let (filter, daily_filter) = match from {
        None => ("true".to_string(), "true".to_string()),
        Some(from) => {
            let changed =
                changed_patients(&silver_id, &silver, &ctx, from as u64 + 1, silver_to).await?;
            report.patients = changed.mrns.len() as u64;
            match changed.days {
                None => ("false".to_string(), "false".to_string()),
                Some((first_day, last_day)) => {
                    let list: Vec<String> = changed.mrns.iter().map(i64::to_string).collect();
                    let patients = format!("mrn IN ({})", list.join(", "));
                    let at = |micros: i64| format!("arrow_cast({micros}, '{UTC_MICROS}')");
                    let days = format!(
                        "{patients} AND datetime >= {} AND datetime < {}",
                        at(first_day * DAY_MICROS),
                        at((last_day + 1) * DAY_MICROS)
                    );
                    (patients, days)
                }
            }
        }
    };
    let txn = Transaction::new(FROM_SILVER, to);

    // Gold, then daily; each table records what it consumed and is skipped if it has it.
    if gold_from != Some(to) {
        let source = ctx
            .sql(&GOLD_SQL.replace("{filter}", &filter))
            .await
            .map_err(silver_id.query_err("aggregate"))?;
        let table = match gold {
            Some(t) => t,
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
        let (table, merged) =
            merge_aggregates(&id, table, source, &["mrn"], &gold_schema(), &txn).await?;
        if from.is_none() {
            // The first time every patient is recomputed: as many as the aggregate's rows.
            report.patients = merged.source_rows;
        }
        let (inserted, updated) = (merged.inserted, merged.updated);
        report.inserted = inserted;
        report.updated = updated;
        report.version_after = table.version();
    }
    failpoint("gold-between-commits");
    if daily_from != Some(to) {
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
    }
    failpoint("gold-after-commit");
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

/// What silver's changes in some versions touch.
struct Changed {
    mrns: BTreeSet<i64>,
    /// The first and last UTC day (days since the epoch) of the changed rows; `None`: no change.
    days: Option<(i64, i64)>,
}

const DAY_MICROS: i64 = 86_400_000_000;
const UTC_MICROS: &str = "Timestamp(µs, \"UTC\")";

/// The patients and days named by silver's changes in versions `from..=to`.
async fn changed_patients(
    id: &TableId,
    silver: &DeltaTable,
    ctx: &SessionContext,
    from: u64,
    to: u64,
) -> Result<Changed> {
    let mut changed = Changed {
        mrns: BTreeSet::new(),
        days: None,
    };
    if from > to {
        return Ok(changed);
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
            "SELECT mrn, CAST(MIN(datetime) AS BIGINT) AS first, \
             CAST(MAX(datetime) AS BIGINT) AS last FROM silver_changes GROUP BY mrn",
        )
        .await
        .map_err(id.query_err("read the change feed"))?
        .collect()
        .await
        .map_err(id.query_err("read the change feed"))?;
    for batch in &batches {
        let mrns = delta::int64s(batch, "mrn")?;
        let firsts = delta::int64s(batch, "first")?;
        let lasts = delta::int64s(batch, "last")?;
        for ((mrn, first), last) in mrns.iter().zip(firsts.iter()).zip(lasts.iter()) {
            let (Some(mrn), Some(first), Some(last)) = (mrn, first, last) else {
                continue;
            };
            changed.mrns.insert(mrn);
            let (first, last) = (first.div_euclid(DAY_MICROS), last.div_euclid(DAY_MICROS));
            changed.days = Some(match changed.days {
                None => (first, last),
                Some((a, b)) => (a.min(first), b.max(last)),
            });
        }
    }
    Ok(changed)
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
    // A value changed if it differs, NULL included; floating averages are summed in whatever
    // order partitions finish, so they may differ in the last bit without having changed.
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
                let far = (t.clone() - s.clone())
                    .gt(lit(FLOAT_TOLERANCE))
                    .or((s.clone() - t.clone()).gt(lit(FLOAT_TOLERANCE)));
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

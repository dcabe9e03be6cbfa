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
//!
//! One concern per file: [`changes`] reads silver's change feed per patient, [`plan`] decides
//! which patients are combined and which recomputed, [`stats`] is the algebra of the
//! aggregates, [`sql`] the queries over silver; this file runs gold, then daily, and reports.

mod changes;
mod plan;
mod scan;
mod sql;
mod stats;

use std::time::Instant;

use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::prelude::{DataFrame, SessionContext};
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use serde::Serialize;

use crate::catalog::{self, GOLD_FROM_SILVER, Table};
use crate::delta::merge::{Merged, Upsert, upsert};
use crate::delta::txn::Staged;
use crate::delta::txn::{consumed, transaction};
use crate::delta::{self, TableId};
use crate::error::Result;
use crate::failpoint::{failpoint, points};
use crate::output::{Report, Steps, version_change};
use crate::quality::check::{RuleCount, Verdicts, evaluate};
use crate::quality::rules::Rules;
use crate::warehouse::Warehouse;

/// How a `gold` refresh runs.
#[derive(Debug, Clone, Copy)]
pub struct GoldOptions {
    /// Rebuild gold and daily from all of silver as it is now, each as one new version.
    pub full_refresh: bool,
    /// A first (or full) refresh scans silver in ranges of UTC days of about this many rows
    /// (0: one scan), so memory holds one range's aggregates.
    pub max_rows_per_scan: u64,
}

/// Silver rows per range of days a first (or full) refresh scans at a time.
pub const SCAN_ROWS: u64 = 4_000_000;

impl Default for GoldOptions {
    fn default() -> Self {
        Self {
            full_refresh: false,
            max_rows_per_scan: SCAN_ROWS,
        }
    }
}

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
    /// Queries over silver by range of days (a first or full refresh; 0 otherwise).
    pub silver_scans: u64,
    pub version_before: Option<u64>,
    pub version_after: Option<u64>,
    pub duration_ms: u64,
    /// Each rule on gold and daily over the rows written.
    pub expectations: Vec<RuleCount>,
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

/// Refresh gold and daily from silver's changes; `steps` hears the patients and days to
/// refresh.
pub async fn run(
    warehouse: &Warehouse,
    options: GoldOptions,
    rules: &Rules,
    steps: &mut dyn Steps,
) -> Result<GoldReport> {
    let report = refresh(warehouse, options, rules, steps).await;
    steps.end();
    report
}

/// A refresh; `full`: rebuild both tables from all of silver as it is now, each as one new
/// version (`--full-refresh`: every patient recomputed, rows replaced, history kept).
async fn refresh(
    warehouse: &Warehouse,
    options: GoldOptions,
    rules: &Rules,
    steps: &mut dyn Steps,
) -> Result<GoldReport> {
    let full = options.full_refresh;
    let start = Instant::now();
    let silver_id = TableId::of(warehouse, &catalog::SILVER);
    let silver = delta::open(&silver_id)
        .await?
        .ok_or_else(|| silver_id.not_found(" (run `medallion silver` first)"))?;
    let id = TableId::of(warehouse, &catalog::GOLD);
    let daily_id = TableId::of(warehouse, &catalog::DAILY);
    let gold = delta::open(&id).await?;
    let daily = delta::open(&daily_id).await?;
    let silver_to = silver.version().unwrap_or(0);
    let (gold_from, daily_from) = if full {
        (None, None)
    } else {
        (
            consumed(&id, gold.as_ref(), GOLD_FROM_SILVER).await?,
            consumed(&daily_id, daily.as_ref(), GOLD_FROM_SILVER).await?,
        )
    };
    let mut report = GoldReport {
        table: id.name.clone(),
        silver_from: gold_from.map(|v| v as u64),
        silver_to,
        version_before: gold.as_ref().and_then(DeltaTable::version),
        version_after: gold.as_ref().and_then(DeltaTable::version),
        ..GoldReport::default()
    };
    let to = Some(silver_to as i64);
    if !full && gold_from == to && daily_from == to {
        report.duration_ms = start.elapsed().as_millis() as u64;
        return Ok(report);
    }

    // Which patients changed: all of them the first time, else those in silver's change feed
    // after the older of the two positions.
    let ctx = delta::session_with(&silver_id, &silver, "silver").await?;
    let from = gold_from.min(daily_from);
    let changes = match from {
        None => None,
        Some(from) => Some(
            changes::silver_changes(&silver_id, &silver, &ctx, from as u64 + 1, silver_to).await?,
        ),
    };
    // Silver's new versions changed no row (a compaction, a vacuum, a commit that only
    // recorded what it consumed): gold and daily write nothing.
    if changes.as_ref().is_some_and(|c| c.patients.is_empty()) && gold.is_some() && daily.is_some()
    {
        report.duration_ms = start.elapsed().as_millis() as u64;
        return Ok(report);
    }
    let txn = transaction(GOLD_FROM_SILVER, silver_to);
    let source = Source {
        silver_id: &silver_id,
        ctx: &ctx,
        changes: changes.as_ref(),
        txn: &txn,
        replace: full,
    };

    // The first (or a full) refresh: both tables' rows from one scan of silver, range of
    // days by range of days; daily's rows are staged (written, not committed) as they come.
    let scanned = match changes {
        Some(_) => None,
        None => {
            let files = scan::file_days(&silver_id, &silver)?;
            let ranges = scan::plan_ranges(files.as_deref(), options.max_rows_per_scan);
            let daily_out = scan::daily_out(
                &daily_id,
                daily.as_ref(),
                daily_from != to,
                full,
                &catalog::DAILY,
            )?;
            Some(scan::scan(&source, &ranges, daily_out, rules, steps).await?)
        }
    };
    report.silver_scans = scanned.as_ref().map_or(0, |s| s.ranges as u64);
    let (scanned_gold, scanned_daily) = match scanned {
        Some(s) => (Some(s.gold), Some((s.daily, s.daily_counts))),
        None => (None, None),
    };

    // Both tables' rows are computed and checked against their rules before either is
    // written: a `fail` rule commits nothing in any table.
    let gold_rows = match gold_from != to {
        true => {
            let table = match gold {
                Some(t) => Some(sql::with_sum_column(&id, t).await?),
                None => None,
            };
            let combinable = gold_from == from;
            let rows = match scanned_gold {
                Some(all) => GoldRows {
                    batches: vec![stats::gold_batch(&all)],
                    refreshed: None,
                    combined: 0,
                },
                None => gold_rows(&id, table.as_ref(), &source, combinable).await?,
            };
            report
                .expectations
                .extend(expect(rules, &catalog::GOLD, &rows.batches)?);
            Some((table, rows))
        }
        false => None,
    };
    let daily_rows = match (daily_from != to, scanned_daily) {
        (false, _) => None,
        (true, Some((out, counts))) => {
            report.expectations.extend(verdict(counts)?);
            match out {
                scan::DailyOut::Stage(staged) => Some(DailyRows::Staged(staged)),
                scan::DailyOut::Keep(batches) => Some(DailyRows::Frame(
                    ctx.read_batches(batches)
                        .map_err(silver_id.query_err("aggregate by day"))?,
                )),
                scan::DailyOut::Skip => None,
            }
        }
        (true, None) => {
            let frame = daily_frame(&source).await?;
            let frame = if rules.of(&catalog::DAILY).is_empty() {
                frame
            } else {
                let batches = delta::collect(&daily_id, "aggregate by day", frame).await?;
                report
                    .expectations
                    .extend(expect(rules, &catalog::DAILY, &batches)?);
                ctx.read_batches(batches)
                    .map_err(silver_id.query_err("aggregate by day"))?
            };
            Some(DailyRows::Frame(frame))
        }
    };

    // Gold, then daily; each table records what it consumed and is skipped if it has it.
    if let Some((table, rows)) = gold_rows {
        let table = match table {
            Some(t) => t,
            None => delta::create(&id, &catalog::GOLD, &[]).await?,
        };
        let (table, refreshed) = refresh_gold(&id, table, &source, rows, steps).await?;
        report.patients = refreshed.patients;
        report.patients_combined = refreshed.combined;
        report.inserted = refreshed.merged.inserted;
        report.updated = refreshed.merged.updated;
        report.version_after = table.version();
    }
    failpoint(points::GOLD_BETWEEN_COMMITS);
    if let Some(rows) = daily_rows {
        let table = match daily {
            Some(t) => t,
            None => delta::create(&daily_id, &catalog::DAILY, &[]).await?,
        };
        let merged = refresh_daily(&daily_id, table, &source, rows, steps).await?;
        report.daily_inserted = merged.inserted;
        report.daily_updated = merged.updated;
    }
    failpoint(points::GOLD_AFTER_COMMIT);
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

/// What gold and daily are refreshed from: silver (registered as `silver` in `ctx`), its
/// changes (None: the first refresh, every patient), and the transaction both record.
struct Source<'a> {
    silver_id: &'a TableId,
    ctx: &'a SessionContext,
    changes: Option<&'a changes::Changes>,
    txn: &'a Transaction,
    /// Replace every row (a full refresh) instead of MERGE.
    replace: bool,
}

/// What gold's refresh did.
struct GoldRefresh {
    patients: u64,
    combined: u64,
    merged: Merged,
}

/// The rules of `table` on its rows about to be written: their counts, or the error of a
/// `fail` rule that failed.
fn expect(rules: &Rules, table: &Table, batches: &[RecordBatch]) -> Result<Vec<RuleCount>> {
    verdict(evaluate(&rules.of(table), batches)?.counts)
}

/// Rules' counts, or the error of a `fail` rule that failed.
fn verdict(counts: Vec<RuleCount>) -> Result<Vec<RuleCount>> {
    let verdicts = Verdicts {
        counts,
        removed: Vec::new(),
    };
    match verdicts.failure() {
        Some(failure) => Err(failure),
        None => Ok(verdicts.counts),
    }
}

/// Daily's new rows: a query to MERGE (or replace with), or rows already written as data
/// files for one commit.
enum DailyRows {
    Frame(DataFrame),
    Staged(Box<Staged>),
}

/// Gold's new rows for the changed patients, before they are merged.
struct GoldRows {
    batches: Vec<RecordBatch>,
    /// Patients in the change feed (None: the first refresh, every patient).
    refreshed: Option<u64>,
    combined: u64,
}

/// Gold's rows of the changed patients: combined from their old rows and new readings where
/// [`plan::plan_patients`] says so (`combinable`: gold is at the version the changes start
/// from), recomputed from silver otherwise; every patient the first time.
async fn gold_rows(
    id: &TableId,
    table: Option<&DeltaTable>,
    source: &Source<'_>,
    combinable: bool,
) -> Result<GoldRows> {
    let (batches, refreshed, combined) = match source.changes {
        None => {
            let all = sql::gold_aggregates(source.silver_id, source.ctx, "true".into()).await?;
            (vec![all], None, 0)
        }
        Some(changes) => {
            // Combining needs gold's rows as of the first change read.
            let old = match table {
                Some(table) if combinable => stats::gold_rows(id, table).await?,
                _ => Default::default(),
            };
            let plan = plan::plan_patients(changes, &old, combinable);
            let mut batches = vec![stats::gold_batch(&plan.combined)];
            if !plan.recompute.is_empty() {
                let filter = sql::patients_filter(plan.recompute.iter());
                batches.push(sql::gold_aggregates(source.silver_id, source.ctx, filter).await?);
            }
            let patients = changes.patients.len() as u64;
            (batches, Some(patients), plan.combined.len() as u64)
        }
    };
    Ok(GoldRows {
        batches,
        refreshed,
        combined,
    })
}

/// Merge gold's new rows.
async fn refresh_gold(
    id: &TableId,
    table: DeltaTable,
    source: &Source<'_>,
    rows: GoldRows,
    steps: &mut dyn Steps,
) -> Result<(DeltaTable, GoldRefresh)> {
    let GoldRows {
        batches,
        refreshed,
        combined,
    } = rows;
    let patients: usize = batches.iter().map(RecordBatch::num_rows).sum();
    steps.begin("gold", patients as u64, "patients");
    let frame = source
        .ctx
        .read_batches(batches)
        .map_err(source.silver_id.query_err("aggregate"))?;
    let (table, merged) = write_aggregates(id, table, frame, &catalog::GOLD, source).await?;
    steps.advance(patients as u64, &format!("merged into {}", id.name));
    let refreshed = GoldRefresh {
        // The first time every patient is computed: as many as the aggregate's rows.
        patients: refreshed.unwrap_or(merged.source_rows),
        combined,
        merged,
    };
    Ok((table, refreshed))
}

/// Recompute daily's rows of the changed patients on the UTC days the changes span (every row
/// the first time).
/// Daily's rows of the changed patients' days, as a query over silver.
async fn daily_frame(source: &Source<'_>) -> Result<DataFrame> {
    let query = sql::DAILY_SQL.replace("{filter}", &sql::daily_filter(source.changes));
    source
        .ctx
        .sql(&query)
        .await
        .map_err(source.silver_id.query_err("aggregate by day"))
}

async fn refresh_daily(
    id: &TableId,
    table: DeltaTable,
    source: &Source<'_>,
    rows: DailyRows,
    steps: &mut dyn Steps,
) -> Result<Merged> {
    let days = source
        .changes
        .map(|changes| changes.days().map_or(0, |(first, last)| last - first + 1));
    match days {
        Some(days) => steps.begin("daily", days.max(0) as u64, "days"),
        None => steps.begin("daily", 0, "every patient's days"),
    }
    let merged = match rows {
        DailyRows::Frame(frame) => {
            write_aggregates(id, table, frame, &catalog::DAILY, source)
                .await?
                .1
        }
        DailyRows::Staged(staged) => {
            let rows = staged.rows();
            let props =
                CommitProperties::default().with_application_transaction(source.txn.clone());
            staged.commit(table, source.replace, props).await?;
            Merged {
                source_rows: rows,
                inserted: rows,
                ..Merged::default()
            }
        }
    };
    steps.advance(
        days.unwrap_or(0).max(0) as u64,
        &format!("merged into {}", id.name),
    );
    Ok(merged)
}

/// Write aggregates as the refresh says: MERGE, or (a full refresh) replace every row.
async fn write_aggregates(
    id: &TableId,
    table: DeltaTable,
    frame: DataFrame,
    of: &Table,
    source: &Source<'_>,
) -> Result<(DeltaTable, Merged)> {
    if !source.replace {
        return merge_aggregates(id, table, frame, of, source.txn).await;
    }
    let schema = table
        .snapshot()
        .map_err(id.err("read"))?
        .snapshot()
        .arrow_schema();
    let batches = delta::collect(id, "aggregate", frame).await?;
    let batches = batches
        .iter()
        .map(|b| delta::conform(b, &schema))
        .collect::<Result<Vec<_>>>()?;
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let table = delta::txn::replace_all(
        id,
        table,
        schema,
        batches,
        CommitProperties::default().with_application_transaction(source.txn.clone()),
    )
    .await?;
    Ok((
        table,
        Merged {
            source_rows: rows,
            inserted: rows,
            ..Merged::default()
        },
    ))
}

/// MERGE aggregates on the table's key: insert new keys, update rows whose values changed (the
/// doubles, summed in whatever order partitions finish, relative to their size). The commit
/// records the silver version consumed; when nothing changed a commit of its own does.
async fn merge_aggregates(
    id: &TableId,
    table: DeltaTable,
    source: DataFrame,
    of: &Table,
    txn: &Transaction,
) -> Result<(DeltaTable, Merged)> {
    let schema = of.schema();
    let values = delta::merge::values(&schema, of.key);
    let columns = delta::merge::values(&schema, &[]);
    let doubles: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| f.data_type() == &deltalake::arrow::datatypes::DataType::Float64)
        .map(|f| f.name().as_str())
        .collect();
    upsert(
        id,
        table,
        source,
        Upsert {
            key: of.key,
            update: &values,
            insert: &columns,
            approximate: &doubles,
            props: CommitProperties::default().with_application_transaction(txn.clone()),
            record_unchanged: true,
            ..Upsert::default()
        },
    )
    .await
}

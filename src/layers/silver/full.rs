//! `silver --full-refresh`: rebuild silver, its waiting rows and its quarantine from bronze as
//! it is now (its current snapshot, however its log was compacted or expired), each table in
//! one new version, so time travel keeps what they held before. The rows are typed, joined and
//! reduced to the last delivery of each reading exactly as the incremental refresh does them;
//! only the input (every bronze row) and the writes (replace instead of append or MERGE)
//! differ. The whole of bronze is held in memory: a rebuild is not sliced.
//!
//! The quarantine is append-only: it gets the refused rows it does not hold yet.
//!
//! Order, as in a refresh: the quarantine, then the waiting rows, then silver, whose commit
//! records what was consumed. A rebuild that dies half way leaves silver as it was (its
//! positions too); the next refresh, incremental or full, goes on from there.

use std::collections::HashSet;
use std::time::Instant;

use deltalake::arrow::array::RecordBatch;

use deltalake::kernel::transaction::CommitProperties;

use super::{
    Input, SilverOptions, SilverReport, Tables, expect, patient_names, rows, table_timezone,
    type_input, waiting, with_error, write,
};
use crate::catalog::{self, SILVER_FROM_BRONZE, SILVER_FROM_PATIENTS, SILVER_WAITING_VERSION};
use crate::delta::txn::{consumed, replace_all, transaction};
use crate::delta::{self};
use crate::error::Result;
use crate::failpoint::{failpoint, points};
use crate::warehouse::Warehouse;

/// Each row's delivery: (source file, batch id, position in the batch).
fn deliveries(batch: &RecordBatch) -> Result<Vec<(String, i64, i64)>> {
    let files = delta::strings(batch, "_source_file")?;
    let batches = delta::int64s(batch, "_batch_id")?;
    let positions = delta::int64s(batch, catalog::POSITION)?;
    Ok((0..batch.num_rows())
        .map(|i| {
            (
                files.value(i).to_string(),
                batches.value(i),
                positions.value(i),
            )
        })
        .collect())
}

pub(super) async fn run(warehouse: &Warehouse, options: &SilverOptions) -> Result<SilverReport> {
    let start = Instant::now();
    let t = Tables::of(warehouse);
    let (bronze, dim, silver) = t.open().await?;
    let latest = bronze.version().unwrap_or(0);
    let patients_version = dim.version().unwrap_or(0);
    let timezone = table_timezone(&t.id, silver.as_ref(), options.timezone)?;
    let mut report = SilverReport {
        table: t.id.name.clone(),
        bronze_from: consumed(&t.id, silver.as_ref(), SILVER_FROM_BRONZE)
            .await?
            .map(|v| v as u64),
        bronze_to: latest,
        patients_version,
        version_before: silver.as_ref().and_then(|t| t.version()),
        full_refresh: true,
        ..SilverReport::default()
    };

    let input = Input {
        waiting: Vec::new(),
        seen: Vec::new(),
        new: delta::read_all(&t.bronze_id, &bronze).await?,
        bronze_to: latest,
    };
    report.rows_read = rows(&input.new);
    let names = patient_names(&t.dim_id, &dim).await?;
    let typed = type_input(&input, &names)?;
    // The current rules, on every reading (a changed rule is applied to all of bronze here);
    // a `fail` stops before anything is committed.
    let readings = write::last_per_key(typed.joined);
    let months = write::month_batches(&readings, timezone);
    let checked = expect::check(&options.rules.of(&catalog::SILVER), &readings, months)?;
    drop(readings);
    report.dropped = checked.reasons.len() as u64;
    report.expectations = checked.counts.clone();
    report.waiting = rows(&typed.waiting);
    report.quarantined = typed.refused.iter().map(|(b, _)| b.num_rows() as u64).sum();
    let mut txns = vec![
        transaction(SILVER_FROM_BRONZE, latest),
        transaction(SILVER_FROM_PATIENTS, patients_version),
    ];

    // 1. The refused rows join the quarantine, which is append-only (`delta.appendOnly`): only
    //    those it does not hold yet, by their delivery (source file, batch, position).
    let quarantine = delta::open(&t.quarantine_id).await?;
    let held: HashSet<(String, i64, i64)> = match &quarantine {
        Some(table) => {
            let mut held = HashSet::new();
            for batch in delta::read_all(&t.quarantine_id, table).await? {
                held.extend(deliveries(&batch)?);
            }
            held
        }
        None => HashSet::new(),
    };
    let mut batches = Vec::new();
    for (batch, reasons) in typed.refused {
        let batch = with_error(&batch, reasons)?;
        let new: Vec<u32> = deliveries(&batch)?
            .into_iter()
            .enumerate()
            .filter(|(_, d)| !held.contains(d))
            .map(|(i, _)| i as u32)
            .collect();
        batches.push(delta::take_rows(&batch, &new)?);
    }
    let quarantine_id = &t.quarantine_id;
    let held_rows = expect::held_deliveries(quarantine_id, quarantine.as_ref()).await?;
    let all: Vec<&RecordBatch> = input.new.iter().collect();
    batches.extend(expect::quarantine_rows(&checked.reasons, &all, &held_rows)?);
    drop(input);
    batches.retain(|b| b.num_rows() > 0);
    if !batches.is_empty() {
        delta::append_once(
            &t.quarantine_id,
            &catalog::SILVER_QUARANTINE,
            batches,
            txns[0].clone(),
            CommitProperties::default(),
        )
        .await?;
    }
    // 2. The waiting rows.
    let waiting_table = delta::open(&t.waiting_id).await?;
    let replaced = if report.waiting > 0 || waiting_table.is_some() {
        waiting::replace(&t.waiting_id, waiting_table, typed.waiting).await?
    } else {
        None
    };
    if let Some(version) = replaced {
        txns.push(transaction(SILVER_WAITING_VERSION, version as u64));
    }
    failpoint(points::SILVER_BEFORE_COMMIT);

    // 3. Silver, with what it consumed.
    let silver = match silver {
        Some(table) => table,
        None => {
            let zone = [(super::TIMEZONE_PROPERTY, timezone.name())];
            delta::create(&t.id, &catalog::SILVER, &zone).await?
        }
    };
    let batches = checked
        .months
        .iter()
        .zip(&checked.removed)
        .map(|(batch, removed)| write::without(batch, removed))
        .collect::<Result<Vec<_>>>()?;
    report.inserted = rows(&batches);
    let table = replace_all(
        &t.id,
        silver,
        catalog::SILVER.schema(),
        batches,
        CommitProperties::default().with_application_transactions(txns),
    )
    .await?;
    failpoint(points::SILVER_AFTER_COMMIT);
    report.version_after = table.version();
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

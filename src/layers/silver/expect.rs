//! Silver's expectations on a slice's readings (the last delivery of each, as they are about to
//! be written): each rule's counts, the readings the `drop` and `quarantine` rules take out
//! (silver's quarantine gets their bronze rows, with the rule's name as the error), and the
//! failure a `fail` rule makes of the refresh before anything is committed.
//!
//! A reading taken out is the last delivery of its key: an earlier delivery silver holds is
//! deleted (by the month's MERGE), so the table is what a full refresh under the same rules
//! would give.

use std::collections::{HashMap, HashSet};

use deltalake::arrow::array::RecordBatch;

use super::write::Joined;
use crate::catalog;
use crate::delta;
use crate::error::Result;
use crate::quality::check::{RuleCount, evaluate};
use crate::quality::rules::Rule;

/// The readings checked.
pub(super) struct Checked {
    /// The month batches, as they came in.
    pub months: Vec<RecordBatch>,
    /// Per month batch, the rows taken out, in order.
    pub removed: Vec<Vec<usize>>,
    /// The deliveries (`_batch_id`, `_position`) of the readings taken out, with the reason.
    pub reasons: HashMap<(i64, i64), String>,
    pub counts: Vec<RuleCount>,
}

/// Check `rows` (the readings, in the order `months` holds them) against `rules`; a `fail`
/// rule that fails is the error.
pub(super) fn check(
    rules: &[&Rule],
    rows: &[Joined<'_>],
    months: Vec<RecordBatch>,
) -> Result<Checked> {
    let verdicts = evaluate(rules, &months)?;
    if let Some(failure) = verdicts.failure() {
        return Err(failure);
    }
    let mut reasons = HashMap::new();
    let mut removed = Vec::with_capacity(months.len());
    let mut offset = 0;
    for (batch, gone) in months.iter().zip(verdicts.removed) {
        let mut rows_out = Vec::with_capacity(gone.len());
        for (row, reason) in gone {
            if let Some(reading) = rows.get(offset + row) {
                reasons.insert(reading.delivered, reason);
            }
            rows_out.push(row);
        }
        removed.push(rows_out);
        offset += batch.num_rows();
    }
    Ok(Checked {
        months,
        removed,
        reasons,
        counts: verdicts.counts,
    })
}

/// The bronze rows of the readings taken out, as quarantine rows (bronze's columns and the
/// reason), from the batches they were read from. `held`: deliveries the quarantine holds
/// already (a refresh that died after its quarantine commit took them out before), left out.
pub(super) fn quarantine_rows(
    reasons: &HashMap<(i64, i64), String>,
    batches: &[&RecordBatch],
    held: &HashSet<(i64, i64)>,
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    if reasons.is_empty() {
        return Ok(out);
    }
    let mut taken: HashSet<(i64, i64)> = HashSet::new();
    let bronze = catalog::BRONZE.schema();
    for batch in batches {
        let ids = delta::int64s(batch, "_batch_id")?;
        let positions = delta::int64s(batch, catalog::POSITION)?;
        let mut rows = Vec::new();
        let mut why = Vec::new();
        for i in 0..batch.num_rows() {
            let delivery = (ids.value(i), positions.value(i));
            if let Some(reason) = reasons.get(&delivery)
                && !held.contains(&delivery)
                && taken.insert(delivery)
            {
                rows.push(i as u32);
                why.push(reason.clone());
            }
        }
        if !rows.is_empty() {
            let rows = delta::conform(&delta::take_rows(batch, &rows)?, &bronze)?;
            out.push(super::with_error(&rows, why)?);
        }
    }
    Ok(out)
}

/// The deliveries (`_batch_id`, `_position`) silver's quarantine holds.
pub(super) async fn held_deliveries(
    id: &delta::TableId,
    quarantine: Option<&deltalake::DeltaTable>,
) -> Result<HashSet<(i64, i64)>> {
    let mut held = HashSet::new();
    if let Some(table) = quarantine {
        for batch in delta::read_all(id, table).await? {
            let ids = delta::int64s(&batch, "_batch_id")?;
            let positions = delta::int64s(&batch, catalog::POSITION)?;
            held.extend((0..batch.num_rows()).map(|i| (ids.value(i), positions.value(i))));
        }
    }
    Ok(held)
}

/// Counts of the same rules over several slices, added up.
pub(super) fn add_counts(total: &mut Vec<RuleCount>, next: Vec<RuleCount>) {
    if total.is_empty() {
        *total = next;
        return;
    }
    for (sum, count) in total.iter_mut().zip(next) {
        sum.passed += count.passed;
        sum.failed += count.failed;
        if sum.sample.is_none() {
            sum.sample = count.sample;
        }
    }
}

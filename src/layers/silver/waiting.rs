//! The readings waiting for their patient (`fact_heartrate_silver_waiting`): read as of the
//! version silver's last commit recorded, kept to the last delivery of each reading, and
//! replaced whole by each refresh that touches them.

use std::collections::HashMap;

use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;
use deltalake::protocol::SaveMode;

use crate::catalog;
use crate::delta::{self, TableId};
use crate::error::Result;

/// A reading's key (device_id, mrn, datetime) and its delivery (`_batch_id`, `_position`).
pub(super) type Delivery = ((i32, i64, i64), (i64, i64));

/// The rows waiting as of `version` (the one silver's last commit recorded; None: none yet).
/// A refresh that died after replacing the set, before silver's commit, is read past.
pub(super) async fn rows_as_of(
    id: &TableId,
    table: Option<&DeltaTable>,
    version: Option<i64>,
) -> Result<Vec<RecordBatch>> {
    match (table, version) {
        (Some(_), Some(version)) => {
            let table = delta::open_version(id, version as u64).await?;
            delta::read_all(id, &table).await
        }
        _ => Ok(Vec::new()),
    }
}

/// Replace the waiting set with `rows` (creating the table the first time); returns the new
/// version, which silver's commit records.
pub(super) async fn replace(
    id: &TableId,
    table: Option<DeltaTable>,
    rows: Vec<RecordBatch>,
) -> Result<Option<i64>> {
    let table = match table {
        Some(t) => t,
        None => delta::create(id, &catalog::SILVER_WAITING, &[]).await?,
    };
    let mut batches: Vec<RecordBatch> = rows.into_iter().filter(|b| b.num_rows() > 0).collect();
    if batches.is_empty() {
        // Overwrite with nothing: the write needs a batch to know the schema.
        batches.push(RecordBatch::new_empty(catalog::SILVER_WAITING.schema()));
    }
    let table = table
        .write(batches)
        .with_save_mode(SaveMode::Overwrite)
        .await
        .map_err(id.err("replace the waiting rows"))?;
    Ok(table.version().map(|v| v as i64))
}

/// Of the rows waiting for their patient (`keys[b][r]`: row r of batch b), those to keep: the
/// last delivery of each reading (an earlier one would lose anyway when the patient arrives,
/// and keeping it would let the waiting table grow with every re-delivery). Row indices per
/// batch, in order.
pub(super) fn last_waiting(keys: &[Vec<Delivery>]) -> Vec<Vec<u32>> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

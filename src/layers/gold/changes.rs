//! What silver's change data feed holds after gold's position, per patient: whether every
//! change is an insert (new readings only), and the aggregates of the changed rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::Array;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::delta_datafusion::DeltaCdfTableProvider;

use super::sql::DAY_MICROS;
use super::stats::{Stats, read_stats};
use crate::delta::{self, TableId};
use crate::error::Result;

/// What silver's changes in some versions hold, per patient.
pub(super) struct Changes {
    pub patients: BTreeMap<i64, PatientChanges>,
}

pub(super) struct PatientChanges {
    /// Only inserted rows (new readings): no update, no delete.
    pub new_rows_only: bool,
    /// The aggregates of the changed rows (of the new rows, when they are all new).
    pub stats: Stats,
}

impl Changes {
    /// The first and last UTC day (days since the epoch) of the changed rows; `None`: none.
    pub fn days(&self) -> Option<(i64, i64)> {
        let firsts = self.patients.values().filter_map(|p| p.stats.first);
        let lasts = self.patients.values().filter_map(|p| p.stats.last);
        Some((
            firsts.min()?.div_euclid(DAY_MICROS),
            lasts.max()?.div_euclid(DAY_MICROS),
        ))
    }
}

/// Per patient, what silver's change data feed holds for versions `from..=to`.
pub(super) async fn silver_changes(
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
    let batches = delta::query(
        ctx,
        id,
        "read the change feed",
        "SELECT mrn, \
         MAX(CASE WHEN _change_type = 'insert' THEN 0 ELSE 1 END) AS other_changes, \
         MAX(patient_name) AS name, COUNT(*) AS count, \
         SUM(CAST(heartrate AS DECIMAL(38, 10))) AS sum, \
         MIN(heartrate) AS min, MAX(heartrate) AS max, \
         CAST(MIN(datetime) AS BIGINT) AS first, CAST(MAX(datetime) AS BIGINT) AS last \
         FROM silver_changes GROUP BY mrn",
    )
    .await?;
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

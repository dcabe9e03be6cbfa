//! The algebra of gold's aggregates: a patient's [`Stats`] (count, exact sum, min, max, first
//! and last reading, name), how two sets of rows combine, the mean as the lab computes it, and
//! gold's rows to and from Arrow.

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::{
    Array, ArrayRef, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};

use crate::catalog::{self, GOLD_SUM_SCALE, GOLD_SUM_TYPE};
use crate::delta::{self, TableId};
use crate::error::Result;

/// A patient's aggregates, as gold keeps them.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Stats {
    pub name: Option<String>,
    pub count: i64,
    /// In units of 10^-10 (`sum_heartrate`'s scale).
    pub sum: Option<i128>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Microseconds since the epoch.
    pub first: Option<i64>,
    pub last: Option<i64>,
}

impl Stats {
    /// The aggregates of both sets of rows.
    pub fn combine(&self, new: &Stats) -> Stats {
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
    /// reading (`HEARTRATE_LIMIT` in silver's typing), so the mean is a small number; a
    /// mean that is not (a table written before the bound) is null, never a saturated cast.
    pub fn avg(&self) -> Option<i64> {
        let sum = self.sum?;
        if self.count <= 0 {
            return None;
        }
        // ceil(sum / count), exactly, in integers.
        let divisor = i128::from(self.count) * 10i128.pow(GOLD_SUM_SCALE);
        let floor = sum.div_euclid(divisor);
        let ceil = floor + i128::from(sum.rem_euclid(divisor) != 0);
        i64::try_from(ceil).ok()
    }
}

/// The rows of gold's current version, by mrn.
pub(super) async fn gold_rows(id: &TableId, table: &DeltaTable) -> Result<BTreeMap<i64, Stats>> {
    let mut rows = BTreeMap::new();
    for batch in delta::read_all(id, table).await? {
        rows.extend(gold_stats(&batch)?);
    }
    Ok(rows)
}

/// (mrn, [`Stats`]) of rows with gold's columns.
pub(super) fn gold_stats(batch: &RecordBatch) -> Result<Vec<(i64, Stats)>> {
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
pub(super) fn read_stats(
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
        delta::decimals(batch, sum, GOLD_SUM_TYPE)?,
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
pub(super) fn gold_batch(rows: &[(i64, Stats)]) -> RecordBatch {
    let times = |f: fn(&Stats) -> Option<i64>| {
        Arc::new(
            TimestampMicrosecondArray::from_iter(rows.iter().map(|(_, s)| f(s)))
                .with_timezone("UTC"),
        ) as ArrayRef
    };
    RecordBatch::try_new(
        catalog::GOLD.schema(),
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
                    .with_data_type(GOLD_SUM_TYPE),
            ),
        ],
    )
    .expect("columns match the schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One unit of `sum` is 10^-10 beats per minute.
    const ONE: i128 = 10_000_000_000;

    #[test]
    fn the_mean_is_the_exact_ceiling_of_sum_over_count() {
        // (sum in units, count) -> avg
        let cases: [(Option<i128>, i64, Option<i64>); 8] = [
            (Some(3 * ONE), 3, Some(1)),
            // 0.1 + 0.2 + 2.7 = 3.0 exactly: the mean is 1, not 2 (a double sum is 3.0000000000000004).
            (Some(ONE / 10 + 2 * ONE / 10 + 27 * ONE / 10), 3, Some(1)),
            (Some(3 * ONE + 1), 3, Some(2)),
            (Some(-3 * ONE), 2, Some(-1)),
            (Some(-3 * ONE - 1), 2, Some(-1)),
            (Some(0), 5, Some(0)),
            (None, 3, None),
            (Some(ONE), 0, None),
        ];
        for (sum, count, avg) in cases {
            let stats = Stats {
                sum,
                count,
                ..Stats::default()
            };
            assert_eq!(stats.avg(), avg, "{sum:?} / {count}");
        }
    }

    #[test]
    fn combining_two_sets_of_rows_gives_the_aggregates_of_both() {
        let old = Stats {
            name: Some("Ann".into()),
            count: 2,
            sum: Some(150 * ONE),
            min: Some(70.0),
            max: Some(80.0),
            first: Some(10),
            last: Some(20),
        };
        let new = Stats {
            name: Some("Ann".into()),
            count: 1,
            sum: Some(-60 * ONE),
            min: Some(-60.0),
            max: Some(-60.0),
            first: Some(30),
            last: Some(30),
        };
        let both = old.combine(&new);
        assert_eq!(both.count, 3);
        assert_eq!(both.sum, Some(90 * ONE));
        assert_eq!((both.min, both.max), (Some(-60.0), Some(80.0)));
        assert_eq!((both.first, both.last), (Some(10), Some(30)));
        assert_eq!(both.avg(), Some(30));
        // A side with no value leaves the other's.
        let empty = Stats::default();
        assert_eq!(old.combine(&empty).min, old.min);
        assert_eq!(empty.combine(&old).sum, old.sum);
    }
}

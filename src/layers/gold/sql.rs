//! Gold's SQL over silver: a patient's aggregates recomputed from all its rows, a day's
//! aggregates, and the filters that pick the changed patients and days.

use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::StructField;

use super::stats::{gold_batch, gold_stats};
use crate::catalog::GOLD_SUM_SCALE;
use crate::delta::{self, TableId};
use crate::error::{Error, Result};

/// A patient's aggregates from all its silver rows; `avg_heartrate` is then computed from the
/// sum and count by [`Stats::avg`], as for a patient whose new readings are combined with its
/// old row, so that both ways give the same row.
pub(super) const GOLD_SQL: &str = "SELECT MAX(patient_name) AS patient_name, COUNT(*) AS count, mrn, \
     MIN(heartrate) AS min_heartrate, MAX(heartrate) AS max_heartrate, \
     MIN(datetime) AS first_reading, MAX(datetime) AS last_reading, \
     SUM(CAST(heartrate AS DECIMAL(38, 10))) AS sum_heartrate \
     FROM silver WHERE {filter} GROUP BY mrn";

/// The UTC day of `datetime` as the days since 1970 (floored, so before 1970 too), in integer
/// arithmetic on its microseconds: `CAST(datetime AS DATE)` goes through a time-zone
/// conversion of every row (12% of gold's profile at x10).
pub(super) const UTC_DAY: &str = "CAST(CAST((CAST(datetime AS BIGINT) - (((CAST(datetime AS BIGINT) \
     % 86400000000) + 86400000000) % 86400000000)) / 86400000000 AS INT) AS DATE)";

pub(super) static DAILY_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT mrn, {UTC_DAY} AS date, \
         AVG(heartrate) AS avg_heartrate, MIN(heartrate) AS min_heartrate, \
         MAX(heartrate) AS max_heartrate, COUNT(*) AS count \
         FROM silver WHERE {{filter}} GROUP BY mrn, {UTC_DAY}"
    )
});

pub(super) const DAY_MICROS: i64 = 86_400_000_000;
pub(super) const UTC_MICROS: &str = "Timestamp(µs, \"UTC\")";

pub(super) fn patients_filter<'a>(mrns: impl Iterator<Item = &'a i64>) -> String {
    let list: Vec<String> = mrns.map(i64::to_string).collect();
    format!("mrn IN ({})", list.join(", "))
}

/// Gold's rows of the patients `filter` selects, recomputed from all their silver rows.
pub(super) async fn gold_aggregates(
    silver_id: &TableId,
    ctx: &SessionContext,
    filter: String,
) -> Result<RecordBatch> {
    let sql = GOLD_SQL.replace("{filter}", &filter);
    let batches = delta::query(ctx, silver_id, "aggregate", &sql).await?;
    let mut rows = Vec::new();
    for batch in &batches {
        rows.extend(gold_stats(batch)?);
    }
    Ok(gold_batch(&rows))
}

/// `sum_heartrate`'s type in the table's (Delta) schema.
fn sum_kind(id: &TableId) -> Result<deltalake::kernel::DataType> {
    deltalake::kernel::DataType::decimal(38, GOLD_SUM_SCALE as u8)
        .map_err(|e| id.err("schema")(deltalake::DeltaTableError::from(e)))
}

/// A gold table made before gold kept `sum_heartrate` gets the column (null in its rows, so
/// those patients are recomputed the next time they change).
pub(super) async fn with_sum_column(id: &TableId, table: DeltaTable) -> Result<DeltaTable> {
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
            return Err(Error::Refused {
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

/// The filter of daily's recomputation: every row the first time (`None`), else the changed
/// patients' rows on the UTC days the changes span (none if nothing changed). The filter on
/// `datetime` lets the scan skip silver files by their statistics.
pub(super) fn daily_filter(changes: Option<&super::changes::Changes>) -> String {
    let Some(changes) = changes else {
        return "true".to_string();
    };
    match changes.days() {
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
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::changes::{Changes, PatientChanges};
    use super::super::stats::Stats;
    use super::*;

    #[tokio::test]
    async fn a_reading_s_utc_day_is_the_one_cast_as_date_gives_before_1970_and_up_to_9999() {
        use deltalake::arrow::array::{Array, Date32Array, TimestampMicrosecondArray};
        use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
        use std::sync::Arc;
        const D: i64 = 86_400_000_000;
        let times = [
            i64::from(i32::MIN) * 1_000_000, // 1901-12-13
            -D - 1,
            -D,
            -1,
            0,
            1,
            D - 1,
            D,
            1_577_975_908_454_126,
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
        ];
        let schema = Arc::new(Schema::new(vec![Field::new(
            "datetime",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        )]));
        let column = TimestampMicrosecondArray::from(times.to_vec()).with_timezone("UTC");
        let batch = RecordBatch::try_new(schema, vec![Arc::new(column)]).unwrap();
        let ctx = SessionContext::new();
        ctx.register_batch("silver", batch).unwrap();
        let sql = format!("SELECT {UTC_DAY} AS ours, CAST(datetime AS DATE) AS theirs FROM silver");
        let rows = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let mut checked = 0;
        for batch in rows {
            let ours = batch
                .column(0)
                .as_any()
                .downcast_ref::<Date32Array>()
                .unwrap();
            let theirs = batch
                .column(1)
                .as_any()
                .downcast_ref::<Date32Array>()
                .unwrap();
            for (i, time) in times.iter().enumerate().take(batch.num_rows()) {
                assert_eq!(ours.value(i), theirs.value(i), "row {i}: {time}");
                assert!(!ours.is_null(i));
                checked += 1;
            }
        }
        assert_eq!(checked, times.len());
    }

    fn changes(list: &[(i64, i64, i64)]) -> Changes {
        Changes {
            patients: list
                .iter()
                .map(|(mrn, first, last)| {
                    let stats = Stats {
                        first: Some(*first),
                        last: Some(*last),
                        ..Stats::default()
                    };
                    let change = PatientChanges {
                        new_rows_only: true,
                        stats,
                    };
                    (*mrn, change)
                })
                .collect::<BTreeMap<_, _>>(),
        }
    }

    /// (changed patients as (mrn, first, last instant)) -> the UTC days daily recomputes, and
    /// the filter it reads silver with.
    #[test]
    fn daily_recomputes_the_changed_patients_on_the_days_their_changes_span() {
        let day = DAY_MICROS;
        let at = |micros: i64| format!("arrow_cast({micros}, '{UTC_MICROS}')");
        type Case = (Vec<(i64, i64, i64)>, Option<(i64, i64)>, String);
        let cases: [Case; 4] = [
            (vec![], None, "false".into()),
            (
                vec![(7, 3 * day + 5, 3 * day + 9)],
                Some((3, 3)),
                format!(
                    "mrn IN (7) AND datetime >= {} AND datetime < {}",
                    at(3 * day),
                    at(4 * day)
                ),
            ),
            (
                vec![(7, 3 * day, 3 * day), (2, 10 * day - 1, 12 * day)],
                Some((3, 12)),
                format!(
                    "mrn IN (2, 7) AND datetime >= {} AND datetime < {}",
                    at(3 * day),
                    at(13 * day)
                ),
            ),
            // Before 1970: days count down from the epoch, not toward it.
            (
                vec![(1, -1, -1)],
                Some((-1, -1)),
                format!(
                    "mrn IN (1) AND datetime >= {} AND datetime < {}",
                    at(-day),
                    at(0)
                ),
            ),
        ];
        for (list, days, filter) in cases {
            let changes = changes(&list);
            assert_eq!(changes.days(), days, "{list:?}");
            assert_eq!(daily_filter(Some(&changes)), filter, "{list:?}");
        }
        assert_eq!(
            daily_filter(None),
            "true",
            "the first refresh reads every row"
        );
    }
}

//! How a slice's readings reach silver: one row per reading (the last delivery wins), cut into
//! UTC months, each month appended (no silver file may hold it) or MERGEd on its own, and the
//! renames of patients whose name changed in the dimension.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono_tz::Tz;
use deltalake::DeltaTable;
use deltalake::arrow::array::{
    AsArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::datafusion::prelude::{SessionContext, col, lit};
use deltalake::datafusion::scalar::ScalarValue;
use deltalake::kernel::transaction::CommitProperties;

use crate::catalog;
use crate::delta::merge::{Merged, Upsert, upsert};
use crate::delta::{self, TableId};
use crate::error::Result;
use crate::transform::Renderer;

/// A typed reading joined with its patient's name, before it goes to silver.
pub(super) struct Joined<'a> {
    /// (device_id, mrn, datetime): silver's key.
    pub key: (i32, i64, i64),
    /// When bronze received it: (`_batch_id`, `_position`), a total order of deliveries.
    pub delivered: (i64, i64),
    pub heartrate: f64,
    pub name: &'a str,
}

/// The joined readings as a batch of silver rows.
pub(super) fn readings_batch(rows: &[Joined<'_>], tz: Tz) -> RecordBatch {
    let mut renderer = Renderer::new(tz);
    let mut dates = StringBuilder::with_capacity(rows.len(), rows.len() * 10);
    let mut times = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
    for row in rows {
        let (date, time) = renderer.render(row.key.2);
        dates.append_value(date);
        times.append_value(time);
    }
    RecordBatch::try_new(
        catalog::SILVER.schema(),
        vec![
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.key.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.key.1))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.key.2))
                    .with_timezone("UTC"),
            ),
            Arc::new(dates.finish()),
            Arc::new(times.finish()),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.heartrate),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.name))),
        ],
    )
    .expect("columns match the schema")
}

/// Rows per silver data file at most: a month of the lab's data is about 10,000.
pub(super) const FILE_ROWS: usize = 1 << 20;

/// `rows`, in time order, cut into runs of one UTC month each (a month of more than
/// `max_rows` rows in several runs).
pub(super) fn by_month<T>(rows: &[T], time: impl Fn(&T) -> i64, max_rows: usize) -> Vec<&[T]> {
    use chrono::{DateTime, Datelike, NaiveDate};
    let mut runs = Vec::new();
    let mut rest = rows;
    while let Some(first) = rest.first() {
        // The first instant of the next month, in microseconds (None: past chrono's range).
        let next = DateTime::from_timestamp_micros(time(first))
            .map(|t| {
                let (y, m) = (t.year(), t.month());
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                NaiveDate::from_ymd_opt(y, m, 1)
            })
            .and_then(|d| d?.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc().timestamp_micros());
        let end = next.map_or(rest.len(), |next| rest.partition_point(|r| time(r) < next));
        let end = end.clamp(1, max_rows.max(1));
        let (run, tail) = rest.split_at(end);
        runs.push(run);
        rest = tail;
    }
    runs
}

/// One row per key, the last delivered winning (by `delivered`, whatever order the rows come
/// in: waiting rows and scans hand them back in no particular order), sorted by time, then
/// device and patient.
pub(super) fn last_per_key(mut rows: Vec<Joined<'_>>) -> Vec<Joined<'_>> {
    // Sort by (time, device, patient, delivery), the two halves at once, merge them, keep
    // each key's last.
    let order = |r: &Joined<'_>| ((r.key.2, r.key.0, r.key.1), r.delivered);
    let half = rows.len() / 2;
    let (first, second) = rows.split_at_mut(half);
    std::thread::scope(|scope| {
        scope.spawn(|| first.sort_unstable_by_key(order));
        second.sort_unstable_by_key(order);
    });
    let second = rows.split_off(half);
    let mut kept: Vec<Joined<'_>> = Vec::with_capacity(rows.len() + second.len());
    let (mut a, mut b) = (rows.into_iter().peekable(), second.into_iter().peekable());
    loop {
        let take_b = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => order(y) < order(x),
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => break,
        };
        let Some(row) = (if take_b { b.next() } else { a.next() }) else {
            break;
        };
        match kept.last_mut() {
            Some(last) if last.key == row.key => *last = row,
            _ => kept.push(row),
        }
    }
    kept
}

/// The time range (`datetime` statistics, microseconds) of every data file of silver; a file
/// without statistics spans all time. Delta keeps the statistics to the millisecond: ranges
/// are widened by a second.
pub(super) fn file_ranges(id: &TableId, silver: &DeltaTable) -> Result<Vec<(i64, i64)>> {
    let files = silver
        .snapshot()
        .map_err(id.err("load"))?
        .add_actions_table(true)
        .map_err(id.err("read file statistics"))?;
    if files.num_rows() == 0 {
        return Ok(Vec::new());
    }
    if files.column_by_name("min.datetime").is_none()
        || files.column_by_name("max.datetime").is_none()
    {
        return Ok(vec![(i64::MIN, i64::MAX)]);
    }
    let lows = delta::int64s(&files, "min.datetime")?;
    let highs = delta::int64s(&files, "max.datetime")?;
    const MARGIN: i64 = 1_000_000;
    Ok(lows
        .iter()
        .zip(highs.iter())
        .map(|range| match range {
            (Some(low), Some(high)) => (low.saturating_sub(MARGIN), high.saturating_add(MARGIN)),
            _ => (i64::MIN, i64::MAX),
        })
        .collect())
}

/// How one slice's readings (one batch per UTC month) reach silver: the months no silver file
/// may hold are appended (one file each), each other month is MERGEd on its own, so that the
/// MERGE rewrites only that month's files and writes one file for it (a single MERGE of
/// several months writes one file spanning them all, which every later MERGE rewrites whole).
#[derive(Debug, Default, PartialEq)]
pub(super) struct Writes<T> {
    pub append: Vec<T>,
    pub merge: Vec<T>,
}

pub(super) fn plan_writes<T>(
    months: Vec<T>,
    range: impl Fn(&T) -> Option<(i64, i64)>,
    files: &[(i64, i64)],
) -> Writes<T> {
    let mut writes = Writes {
        append: Vec::new(),
        merge: Vec::new(),
    };
    for month in months {
        let held = range(&month)
            .is_some_and(|(min, max)| files.iter().any(|(low, high)| *low <= max && *high >= min));
        if held {
            writes.merge.push(month);
        } else {
            writes.append.push(month);
        }
    }
    writes
}

/// The earliest and latest `datetime` of silver rows.
pub(super) fn time_range(batches: &[RecordBatch]) -> Option<(i64, i64)> {
    let mut range: Option<(i64, i64)> = None;
    for batch in batches {
        let times = batch
            .column(2)
            .as_primitive::<deltalake::arrow::datatypes::TimestampMicrosecondType>();
        if let (Some(low), Some(high)) = (
            deltalake::arrow::compute::min(times),
            deltalake::arrow::compute::max(times),
        ) {
            range = Some(range.map_or((low, high), |(l, h)| (l.min(low), h.max(high))));
        }
    }
    range
}

fn ts(micros: i64) -> ScalarValue {
    ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into()))
}

/// The columns a re-delivered reading updates.
const READING_VALUES: [&str; 4] = ["heartrate", "patient_name", "date", "time"];

/// MERGE readings into silver: insert new keys, update a key whose values changed (exactly:
/// the last delivery wins, to the last digit); a reading flagged `taken_out` deletes its key.
pub(super) async fn merge_readings(
    id: &TableId,
    silver: DeltaTable,
    source: Vec<RecordBatch>,
    taken_out: Option<&str>,
    props: CommitProperties,
) -> Result<(DeltaTable, Merged)> {
    let (min, max) = time_range(&source).unwrap_or((0, 0));
    let ctx = SessionContext::new();
    let frame = ctx.read_batches(source).map_err(id.query_err("merge"))?;
    let schema = catalog::SILVER.schema();
    let columns = delta::merge::values(&schema, &[]);
    upsert(
        id,
        silver,
        frame,
        Upsert {
            key: catalog::SILVER.key,
            update: &READING_VALUES,
            insert: &columns,
            // The time range lets the merge skip files that cannot match.
            prune: Some(
                col("target.datetime")
                    .gt_eq(lit(ts(min)))
                    .and(col("target.datetime").lt_eq(lit(ts(max)))),
            ),
            props,
            delete_flag: taken_out,
            ..Upsert::default()
        },
    )
    .await
}

/// Patients whose name in silver differs from the dimension's: (mrn, new name).
pub(super) async fn renamed_patients(
    id: &TableId,
    silver: &DeltaTable,
    names: &HashMap<i64, String>,
) -> Result<Vec<(i64, String)>> {
    let ctx = delta::session_with(id, silver, "silver").await?;
    let batches = delta::query(
        &ctx,
        id,
        "read names",
        "SELECT DISTINCT mrn, patient_name FROM silver",
    )
    .await?;
    let mut renamed = BTreeMap::new();
    for batch in &batches {
        let mrns = delta::int64s(batch, "mrn")?;
        let current = delta::strings(batch, "patient_name")?;
        for (mrn, name) in mrns.iter().zip(current.iter()) {
            if let (Some(mrn), Some(name)) = (mrn, name)
                && let Some(new) = names.get(&mrn)
                && new != name
            {
                renamed.insert(mrn, new.clone());
            }
        }
    }
    Ok(renamed.into_iter().collect())
}

/// Update the name on every silver row of renamed patients; returns how many rows changed.
pub(super) async fn rename(
    id: &TableId,
    silver: DeltaTable,
    renamed: &[(i64, String)],
) -> Result<(DeltaTable, u64)> {
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("mrn", DataType::Int64, false),
            Field::new("patient_name", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(renamed.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(
                renamed.iter().map(|r| r.1.as_str()),
            )),
        ],
    )
    .expect("columns match");
    let ctx = SessionContext::new();
    let frame = ctx.read_batch(batch).map_err(id.query_err("rename"))?;
    let (table, merged) = upsert(
        id,
        silver,
        frame,
        Upsert {
            key: &["mrn"],
            update: &["patient_name"],
            action: "rename",
            ..Upsert::default()
        },
    )
    .await?;
    Ok((table, merged.updated))
}

/// Readings (the last delivery of each, in time order) as one batch per UTC month: an append
/// writes each as its own file, by its own task, so that a later MERGE (a re-delivery)
/// rewrites only the files of the months it touches. Rendering is spread over the cores.
pub(super) fn month_batches(rows: &[Joined<'_>], timezone: Tz) -> Vec<RecordBatch> {
    let months = by_month(rows, |r| r.key.2, FILE_ROWS);
    crate::parallel::map_shares(
        &months,
        |month| month.len(),
        crate::parallel::min_share_rows(),
        |share| {
            share
                .iter()
                .map(|month| readings_batch(month, timezone))
                .collect::<Vec<_>>()
        },
    )
    .into_iter()
    .flatten()
    .filter(|b| b.num_rows() > 0)
    .collect()
}

/// What [`write_readings`] did.
pub(super) struct Written {
    pub table: DeltaTable,
    pub inserted: u64,
    pub updated: u64,
    /// Earlier deliveries deleted: their last delivery was taken out by an expectation.
    pub deleted: u64,
}

/// The column of a MERGE's source that marks a reading taken out by an expectation.
const TAKEN_OUT: &str = "_taken_out";

/// `batch` with [`TAKEN_OUT`] true on the `removed` rows.
fn flag_taken_out(batch: &RecordBatch, removed: &[usize]) -> Result<RecordBatch> {
    let mut flags = vec![false; batch.num_rows()];
    for row in removed {
        if let Some(flag) = flags.get_mut(*row) {
            *flag = true;
        }
    }
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(TAKEN_OUT, DataType::Boolean, false));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(deltalake::arrow::array::BooleanArray::from(flags)));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| {
        crate::error::Error::Arrow {
            context: "mark the readings taken out".into(),
            source: e,
        }
    })
}

/// `batch` without the `removed` rows (in order).
pub(super) fn without(batch: &RecordBatch, removed: &[usize]) -> Result<RecordBatch> {
    if removed.is_empty() {
        return Ok(batch.clone());
    }
    let gone: std::collections::HashSet<usize> = removed.iter().copied().collect();
    let keep: Vec<u32> = (0..batch.num_rows())
        .filter(|r| !gone.contains(r))
        .map(|r| r as u32)
        .collect();
    delta::take_rows(batch, &keep)
}

/// Write the slice's readings (one batch per UTC month, [`month_batches`]; per batch the rows
/// the expectations took out) as [`plan_writes`] decides: MERGEs first, without the
/// transactions (a MERGE run again leaves matching rows alone, and deletes nothing twice),
/// then the append with them, or the transactions alone when nothing changed. A month that
/// is appended leaves its taken-out rows out; a merged one deletes their keys (an earlier
/// delivery) and inserts none of them. A refresh that dies between the two has recorded
/// nothing: the next one reads the slice again, its MERGEs change nothing, and it appends.
/// Two refreshes of one slice at once cannot both append it: the second append's
/// transactions conflict with the first's.
pub(super) async fn write_readings(
    id: &TableId,
    mut silver: DeltaTable,
    months: Vec<RecordBatch>,
    removed: Vec<Vec<usize>>,
    txns: Vec<deltalake::kernel::Transaction>,
) -> Result<Written> {
    let props = CommitProperties::default().with_application_transactions(txns.clone());
    let files = file_ranges(id, &silver)?;
    let pairs: Vec<(RecordBatch, Vec<usize>)> = months
        .into_iter()
        .zip(removed.into_iter().chain(std::iter::repeat_with(Vec::new)))
        .collect();
    let writes = plan_writes(
        pairs,
        |(batch, _)| time_range(std::slice::from_ref(batch)),
        &files,
    );
    let (mut inserted, mut updated, mut deleted) = (0, 0, 0);
    let mut recorded = false;
    let append = writes
        .append
        .iter()
        .map(|(batch, removed)| without(batch, removed))
        .filter(|b| b.as_ref().map_or(true, |b| b.num_rows() > 0))
        .collect::<Result<Vec<_>>>()?;
    let appends = !append.is_empty();
    let merges = writes.merge.len();
    for (i, (month, removed)) in writes.merge.into_iter().enumerate() {
        let last = i + 1 == merges && !appends;
        let before = silver.version();
        let carried = if last {
            props.clone()
        } else {
            CommitProperties::default()
        };
        let (month, flag) = if removed.is_empty() {
            (month, None)
        } else {
            (flag_taken_out(&month, &removed)?, Some(TAKEN_OUT))
        };
        let (table, merged) = merge_readings(id, silver, vec![month], flag, carried).await?;
        recorded = last && table.version() != before;
        silver = table;
        inserted += merged.inserted;
        updated += merged.updated;
        deleted += merged.deleted;
    }
    if appends {
        if merges > 0 {
            crate::failpoint::failpoint(crate::failpoint::points::SILVER_BETWEEN_WRITES);
        }
        inserted += append.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        silver = delta::append_parallel(id, silver, append, txns).await?;
        recorded = true;
    }
    if !recorded {
        // The last write changed nothing (or there was none), but the versions consumed must
        // be recorded, or the next refresh would read (and quarantine) the same rows again.
        silver = delta::record_transactions(id, silver, props).await?;
    }
    Ok(Written {
        table: silver,
        inserted,
        updated,
        deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_delivered_row_of_a_key_wins_whatever_order_rows_come_in() {
        use rand::seq::SliceRandom;
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for len in [0, 1, 2, 3, 10, 1001, 20_000] {
            // Few distinct keys, so duplicates fall in both halves; heartrate = delivery order,
            // over several batches of up to 8,192 rows, then handed over shuffled (as a scan or
            // the waiting table gives them back).
            let mut rows: Vec<Joined<'_>> = (0..len)
                .map(|i| Joined {
                    key: (
                        rng.random_range(1..4),
                        rng.random_range(1..4),
                        rng.random_range(0..8),
                    ),
                    delivered: (i as i64 / 8192, i as i64 % 8192),
                    heartrate: i as f64,
                    name: "n",
                })
                .collect();
            let mut expected: BTreeMap<(i64, i32, i64), f64> = BTreeMap::new();
            for row in &rows {
                expected.insert((row.key.2, row.key.0, row.key.1), row.heartrate);
            }
            rows.shuffle(&mut rng);
            let kept: Vec<((i64, i32, i64), f64)> = last_per_key(rows)
                .into_iter()
                .map(|r| ((r.key.2, r.key.0, r.key.1), r.heartrate))
                .collect();
            assert_eq!(kept, expected.into_iter().collect::<Vec<_>>(), "{len}");
        }
    }

    #[test]
    fn months_no_file_holds_are_appended_and_each_other_month_merged_alone() {
        // (month, its time range); files as (low, high).
        let months = |list: &[(u32, i64, i64)]| list.to_vec();
        let range = |m: &(u32, i64, i64)| Some((m.1, m.2));
        let names = |w: &[(u32, i64, i64)]| w.iter().map(|m| m.0).collect::<Vec<_>>();
        type Case<'a> = (
            &'a [(i64, i64)],
            &'a [(u32, i64, i64)],
            &'a [u32],
            &'a [u32],
        );
        let cases: [Case<'_>; 5] = [
            // An empty table: everything is appended.
            (&[], &[(1, 0, 9), (2, 10, 19)], &[1, 2], &[]),
            // A new month after the table's: appended; a re-delivery in an old month: merged.
            (&[(0, 9)], &[(1, 5, 5), (2, 10, 19)], &[2], &[1]),
            // Two old months touched: two MERGEs, one per month.
            (&[(0, 9), (10, 19)], &[(1, 3, 3), (2, 12, 12)], &[], &[1, 2]),
            // Touching a file's edge counts as held.
            (&[(0, 9)], &[(2, 9, 15)], &[], &[2]),
            // A file without statistics may hold anything.
            (&[(i64::MIN, i64::MAX)], &[(3, 50, 60)], &[], &[3]),
        ];
        for (files, input, append, merge) in cases {
            let writes = plan_writes(months(input), range, files);
            assert_eq!(names(&writes.append), append, "{files:?} {input:?}");
            assert_eq!(names(&writes.merge), merge, "{files:?} {input:?}");
        }
    }

    #[test]
    fn rows_are_cut_into_utc_months_and_capped_runs() {
        let at = |text: &str| {
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_micros()
        };
        let times = [
            at("1970-01-01T00:00:00Z"),
            at("1970-01-31T23:59:59.999999Z"),
            at("1970-02-01T00:00:00Z"),
            at("2020-12-31T23:59:59Z"),
            at("2021-01-01T00:00:00Z"),
            at("2021-01-15T00:00:00Z"),
            at("2021-01-16T00:00:00Z"),
            at("9999-12-31T23:59:59Z"),
        ];
        let lens = |runs: Vec<&[i64]>| runs.iter().map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(lens(by_month(&times, |t| *t, 100)), [2, 1, 1, 3, 1]);
        assert_eq!(lens(by_month(&times, |t| *t, 2)), [2, 1, 1, 2, 1, 1]);
        assert!(by_month(&[] as &[i64], |t| *t, 2).is_empty());
        assert_eq!(by_month(&times, |t| *t, 0).len(), times.len());
    }
}

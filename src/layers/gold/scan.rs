//! The first refresh (and a full one): gold and daily from one scan of silver, taken range of
//! UTC days by range of days, so that memory holds one range's aggregates, not the whole
//! table's (at x1000 daily has 12 million rows). Each range's rows per patient and day are
//! daily's rows, written out as a data file at once ([`Staged`]: committed later, all in one
//! version); folded per patient they are gold's rows ([`Stats::combine`]: the algebra gold's
//! incremental refresh already uses).
//!
//! The ranges are planned from silver's file statistics alone ([`plan_ranges`]): about
//! `max_rows` rows of silver each, cut on day boundaries, so a day is never split between two
//! ranges. The statistics only balance the ranges: each range's query filters on `datetime`,
//! and the ranges cover every instant, so the rows are the same whatever the statistics say.

use std::collections::BTreeMap;

use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;

use super::Source;
use super::sql::{DAY_MICROS, UTC_DAY, UTC_MICROS};
use super::stats::{Stats, gold_stats};
use crate::catalog::{self, Table};
use crate::delta::txn::Staged;
use crate::delta::{self, TableId};
use crate::error::Result;
use crate::output::Steps;
use crate::quality::check::{RuleCount, add_counts, evaluate};
use crate::quality::rules::Rules;

/// A patient's aggregates on one UTC day: daily's columns and gold's, from one scan.
static DAY_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT mrn, {UTC_DAY} AS date, \
         AVG(heartrate) AS avg_heartrate, MIN(heartrate) AS min_heartrate, \
         MAX(heartrate) AS max_heartrate, COUNT(*) AS count, \
         MAX(patient_name) AS patient_name, MIN(datetime) AS first_reading, \
         MAX(datetime) AS last_reading, SUM(CAST(heartrate AS DECIMAL(38, 10))) AS sum_heartrate \
         FROM silver WHERE {{filter}} GROUP BY mrn, {UTC_DAY}"
    )
});

/// How many times over the ranges may read silver's files (see [`plan_ranges`]).
const MAX_READS: u64 = 4;

/// A silver data file's UTC days (first and last, as days since 1970) and rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct FileDays {
    pub first: i64,
    pub last: i64,
    pub rows: u64,
}

/// UTC days `[from, to)`; `None`: unbounded on that side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DayRange {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

const EVERY_DAY: DayRange = DayRange {
    from: None,
    to: None,
};

/// Cut the days into ranges of about `max_rows` rows, from the files' days (None: a file
/// without statistics, so one range of every day). A file's rows count as spread evenly over
/// its days. A file is read by every range its days meet (its row groups' statistics may
/// spare most of it: silver's files hold a month each, and a compaction keeps their row groups
/// in order). Files that each span most of the days (silver not laid out by time) would make
/// every range read most rows: when the ranges together would read the files more than
/// [`MAX_READS`] times over, one range is taken instead (memory then grows with the table, time
/// stays one scan).
pub(super) fn plan_ranges(files: Option<&[FileDays]>, max_rows: u64) -> Vec<DayRange> {
    let Some(files) = files else {
        return vec![EVERY_DAY];
    };
    let files: Vec<FileDays> = files
        .iter()
        .copied()
        .filter(|f| f.rows > 0 && f.first <= f.last)
        .collect();
    let total: u64 = files.iter().map(|f| f.rows).sum();
    if max_rows == 0 || total <= max_rows {
        return vec![EVERY_DAY];
    }
    // Rows per day, piecewise: +density where a file starts, -density after it ends.
    let mut steps: Vec<(i64, f64)> = Vec::new();
    for f in &files {
        let density = f.rows as f64 / (f.last - f.first + 1) as f64;
        steps.push((f.first, density));
        steps.push((f.last + 1, -density));
    }
    steps.sort_by_key(|step| step.0);
    let mut cuts: Vec<i64> = Vec::new();
    let (mut density, mut taken) = (0.0f64, 0.0f64);
    let budget = max_rows as f64;
    for (i, (day, change)) in steps.iter().enumerate() {
        density += change;
        let Some((next, _)) = steps.get(i + 1) else {
            break;
        };
        let mut start = *day;
        while density > 1e-9 && start < *next {
            // Days until the range holds its budget (taken stays below it: at least one).
            let days = ((budget - taken) / density).ceil().max(1.0);
            if start as f64 + days > *next as f64 {
                taken += density * (next - start) as f64;
                break;
            }
            start += days as i64;
            cuts.push(start);
            taken = 0.0;
        }
    }
    // The last range holds at least a fifth of a budget, or it joins the one before.
    if taken < budget / 5.0 {
        cuts.pop();
    }
    let mut ranges = Vec::with_capacity(cuts.len() + 1);
    let mut from = None;
    for cut in cuts {
        ranges.push(DayRange {
            from,
            to: Some(cut),
        });
        from = Some(cut);
    }
    ranges.push(DayRange { from, to: None });
    let read: u64 = ranges
        .iter()
        .map(|r| {
            files
                .iter()
                .filter(|f| r.from.is_none_or(|d| f.last >= d) && r.to.is_none_or(|d| f.first < d))
                .map(|f| f.rows)
                .sum::<u64>()
        })
        .sum();
    if read > MAX_READS * total {
        return vec![EVERY_DAY];
    }
    ranges
}

/// A range's filter on `datetime` (`true` for every day).
pub(super) fn range_filter(range: DayRange) -> String {
    let at = |day: i64| {
        day.checked_mul(DAY_MICROS)
            .map(|micros| format!("arrow_cast({micros}, '{UTC_MICROS}')"))
    };
    let mut parts = Vec::new();
    // A day past what microseconds hold: no reading is that late. A range from there holds
    // nothing, a range up to there everything before it, so the ranges still cover each
    // instant once.
    match range.from.map(at) {
        None => {}
        Some(None) => return "false".into(),
        Some(Some(from)) => parts.push(format!("datetime >= {from}")),
    }
    if let Some(to) = range.to.and_then(at) {
        parts.push(format!("datetime < {to}"));
    }
    match parts.is_empty() {
        true => "true".into(),
        false => parts.join(" AND "),
    }
}

/// Silver's data files as days and rows, from their statistics (None if a file has none).
pub(super) fn file_days(id: &TableId, silver: &DeltaTable) -> Result<Option<Vec<FileDays>>> {
    let snapshot = silver.snapshot().map_err(id.err("load"))?;
    let mut files = Vec::new();
    for file in snapshot.log_data().iter() {
        let Some(days) = file.stats().as_deref().and_then(days_of) else {
            return Ok(None);
        };
        files.push(days);
    }
    Ok(Some(files))
}

/// A file's days and rows from its statistics (JSON), if they hold `datetime`'s bounds.
fn days_of(stats: &str) -> Option<FileDays> {
    let stats: serde_json::Value = serde_json::from_str(stats).ok()?;
    let day = |bound: &str| {
        let text = stats.get(bound)?.get("datetime")?.as_str()?;
        let micros = chrono::DateTime::parse_from_rfc3339(text)
            .ok()?
            .timestamp_micros();
        Some(micros.div_euclid(DAY_MICROS))
    };
    Some(FileDays {
        first: day("minValues")?,
        last: day("maxValues")?,
        rows: stats.get("numRecords")?.as_u64()?,
    })
}

/// Where daily's rows of the scan go.
pub(super) enum DailyOut {
    /// Daily is up to date: none.
    Skip,
    /// Written as they come, for one commit (daily has no rows yet, or is replaced).
    Stage(Box<Staged>),
    /// Kept, for a MERGE into daily's rows.
    Keep(Vec<RecordBatch>),
}

/// What the scan gave.
pub(super) struct Scanned {
    /// Gold's row of every patient.
    pub gold: Vec<(i64, Stats)>,
    pub daily: DailyOut,
    /// Daily's rules over all its rows.
    pub daily_counts: Vec<RuleCount>,
    pub ranges: usize,
}

/// Scan silver range by range: gold's rows folded, daily's rows to `daily`, daily's rules
/// counted on every row.
pub(super) async fn scan(
    source: &Source<'_>,
    ranges: &[DayRange],
    mut daily: DailyOut,
    rules: &Rules,
    steps: &mut dyn Steps,
) -> Result<Scanned> {
    steps.begin("silver", ranges.len() as u64, "ranges of days");
    let daily_schema = catalog::DAILY.schema();
    let daily_rules = rules.of(&catalog::DAILY);
    let mut gold: BTreeMap<i64, Stats> = BTreeMap::new();
    let mut daily_counts: Vec<RuleCount> = Vec::new();
    for range in ranges {
        let sql = DAY_SQL.replace("{filter}", &range_filter(*range));
        let batches = delta::query(
            source.ctx,
            source.silver_id,
            "aggregate by patient and day",
            &sql,
        )
        .await?;
        let mut days = Vec::with_capacity(batches.len());
        for batch in &batches {
            for (mrn, stats) in gold_stats(batch)? {
                match gold.get_mut(&mrn) {
                    Some(before) => *before = before.combine(&stats),
                    None => {
                        gold.insert(mrn, stats);
                    }
                }
            }
            if !matches!(daily, DailyOut::Skip) {
                days.push(delta::conform(batch, &daily_schema)?);
            }
        }
        drop(batches);
        if !matches!(daily, DailyOut::Skip) && !daily_rules.is_empty() {
            add_counts(&mut daily_counts, evaluate(&daily_rules, &days)?.counts);
        }
        match &mut daily {
            DailyOut::Skip => {}
            DailyOut::Stage(staged) => staged.write(&days).await?,
            DailyOut::Keep(kept) => kept.extend(days),
        }
        steps.advance(1, &format!("aggregated {} patients so far", gold.len()));
    }
    Ok(Scanned {
        gold: gold.into_iter().collect(),
        daily,
        daily_counts,
        ranges: ranges.len(),
    })
}

/// Where daily's rows go in a first or full refresh of `daily` (None: up to date).
pub(super) fn daily_out(
    id: &TableId,
    table: Option<&DeltaTable>,
    refresh: bool,
    replace: bool,
    of: &'static Table,
) -> Result<DailyOut> {
    if !refresh {
        return Ok(DailyOut::Skip);
    }
    let empty = match table {
        None => true,
        Some(t) => t.snapshot().map_err(id.err("load"))?.log_data().num_files() == 0,
    };
    Ok(match replace || empty {
        true => DailyOut::Stage(Box::new(Staged::new(id, of))),
        false => DailyOut::Keep(Vec::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(first: i64, last: i64, rows: u64) -> FileDays {
        FileDays { first, last, rows }
    }

    fn r(from: Option<i64>, to: Option<i64>) -> DayRange {
        DayRange { from, to }
    }

    /// (files, max rows) -> ranges
    #[test]
    fn days_are_cut_into_ranges_of_about_max_rows_on_day_boundaries() {
        let all = vec![EVERY_DAY];
        type Case = (Option<Vec<FileDays>>, u64, Vec<DayRange>);
        let cases: Vec<Case> = vec![
            // A file without statistics: one range.
            (None, 10, all.clone()),
            // No files, or fewer rows than a range holds, or no limit: one range.
            (Some(vec![]), 10, all.clone()),
            (Some(vec![f(0, 9, 10)]), 10, all.clone()),
            (Some(vec![f(0, 9, 1000)]), 0, all.clone()),
            // One file of 10 days, 10 rows a day, 30 rows a range.
            (
                Some(vec![f(0, 9, 100)]),
                30,
                vec![
                    r(None, Some(3)),
                    r(Some(3), Some(6)),
                    r(Some(6), Some(9)),
                    // 10 rows left, more than a fifth of 30: a range of their own.
                    r(Some(9), None),
                ],
            ),
            // Monthly files in order (the lab's layout), a range per two months.
            (
                Some(vec![
                    f(0, 29, 300),
                    f(30, 59, 300),
                    f(60, 89, 300),
                    f(90, 119, 300),
                ]),
                600,
                vec![r(None, Some(60)), r(Some(60), None)],
            ),
            // A gap of days with no rows is crossed, not cut into empty ranges.
            (
                Some(vec![f(0, 0, 50), f(1000, 1000, 50)]),
                50,
                vec![r(None, Some(1)), r(Some(1), None)],
            ),
            // A small remainder joins the range before it.
            (
                Some(vec![f(0, 9, 100), f(10, 10, 1)]),
                50,
                vec![r(None, Some(5)), r(Some(5), None)],
            ),
            // Days before 1970 count down from the epoch.
            (
                Some(vec![f(-20, -11, 100), f(-10, -1, 100)]),
                100,
                vec![r(None, Some(-10)), r(Some(-10), None)],
            ),
            // Every file spans every day: each of 6 ranges would read them all, so one range.
            (
                Some(vec![f(0, 99, 100), f(0, 99, 100), f(0, 99, 100)]),
                50,
                all.clone(),
            ),
            // Two wide files, read by both ranges (twice over): still cut.
            (
                Some(vec![f(0, 99, 100), f(0, 99, 100)]),
                100,
                vec![r(None, Some(50)), r(Some(50), None)],
            ),
        ];
        for (files, max_rows, expected) in cases {
            let ranges = plan_ranges(files.as_deref(), max_rows);
            assert_eq!(ranges, expected, "{files:?} by {max_rows}");
            // The ranges cover every day, in order, without overlap.
            assert_eq!(ranges.first().unwrap().from, None);
            assert_eq!(ranges.last().unwrap().to, None);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].to, pair[1].from);
                assert!(pair[0].from.is_none_or(|f| Some(f) < pair[0].to));
            }
        }
    }

    #[test]
    fn a_range_filters_on_instants_at_its_utc_day_boundaries() {
        let at = |micros: i64| format!("arrow_cast({micros}, '{UTC_MICROS}')");
        let cases = [
            (EVERY_DAY, "true".to_string()),
            (
                r(None, Some(2)),
                format!("datetime < {}", at(2 * DAY_MICROS)),
            ),
            (
                r(Some(-1), None),
                format!("datetime >= {}", at(-DAY_MICROS)),
            ),
            (
                r(Some(1), Some(3)),
                format!(
                    "datetime >= {} AND datetime < {}",
                    at(DAY_MICROS),
                    at(3 * DAY_MICROS)
                ),
            ),
            // A day too far for microseconds: the range up to it holds everything before it,
            // the range from it nothing.
            (r(None, Some(i64::MAX / 2)), "true".to_string()),
            (r(Some(i64::MAX / 2), None), "false".to_string()),
        ];
        for (range, filter) in cases {
            assert_eq!(range_filter(range), filter, "{range:?}");
        }
    }

    #[test]
    fn a_file_s_days_come_from_its_datetime_bounds() {
        let stats = r#"{"numRecords":7,"minValues":{"datetime":"1969-12-31T23:59:59.999Z"},
            "maxValues":{"datetime":"1970-01-02T00:00:00.000Z"}}"#;
        assert_eq!(days_of(stats), Some(f(-1, 1, 7)));
        assert_eq!(days_of(r#"{"numRecords":7}"#), None);
        assert_eq!(days_of("not json"), None);
    }
}

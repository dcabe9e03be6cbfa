//! `medallion events` and `medallion quality`: the event log (`pipeline_events`) read back,
//! as the events themselves (filtered by job, time, level, run) or as each expectation's pass
//! rate per version written and overall.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{Array, RecordBatch};
use serde_json::{Value, json};

use super::format::Rows;
use crate::catalog;
use crate::delta::{self, TableId};
use crate::error::Result;
use crate::warehouse::Warehouse;

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub job: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// The lowest level shown (INFO and METRICS < WARN < ERROR).
    pub level: Option<String>,
    pub run: Option<String>,
    /// Leave out events of this type (the report lists expectation counts on their own).
    pub except_type: Option<String>,
}

const EVENT_COLUMNS: &str = "timestamp, job, table_name, event_type, level, message, \
                             version_written, run_id, upstream_versions, details";

/// A SQL string literal.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The levels at or above `level`.
fn levels_from(level: &str) -> &'static [&'static str] {
    match level.to_ascii_uppercase().as_str() {
        "ERROR" => &["ERROR"],
        "WARN" => &["WARN", "ERROR"],
        _ => &["INFO", "METRICS", "WARN", "ERROR"],
    }
}

/// The WHERE clause of a filter.
fn condition(filter: &EventFilter) -> String {
    let mut parts = vec!["true".to_string()];
    if let Some(job) = &filter.job {
        parts.push(format!("job = {}", quoted(job)));
    }
    if let Some(since) = filter.since {
        // In microseconds, the column's unit: a TIMESTAMP literal is nanoseconds, which end
        // in 2262.
        parts.push(format!(
            "timestamp >= arrow_cast({}, 'Timestamp(Microsecond, Some(\"UTC\"))')",
            since.timestamp_micros()
        ));
    }
    if let Some(level) = &filter.level {
        let list: Vec<String> = levels_from(level).iter().map(|l| quoted(l)).collect();
        parts.push(format!("level IN ({})", list.join(", ")));
    }
    if let Some(run) = &filter.run {
        parts.push(format!("run_id = {}", quoted(run)));
    }
    if let Some(kind) = &filter.except_type {
        parts.push(format!("event_type <> {}", quoted(kind)));
    }
    parts.join(" AND ")
}

/// The event log's rows for a query over it (registered as `events`), at `version` (None: the
/// latest); none without a log.
async fn select(
    warehouse: &Warehouse,
    version: Option<u64>,
    sql: &str,
) -> Result<Option<(TableId, Vec<RecordBatch>)>> {
    let id = TableId::of(warehouse, &catalog::PIPELINE_EVENTS);
    let table = match version {
        Some(version) => delta::open_version(&id, version).await?,
        None => match delta::open(&id).await? {
            Some(table) => table,
            None => return Ok(None),
        },
    };
    let ctx = delta::session_with(&id, &table, "events").await?;
    let batches = delta::query(&ctx, &id, "read the event log", sql).await?;
    Ok(Some((id, batches)))
}

/// The events the filter selects, oldest first.
pub async fn events(warehouse: &Warehouse, filter: &EventFilter) -> Result<Rows> {
    events_at(warehouse, filter, None, None).await
}

/// [`events`] of the log's `version` (None: the latest); `last`: only the newest N, still
/// oldest first.
pub async fn events_at(
    warehouse: &Warehouse,
    filter: &EventFilter,
    version: Option<u64>,
    last: Option<usize>,
) -> Result<Rows> {
    let sql = match last {
        None => format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE {} ORDER BY timestamp, id",
            condition(filter)
        ),
        Some(n) => format!(
            "SELECT * FROM (SELECT {EVENT_COLUMNS}, id FROM events WHERE {} \
             ORDER BY timestamp DESC, id DESC LIMIT {n}) ORDER BY timestamp, id",
            condition(filter)
        ),
    };
    match select(warehouse, version, &sql).await? {
        Some((_, batches)) if !batches.is_empty() => {
            Rows::from_batches(&batches[0].schema(), &batches)
        }
        _ => {
            let names: Vec<&str> = EVENT_COLUMNS.split(", ").collect();
            Ok(Rows::new(&names))
        }
    }
}

/// The columns a text table of events shows (the run, upstream versions and details are in
/// `--format json` and `csv`): a terminal's width is too narrow for them.
const BRIEF: usize = 7;

/// `rows` of [`events`] with only the columns a text table shows.
pub fn brief(mut rows: Rows) -> Rows {
    rows.columns.truncate(BRIEF);
    for row in &mut rows.rows {
        row.truncate(BRIEF);
    }
    rows
}

const QUALITY_COLUMNS: [&str; 9] = [
    "table",
    "check",
    "action",
    "version",
    "passed",
    "failed",
    "pass_rate",
    "condition",
    "last_run",
];

/// One check's counts added up.
#[derive(Default)]
struct Tally {
    action: String,
    condition: String,
    passed: u64,
    failed: u64,
    last: String,
}

impl Tally {
    fn add(&mut self, details: &Value, time: &str) {
        self.action = text(details, "action");
        self.condition = text(details, "check");
        self.passed += details["passed"].as_u64().unwrap_or(0);
        self.failed += details["failed"].as_u64().unwrap_or(0);
        self.last = time.to_string();
    }

    fn row(&self, table: &str, check: &str, version: Value) -> Vec<Value> {
        let total = self.passed + self.failed;
        let rate = if total == 0 {
            Value::Null
        } else {
            // Four decimals, never rounded up to 1 while a row failed.
            let rate = (self.passed as f64 / total as f64 * 10_000.0).floor() / 10_000.0;
            json!(rate)
        };
        vec![
            json!(table),
            json!(check),
            json!(self.action),
            version,
            json!(self.passed),
            json!(self.failed),
            rate,
            json!(self.condition),
            json!(self.last),
        ]
    }
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_string()
}

/// Each check's pass rate per version written (a batch of bronze, a refresh of silver, ...),
/// then overall; `overall`: the overall rows alone. `table`: one table's checks.
pub async fn quality(warehouse: &Warehouse, table: Option<&str>, overall: bool) -> Result<Rows> {
    quality_at(warehouse, table, overall, None).await
}

/// [`quality`] from the log's `version` (None: the latest).
pub async fn quality_at(
    warehouse: &Warehouse,
    table: Option<&str>,
    overall: bool,
    version: Option<u64>,
) -> Result<Rows> {
    let mut rows = Rows::new(&QUALITY_COLUMNS);
    rows.lead = 2;
    let mut sql = "SELECT table_name, version_written, details, \
                   CAST(timestamp AS VARCHAR) AS at FROM events WHERE event_type = 'expectation'"
        .to_string();
    if let Some(table) = table {
        sql.push_str(&format!(" AND table_name = {}", quoted(table)));
    }
    sql.push_str(" ORDER BY timestamp, id");
    let Some((_, batches)) = select(warehouse, version, &sql).await? else {
        return Ok(rows);
    };
    // (table order, table, check) -> version -> tally; and the overall tally.
    type Key = (usize, String, String);
    let mut per_version: BTreeMap<Key, BTreeMap<Option<i64>, Tally>> = BTreeMap::new();
    let mut totals: BTreeMap<Key, Tally> = BTreeMap::new();
    for batch in &batches {
        let tables = delta::strings(batch, "table_name")?;
        let versions = delta::int64s(batch, "version_written")?;
        let details = delta::strings(batch, "details")?;
        let times = delta::strings(batch, "at")?;
        for i in 0..batch.num_rows() {
            let name = tables.value(i).to_string();
            let value: Value = serde_json::from_str(details.value(i)).unwrap_or(Value::Null);
            let check = text(&value, "rule");
            let order = catalog::TABLES
                .iter()
                .position(|t| t.name == name)
                .unwrap_or(catalog::TABLES.len());
            let key = (order, name, check);
            let version = (!versions.is_null(i)).then(|| versions.value(i));
            per_version
                .entry(key.clone())
                .or_default()
                .entry(version)
                .or_default()
                .add(&value, times.value(i));
            totals.entry(key).or_default().add(&value, times.value(i));
        }
    }
    if !overall {
        for ((_, table, check), versions) in &per_version {
            for (version, tally) in versions {
                rows.push(tally.row(table, check, json!(version)));
            }
        }
    }
    for ((_, table, check), tally) in &totals {
        rows.push(tally.row(table, check, json!("overall")));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_becomes_a_condition_with_quoted_literals() {
        let cases = [
            (EventFilter::default(), "true"),
            (
                EventFilter {
                    job: Some("it's".into()),
                    level: Some("warn".into()),
                    ..EventFilter::default()
                },
                "true AND job = 'it''s' AND level IN ('WARN', 'ERROR')",
            ),
            (
                EventFilter {
                    since: Some(DateTime::from_timestamp(0, 0).unwrap()),
                    run: Some("r".into()),
                    ..EventFilter::default()
                },
                "true AND timestamp >= arrow_cast(0, 'Timestamp(Microsecond, Some(\"UTC\"))') \
                 AND run_id = 'r'",
            ),
            (
                EventFilter {
                    except_type: Some("expectation".into()),
                    ..EventFilter::default()
                },
                "true AND event_type <> 'expectation'",
            ),
        ];
        for (filter, expected) in cases {
            assert_eq!(condition(&filter), expected);
        }
    }
}

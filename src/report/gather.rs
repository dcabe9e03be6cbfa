//! What the report shows, read from the warehouse as it is or as it was: first the plan (which
//! version of each table, [`plan`]), then the facts of those versions ([`facts`]). Reads only.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use deltalake::DeltaTable;
use deltalake::arrow::array::Array;
use serde_json::Value;

use crate::catalog::{self, GOLD_FROM_SILVER};
use crate::delta::{self, TableId};
use crate::error::{Error, Result};
use crate::inspect::format::Rows;
use crate::inspect::show::{At, version_at};
use crate::inspect::{self, events, status};
use crate::warehouse::{DEFAULT_SOURCE, Warehouse};

/// The newest commits of a table drawn in "versions over time".
pub const HISTORY: u64 = 400;
/// The newest events listed (runs, progress, errors, maintenance: expectation counts are in
/// the quality table).
pub const EVENTS: usize = 25;

/// Which version of each table the report reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What was asked, for people: `latest`, `gold v3 (…)`, `as of …`.
    pub label: String,
    /// Each table there (then) -> its version; tables created later are absent.
    pub versions: BTreeMap<String, u64>,
    /// Each table -> its latest version now (the report says when it reads an older one).
    pub latest: BTreeMap<String, u64>,
}

/// Decide which version of every table to read: the latest; each table's version at a time
/// (`--as-of`); or gold's version N (`--version N`) with daily's version written by the same
/// refresh and every other table as of gold vN's commit.
pub async fn plan(warehouse: &Warehouse, at: At) -> Result<Plan> {
    let names = inspect::table_names(warehouse).await?;
    let mut opened = Vec::new();
    for name in names {
        let id = TableId::new(warehouse, &name);
        if let Some(table) = delta::open(&id).await? {
            opened.push((id, table));
        }
    }
    if opened.is_empty() {
        return Err(Error::Usage(format!(
            "the warehouse {} has no tables yet: nothing to report (run `medallion pipeline` \
             first); no file was written",
            shown(warehouse)
        )));
    }
    let (label, time, gold_at) = match at {
        At::Latest => ("latest".to_string(), None, None),
        At::Time(time) => (format!("as of {}", rfc3339(time)), Some(time), None),
        At::Version(version) => {
            let Some((id, gold)) = opened.iter().find(|(id, _)| id.name == catalog::GOLD.name)
            else {
                return Err(TableId::of(warehouse, &catalog::GOLD)
                    .not_found(" (--version N names a version of gold; use --as-of for a time)"));
            };
            inspect::check_version(id, gold, version)?;
            let Some(millis) = inspect::read_commit(id, gold, version)
                .await?
                .and_then(|c| c.timestamp())
            else {
                return Err(Error::Usage(format!(
                    "{} v{version}'s commit is no longer in its log (cleaned up after a \
                     checkpoint): use --as-of with a time instead",
                    id.name
                )));
            };
            let time = DateTime::from_timestamp_millis(millis).unwrap_or_default();
            let label = format!("{} v{version} (committed {})", id.name, rfc3339(time));
            (label, Some(time), Some(version))
        }
    };
    let mut versions = BTreeMap::new();
    for (id, table) in &opened {
        let version = match (time, gold_at) {
            (None, _) => inspect::latest_version(id, table).map(Some)?,
            (Some(_), Some(v)) if id.name == catalog::GOLD.name => Some(v),
            (Some(t), Some(v)) if id.name == catalog::DAILY.name => {
                daily_of_gold(warehouse, (id, table), v, t).await?
            }
            (Some(t), _) => version_then(id, table, t).await?,
        };
        if let Some(version) = version {
            versions.insert(id.name.clone(), version);
        }
    }
    if versions.is_empty() {
        return Err(Error::Usage(format!(
            "no table of the warehouse {} existed {label}: nothing to report; no file was \
             written",
            shown(warehouse)
        )));
    }
    let mut latest = BTreeMap::new();
    for (id, table) in &opened {
        latest.insert(id.name.clone(), inspect::latest_version(id, table)?);
    }
    Ok(Plan {
        label,
        versions,
        latest,
    })
}

/// The table's version at `time`, `None` if it did not exist yet.
async fn version_then(
    id: &TableId,
    table: &DeltaTable,
    time: DateTime<Utc>,
) -> Result<Option<u64>> {
    match version_at(id, table, time).await {
        Ok(v) => Ok(Some(v)),
        Err(Error::TimeBeforeTable { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Daily's version written by the refresh that wrote gold `gold_version` (committed at
/// `time`): daily is committed right after gold, so it is the last version from `time` on
/// that recorded no silver version beyond the one gold's recorded.
async fn daily_of_gold(
    warehouse: &Warehouse,
    (id, daily): (&TableId, &DeltaTable),
    gold_version: u64,
    time: DateTime<Utc>,
) -> Result<Option<u64>> {
    let gold_id = TableId::of(warehouse, &catalog::GOLD);
    let gold = delta::open_version(&gold_id, gold_version).await?;
    let silver = delta::app_version(&gold_id, &gold, &GOLD_FROM_SILVER.id()).await?;
    let start = version_then(id, daily, time).await?;
    let latest = inspect::latest_version(id, daily)?;
    let from = start.map_or(0, |v| v + 1);
    // A refresh writes a handful of daily commits (create, merge): a few dozen are plenty.
    let to = latest.min(from + 32);
    let mut commits = Vec::new();
    if from <= to {
        for commit in inspect::read_commits(id, daily, from, to).await? {
            let recorded = commit
                .txns
                .iter()
                .find(|t| t.app_id == GOLD_FROM_SILVER.id())
                .map(|t| t.version);
            commits.push((commit.version, recorded));
        }
    }
    Ok(paired(start, &commits, silver))
}

/// The version of a table a consumer's refresh left: from `start` (the version at the
/// refresh's first commit, None if the table did not exist then), each later commit (oldest
/// first, with the upstream version it recorded, if any) is taken until one records an
/// upstream version after `upstream` (the one the refresh consumed).
fn paired(
    start: Option<u64>,
    commits: &[(u64, Option<i64>)],
    upstream: Option<i64>,
) -> Option<u64> {
    let mut found = start;
    for (version, recorded) in commits {
        match recorded {
            Some(v) if upstream.is_some_and(|u| *v <= u) => found = Some(*version),
            Some(_) => break,
            None => found = Some(*version),
        }
    }
    found
}

// ---- The facts ----------------------------------------------------------------------------

/// Everything the report draws.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub warehouse: String,
    pub plan_label: String,
    pub generated_at: String,
    pub gold: Option<Gold>,
    pub daily: Option<Daily>,
    pub batches: Vec<Batch>,
    /// Batches the stream's checkpoint kept no record of (it keeps the newest 1,000).
    pub batches_before: Option<i64>,
    pub quarantined_bronze: Option<u64>,
    pub quarantined_silver: Option<u64>,
    pub waiting: Option<u64>,
    /// `quality --overall` rows (empty without an event log).
    pub quality: Rows,
    /// The newest events, oldest first.
    pub events: Rows,
    pub tables: Vec<TableFacts>,
    /// What was skipped, for stderr and the page.
    pub warnings: Vec<String>,
}

/// Gold at a version: one row per patient, highest average first.
#[derive(Debug, Clone, Default)]
pub struct Gold {
    pub version: u64,
    pub rows: Vec<GoldRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GoldRow {
    pub mrn: i64,
    pub name: Option<String>,
    pub avg: Option<i64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub count: i64,
}

impl GoldRow {
    /// How the report names the patient.
    /// How charts name the patient: the name (without bidirectional controls, which could
    /// reorder the mrn, and shortened to 40 characters) and the mrn.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{} ({})", short_name(name), self.mrn),
            None => format!("mrn {}", self.mrn),
        }
    }
}

/// Characters that change the direction of the text after them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A name as a chart label: bidirectional controls removed, at most 40 characters.
pub fn short_name(name: &str) -> String {
    let clean: Vec<char> = name.chars().filter(|c| !is_bidi_control(*c)).collect();
    if clean.len() <= 40 {
        clean.into_iter().collect()
    } else {
        let mut short: String = clean[..39].iter().collect();
        short.push('…');
        short
    }
}

/// Daily at a version: each patient's days, in date order.
#[derive(Debug, Clone, Default)]
pub struct Daily {
    pub version: u64,
    pub rows: u64,
    /// mrn -> days.
    pub patients: BTreeMap<i64, Vec<Day>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Day {
    pub date: NaiveDate,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    pub count: i64,
}

/// One bronze micro-batch, from its progress record.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub id: i64,
    pub timestamp: String,
    pub rows: u64,
    pub quarantined: u64,
    pub duration_ms: u64,
    pub version: u64,
}

/// One table at the planned version.
#[derive(Debug, Clone, Default)]
pub struct TableFacts {
    pub name: String,
    pub version: u64,
    pub latest: u64,
    pub rows: Option<u64>,
    pub files: usize,
    pub bytes: i64,
    pub last_commit: Option<i64>,
    pub operation: Option<String>,
    /// (version, commit time in ms) of the newest [`HISTORY`] commits still in the log.
    pub history: Vec<(u64, i64)>,
    /// Upstream (a table, or `source` for the bronze stream) -> version (batch) consumed.
    pub consumed: BTreeMap<String, i64>,
}

/// Read what `plan` says.
pub async fn facts(warehouse: &Warehouse, plan: &Plan) -> Result<Facts> {
    let mut facts = Facts {
        warehouse: shown(warehouse),
        plan_label: plan.label.clone(),
        generated_at: rfc3339(Utc::now()),
        ..Facts::default()
    };
    let at = |table: &catalog::Table| plan.versions.get(table.name).copied();
    // Each table opened once, at the version the plan says.
    let mut opened = BTreeMap::new();
    for (name, version) in &plan.versions {
        let id = TableId::new(warehouse, name);
        let table = delta::open_version(&id, *version).await?;
        let latest = plan.latest.get(name).copied().unwrap_or(*version);
        facts
            .tables
            .push(table_facts(warehouse, &id, &table, latest).await?);
        opened.insert(name.as_str(), (id, table));
    }
    facts
        .tables
        .sort_by_key(|t| catalog::listing_order(&t.name));
    let table = |t: &catalog::Table| opened.get(t.name).map(|(id, table)| (id, table));
    if let Some(gold_at) = table(&catalog::GOLD) {
        facts.gold = Some(gold(gold_at).await?);
    }
    if let Some(daily_at) = table(&catalog::DAILY) {
        facts.daily = Some(daily(daily_at).await?);
    }
    if let Some(version) = at(&catalog::BRONZE) {
        let (batches, before, skipped) = batches(warehouse, version).await?;
        facts.batches = batches;
        facts.batches_before = before;
        facts.warnings.extend(skipped);
    }
    let rows = |table: &catalog::Table| {
        facts
            .tables
            .iter()
            .find(|t| t.name == table.name)
            .and_then(|t| t.rows)
    };
    facts.quarantined_bronze =
        rows(&catalog::BRONZE_QUARANTINE).or(at(&catalog::BRONZE).map(|_| 0));
    facts.quarantined_silver =
        rows(&catalog::SILVER_QUARANTINE).or(at(&catalog::SILVER).map(|_| 0));
    if let Some(silver) = table(&catalog::SILVER) {
        facts.waiting = Some(status::waiting_rows(warehouse, silver).await?);
    }
    let log = at(&catalog::PIPELINE_EVENTS);
    if log.is_some() {
        facts.quality = events::quality_at(warehouse, None, true, log).await?;
        let filter = events::EventFilter {
            except_type: Some("expectation".into()),
            ..Default::default()
        };
        facts.events = events::events_at(warehouse, &filter, log, Some(EVENTS)).await?;
    }
    Ok(facts)
}

async fn table_facts(
    warehouse: &Warehouse,
    id: &TableId,
    table: &DeltaTable,
    latest: u64,
) -> Result<TableFacts> {
    let version = inspect::latest_version(id, table)?;
    let snapshot = table.snapshot().map_err(id.err("load"))?;
    let (rows, bytes) = inspect::file_totals(snapshot);
    let files = snapshot.log_data().num_files();
    let commits =
        inspect::read_commits(id, table, version.saturating_sub(HISTORY - 1), version).await?;
    let last = commits.last().filter(|c| c.version == version);
    let consumed = inspect::app_transactions(warehouse, id, table)
        .await?
        .into_iter()
        .filter_map(|txn| Some((txn.position_key()?, txn.version)))
        .collect();
    Ok(TableFacts {
        name: id.name.clone(),
        version,
        latest,
        rows,
        files,
        bytes,
        last_commit: last.and_then(|c| c.timestamp()),
        operation: last.and_then(|c| c.operation().map(str::to_string)),
        history: commits
            .iter()
            .filter_map(|c| Some((c.version, c.timestamp()?)))
            .collect(),
        consumed,
    })
}

async fn gold((id, table): (&TableId, &DeltaTable)) -> Result<Gold> {
    let version = inspect::latest_version(id, table)?;
    let ctx = delta::session_with(id, table, "gold").await?;
    let batches = delta::query(
        &ctx,
        id,
        "read gold",
        "SELECT mrn, patient_name, avg_heartrate, min_heartrate, max_heartrate, count \
         FROM gold ORDER BY avg_heartrate DESC NULLS LAST, mrn",
    )
    .await?;
    let mut rows = Vec::new();
    for batch in &batches {
        let mrn = delta::int64s(batch, "mrn")?;
        let name = delta::strings(batch, "patient_name")?;
        let avg = delta::int64s(batch, "avg_heartrate")?;
        let min = delta::float64s(batch, "min_heartrate")?;
        let max = delta::float64s(batch, "max_heartrate")?;
        let count = delta::int64s(batch, "count")?;
        for i in 0..batch.num_rows() {
            rows.push(GoldRow {
                mrn: mrn.value(i),
                name: (!name.is_null(i)).then(|| name.value(i).to_string()),
                avg: (!avg.is_null(i)).then(|| avg.value(i)),
                min: (!min.is_null(i)).then(|| min.value(i)),
                max: (!max.is_null(i)).then(|| max.value(i)),
                count: count.value(i),
            });
        }
    }
    Ok(Gold { version, rows })
}

async fn daily((id, table): (&TableId, &DeltaTable)) -> Result<Daily> {
    let version = inspect::latest_version(id, table)?;
    let ctx = delta::session_with(id, table, "daily").await?;
    let batches = delta::query(
        &ctx,
        id,
        "read daily",
        "SELECT mrn, arrow_cast(date, 'Int32') AS day, avg_heartrate, min_heartrate, \
         max_heartrate, count FROM daily ORDER BY mrn, date",
    )
    .await?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let mut daily = Daily {
        version,
        ..Daily::default()
    };
    for batch in &batches {
        let mrn = delta::int64s(batch, "mrn")?;
        let day = delta::int64s(batch, "day")?;
        let avg = delta::float64s(batch, "avg_heartrate")?;
        let min = delta::float64s(batch, "min_heartrate")?;
        let max = delta::float64s(batch, "max_heartrate")?;
        let count = delta::int64s(batch, "count")?;
        for i in 0..batch.num_rows() {
            daily.rows += 1;
            // A day without a reading's value (all null) has nothing to draw.
            if avg.is_null(i) {
                continue;
            }
            let date = epoch
                .checked_add_signed(chrono::Duration::days(day.value(i)))
                .unwrap_or(epoch);
            daily.patients.entry(mrn.value(i)).or_default().push(Day {
                date,
                avg: avg.value(i),
                min: if min.is_null(i) {
                    avg.value(i)
                } else {
                    min.value(i)
                },
                max: if max.is_null(i) {
                    avg.value(i)
                } else {
                    max.value(i)
                },
                count: count.value(i),
            });
        }
    }
    Ok(daily)
}

/// The bronze stream's batches in bronze up to `version`, from the default source's progress
/// records; the first batch id before them of which no record is kept (None: none); and a
/// warning per line that is no bronze progress record (skipped: the report is a picture of the
/// tables, the checkpoint's log is not what it must vouch for).
async fn batches(
    warehouse: &Warehouse,
    version: u64,
) -> Result<(Vec<Batch>, Option<i64>, Vec<String>)> {
    let dir = warehouse.checkpoint(catalog::BRONZE.name, DEFAULT_SOURCE)?;
    let Some(checkpoint) = crate::stream::checkpoint::Checkpoint::open(&dir).await? else {
        return Ok((Vec::new(), None, Vec::new()));
    };
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for (line, record) in checkpoint.progress_records().await? {
        match record.and_then(|r| batch_of(&r)) {
            Ok(batch) if batch.version <= version => found.push(batch),
            Ok(_) => {}
            Err(why) => skipped.push(format!(
                "{}:{line}: skipped, {why}",
                checkpoint.progress_path()
            )),
        }
    }
    // A batch recovered after a kill may be recorded twice: keep its last record.
    found.sort_by_key(|b| b.id);
    found.dedup_by(|later, earlier| {
        let same = later.id == earlier.id;
        if same {
            *earlier = later.clone();
        }
        same
    });
    let before = found.first().map(|b| b.id).filter(|id| *id > 0);
    Ok((found, before, skipped))
}

/// Counts past this are not a batch's (they would overflow a sum of them).
const MOST: u64 = 1 << 48;

/// A bronze progress record as a batch, or why it is not one.
fn batch_of(record: &Value) -> std::result::Result<Batch, String> {
    let count = |key: &str, value: &Value| match value.as_u64() {
        Some(n) if n <= MOST => Ok(n),
        _ => Err(format!("not a bronze progress record: {key} is {value}")),
    };
    let timestamp = record["timestamp"].as_str().unwrap_or_default();
    if DateTime::parse_from_rfc3339(timestamp).is_err() {
        return Err(format!(
            "not a bronze progress record: timestamp is {}",
            record["timestamp"]
        ));
    }
    let duration = match &record["durationMs"]["triggerExecution"] {
        Value::Null => &record["batchDuration"],
        value => value,
    };
    Ok(Batch {
        id: count("batchId", &record["batchId"])? as i64,
        timestamp: timestamp.to_string(),
        rows: count("numInputRows", &record["numInputRows"])?,
        quarantined: match &record["numQuarantinedRows"] {
            Value::Null => 0,
            value => count("numQuarantinedRows", value)?,
        },
        duration_ms: count("durationMs.triggerExecution", duration)?,
        version: count("tableVersion", &record["tableVersion"])?,
    })
}

/// The warehouse as people name it: a path, or the store's URL.
fn shown(warehouse: &Warehouse) -> String {
    match warehouse.root().to_file_path() {
        Ok(path) if warehouse.is_local() => path.display().to_string(),
        _ => warehouse.root().to_string(),
    }
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_version_of_a_gold_refresh_is_the_last_before_a_newer_silver_position() {
        // (start, commits after it: (version, silver version recorded), gold's silver, expected)
        type Case = (
            Option<u64>,
            &'static [(u64, Option<i64>)],
            Option<i64>,
            Option<u64>,
        );
        let cases: [Case; 6] = [
            // The first refresh: daily created (v0, no txn) and merged (v1) after gold's commit.
            (None, &[(0, None), (1, Some(4))], Some(4), Some(1)),
            // The next refresh moved on: stop before it.
            (Some(1), &[(2, Some(6)), (3, Some(9))], Some(6), Some(2)),
            (Some(1), &[(2, Some(9))], Some(6), Some(1)),
            // A compaction (no txn) after the refresh still shows the same rows.
            (
                Some(1),
                &[(2, Some(6)), (3, None), (4, Some(8))],
                Some(6),
                Some(3),
            ),
            // Gold's first version (its create) recorded nothing: daily as it was then.
            (None, &[(0, None), (1, Some(2))], None, Some(0)),
            (Some(5), &[], Some(3), Some(5)),
        ];
        for (start, commits, upstream, expected) in cases {
            assert_eq!(
                paired(start, commits, upstream),
                expected,
                "{start:?} {commits:?} {upstream:?}"
            );
        }
    }

    #[test]
    fn a_chart_label_cannot_reorder_or_overflow() {
        let long = "x".repeat(100);
        let cases = [
            ("Ada", "Ada".to_string()),
            ("Zo\u{202e}ë\u{2066}", "Zoë".to_string()),
            (long.as_str(), format!("{}…", "x".repeat(39))),
        ];
        for (name, label) in cases {
            assert_eq!(short_name(name), label);
        }
    }

    #[test]
    fn a_progress_record_becomes_a_batch_and_a_foreign_line_does_not() {
        let record = serde_json::json!({
            "batchId": 3, "timestamp": "2026-01-01T00:00:00.000Z", "numInputRows": 120,
            "numQuarantinedRows": 2, "durationMs": {"triggerExecution": 45}, "tableVersion": 4
        });
        assert_eq!(
            batch_of(&record),
            Ok(Batch {
                id: 3,
                timestamp: "2026-01-01T00:00:00.000Z".into(),
                rows: 120,
                quarantined: 2,
                duration_ms: 45,
                version: 4,
            })
        );
        let refused = [
            (serde_json::json!({"batchId": 1}), "timestamp is null"),
            (serde_json::json!({"hello": 1}), "timestamp is null"),
            (
                serde_json::json!({"batchId": -5, "timestamp": "2026-01-01T00:00:00Z",
                    "numInputRows": 1, "batchDuration": 1, "tableVersion": 1}),
                "batchId is -5",
            ),
            (
                serde_json::json!({"batchId": 1, "timestamp": "x", "numInputRows": 1,
                    "batchDuration": 1, "tableVersion": 1}),
                "timestamp is \"x\"",
            ),
            (
                serde_json::json!({"batchId": 1, "timestamp": "2026-01-01T00:00:00Z",
                    "numInputRows": u64::MAX, "batchDuration": 1, "tableVersion": 1}),
                "numInputRows is 18446744073709551615",
            ),
        ];
        for (record, why) in refused {
            let error = batch_of(&record).unwrap_err();
            assert!(error.contains(why), "{record}: {error}");
        }
    }
}

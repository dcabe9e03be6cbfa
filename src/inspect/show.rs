//! `medallion show <table>`: a table's rows now, at a past version, or as they were at a past
//! time (time travel), optionally filtered and ordered with SQL expressions.
//!
//! A time picks the latest version committed at or before it, by the commit timestamps in the
//! log (`commitInfo`), never by the commit files' modification times, which copying a table or
//! restoring it from a backup changes.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use deltalake::DeltaTable;
use deltalake::datafusion::prelude::SessionContext;

use super::format::{self, Rows};
use crate::delta::{self, TableId};
use crate::error::{Error, Result};
use crate::warehouse::Warehouse;

/// Which version of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Latest,
    Version(u64),
    /// The latest version committed at or before this instant.
    Time(DateTime<Utc>),
}

#[derive(Debug, Clone)]
pub struct ShowOptions {
    pub at: At,
    /// At most this many rows (`None`: all).
    pub limit: Option<usize>,
    /// A SQL boolean expression over the table's columns.
    pub filter: Option<String>,
    /// A SQL `ORDER BY` list, e.g. `mrn, datetime DESC`.
    pub order_by: Option<String>,
}

/// What `show` read.
#[derive(Debug, Clone)]
pub struct Shown {
    pub rows: Rows,
    pub version: u64,
    /// Whether `limit` left rows out.
    pub more: bool,
}

/// Parse a time given as RFC 3339 (`2024-05-01T12:00:00Z`, any offset) or as UTC
/// `YYYY-MM-DD[ HH:MM:SS[.fff]]` (a `T` works in place of the space).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    for pattern in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, pattern) {
            return Ok(time.and_utc());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc());
    }
    Err(format!(
        "{text:?} is not a time: use RFC 3339 (2024-05-01T12:00:00Z) or YYYY-MM-DD[ HH:MM:SS] in UTC"
    ))
}

/// The latest version of the table committed at or before `time`.
pub async fn version_at(id: &TableId, table: &DeltaTable, time: DateTime<Utc>) -> Result<u64> {
    let latest = super::latest_version(id, table)?;
    let wanted = time.timestamp_millis();
    let mut first = None;
    let mut found = None;
    for commit in super::read_commits(id, table, 0, latest).await? {
        let Some(committed) = commit.timestamp() else {
            continue;
        };
        first.get_or_insert((commit.version, committed));
        if committed <= wanted {
            found = Some(commit.version);
        }
    }
    match (found, first) {
        (Some(version), _) => Ok(version),
        (None, Some((first_version, first_time))) => Err(Error::TimeBeforeTable {
            table: id.name.clone(),
            time: format::rfc3339(time),
            first_version,
            first_time: format::plain(&format::millis(first_time)),
        }),
        (None, None) => Err(id.not_found(" (its log has no commit timestamps)")),
    }
}

/// The version `at` names, checked against the table.
pub async fn resolve(id: &TableId, table: &DeltaTable, at: At) -> Result<u64> {
    match at {
        At::Latest => super::latest_version(id, table),
        At::Version(version) => {
            super::check_version(id, table, version)?;
            Ok(version)
        }
        At::Time(time) => version_at(id, table, time).await,
    }
}

/// Rows of a table at a version.
pub async fn run(warehouse: &Warehouse, name: &str, options: &ShowOptions) -> Result<Shown> {
    let (id, latest) = super::open_table(warehouse, name).await?;
    let version = resolve(&id, &latest, options.at).await?;
    let table = if Some(version) == latest.version() {
        latest
    } else {
        delta::open_version(&id, version).await?
    };
    let ctx = SessionContext::new();
    ctx.register_table(name, delta::provider(&id, &table, &ctx).await?)
        .map_err(id.query_err("read"))?;
    let mut query = format!("SELECT * FROM \"{name}\"");
    if let Some(filter) = &options.filter {
        query.push_str(&format!(" WHERE {filter}"));
    }
    if let Some(order_by) = &options.order_by {
        query.push_str(&format!(" ORDER BY {order_by}"));
    }
    if let Some(limit) = options.limit {
        // One more than asked, to tell whether rows were left out.
        query.push_str(&format!(" LIMIT {}", limit + 1));
    }
    let frame = ctx.sql(&query).await.map_err(id.query_err("query"))?;
    let schema = frame.schema().as_arrow().clone();
    let batches = frame.collect().await.map_err(id.query_err("query"))?;
    let mut rows = Rows::from_batches(&schema, &batches)?;
    let more = options.limit.is_some_and(|limit| rows.rows.len() > limit);
    if let Some(limit) = options.limit {
        rows.rows.truncate(limit);
    }
    Ok(Shown {
        rows,
        version,
        more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_utc_dates() {
        let at = |s: &str| parse_time(s).map(format::rfc3339);
        assert_eq!(at("2024-05-01T12:00:00Z").unwrap(), "2024-05-01T12:00:00Z");
        assert_eq!(
            at("2024-05-01T14:00:00+02:00").unwrap(),
            "2024-05-01T12:00:00Z"
        );
        assert_eq!(at("2024-05-01 12:00:00").unwrap(), "2024-05-01T12:00:00Z");
        assert_eq!(
            at("2024-05-01 12:00:00.250").unwrap(),
            "2024-05-01T12:00:00.250Z"
        );
        assert_eq!(at("2024-05-01").unwrap(), "2024-05-01T00:00:00Z");
        assert!(at("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(at("2024-13-01").is_err());
    }
}

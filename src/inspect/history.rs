//! `medallion history <table>`: the table's commits, newest first as Delta's `DESCRIBE HISTORY`
//! lists them, read from the log's commit files so that each row has its version and the
//! application transactions committed with it (which upstream version a layer consumed, which
//! batch the bronze stream wrote).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::format::{self, Rows};
use crate::error::Result;
use crate::warehouse::Warehouse;

/// `commitInfo` keys shown in their own column, or not at all.
const NOT_DETAILS: [&str; 2] = ["operationMetrics", "clientVersion"];

/// One row per commit, newest first; at most `limit` rows (the most recent).
pub async fn run(warehouse: &Warehouse, name: &str, limit: Option<usize>) -> Result<Rows> {
    let (id, table) = super::open_table(warehouse, name).await?;
    let latest = super::latest_version(&id, &table)?;
    let oldest = match limit {
        Some(n) => (latest + 1).saturating_sub(n as u64),
        None => 0,
    };
    let mut rows = Rows::new(&[
        "version",
        "timestamp",
        "operation",
        "parameters",
        "metrics",
        "transactions",
        "details",
    ]);
    if limit == Some(0) {
        return Ok(rows);
    }
    let mut commits = super::read_commits(&id, &table, oldest, latest).await?;
    commits.reverse();
    for commit in commits {
        let info = commit.info.clone().unwrap_or_default();
        let object = |pairs: BTreeMap<String, Value>| {
            if pairs.is_empty() {
                Value::Null
            } else {
                Value::Object(pairs.into_iter().collect::<Map<_, _>>())
            }
        };
        let parameters = object(
            info.operation_parameters
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        );
        let metrics = info
            .info
            .get("operationMetrics")
            .cloned()
            .map(|m| match m {
                Value::Object(map) => object(map.into_iter().collect()),
                other => other,
            })
            .unwrap_or_default();
        let transactions = object(
            commit
                .txns
                .iter()
                .map(|t| (t.app_id.clone(), json!(t.version)))
                .collect(),
        );
        let mut details: BTreeMap<String, Value> = info
            .info
            .iter()
            .filter(|(k, _)| !NOT_DETAILS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(read_version) = info.read_version {
            details.insert("readVersion".into(), json!(read_version));
        }
        if let Some(blind) = info.is_blind_append {
            details.insert("isBlindAppend".into(), json!(blind));
        }
        rows.push(vec![
            json!(commit.version),
            commit.timestamp().map_or(Value::Null, format::millis),
            info.operation.clone().map_or(Value::Null, Value::String),
            parameters,
            metrics,
            transactions,
            object(details),
        ]);
    }
    Ok(rows)
}

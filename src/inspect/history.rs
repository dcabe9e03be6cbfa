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

/// One row per commit, newest first; at most `limit` rows (the most recent; `Some(0)` is no
/// limit, as `--limit 0` is everywhere).
pub async fn run(warehouse: &Warehouse, name: &str, limit: Option<usize>) -> Result<Rows> {
    let (id, table) = super::open_table(warehouse, name).await?;
    let latest = super::latest_version(&id, &table)?;
    let oldest = match limit {
        Some(n) if n > 0 => (latest + 1).saturating_sub(n as u64),
        _ => 0,
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
                Value::Object(map) => {
                    object(map.into_iter().map(|(k, v)| (k, number(v))).collect())
                }
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

/// A metric as a number: Spark (and bronze's stream, which writes its commits as Spark does)
/// stores `operationMetrics` values as strings, deltalake as numbers; history shows numbers
/// whatever wrote the commit.
fn number(value: Value) -> Value {
    let Value::String(text) = &value else {
        return value;
    };
    if let Ok(n) = text.parse::<i64>() {
        return json!(n);
    }
    if let Ok(n) = text.parse::<u64>() {
        return json!(n);
    }
    // Plain decimals only: "NaN", "inf" or "1e5" stay the text a writer wrote.
    let decimal = text
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    match text.parse::<f64>() {
        Ok(n) if decimal && n.is_finite() => json!(n),
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_strings_become_numbers_and_the_rest_stays() {
        for (given, expected) in [
            (json!("12"), json!(12)),
            (json!("-3"), json!(-3)),
            (json!("18446744073709551615"), json!(u64::MAX)),
            (json!("2.5"), json!(2.5)),
            (json!(7), json!(7)),
            (json!("NaN"), json!("NaN")),
            (json!("inf"), json!("inf")),
            (json!("1e5"), json!("1e5")),
            (json!(""), json!("")),
            (json!("12 ms"), json!("12 ms")),
            (json!(null), json!(null)),
        ] {
            assert_eq!(number(given.clone()), expected, "{given}");
        }
    }
}

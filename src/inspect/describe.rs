//! `medallion describe <table>`: what Spark's `DESCRIBE EXTENDED` tells, for a Delta table of the
//! warehouse: its columns, then where it is, its protocol and properties, its size, and which
//! upstream versions it has consumed (the application transactions its writers recorded), so a
//! user can see how far behind its sources a table is.

use deltalake::table::state::DeltaTableState;
use serde_json::{Value, json};

use super::format::{self, Rows};
use crate::catalog::DATABASE;
use crate::error::Result;
use crate::warehouse::Warehouse;

/// A version's columns in Spark's `DESCRIBE` layout: `col_name`, `data_type`, and `comment`
/// saying whether it is nullable. Also `DESCRIBE <table>` in `medallion sql`.
pub(super) fn columns(snapshot: &DeltaTableState) -> Rows {
    let mut rows = Rows::new(&["col_name", "data_type", "comment"]);
    for field in snapshot.schema().fields() {
        let nullable = if field.is_nullable() {
            "nullable"
        } else {
            "not null"
        };
        rows.push(vec![
            json!(field.name()),
            json!(field.data_type().to_string()),
            json!(nullable),
        ]);
    }
    rows
}

/// Columns (name, type, nullable), then `# Detailed Table Information`, in Spark's layout:
/// `col_name`, `data_type`, `comment`.
pub async fn run(warehouse: &Warehouse, name: &str) -> Result<Rows> {
    let (id, table) = super::open_table(warehouse, name).await?;
    let version = super::latest_version(&id, &table)?;
    let snapshot = table.snapshot().map_err(id.err("load"))?;

    let mut rows = columns(snapshot);

    // The kernel keeps most accessors of these actions private; their serialised form is the
    // log's own (`createdTime`, `configuration`, `minReaderVersion`...).
    let metadata = serde_json::to_value(snapshot.metadata()).expect("metadata serialises");
    let protocol = serde_json::to_value(snapshot.protocol()).expect("a protocol serialises");
    let files = snapshot.log_data();
    let (records, bytes) = super::file_totals(snapshot);
    let last = super::read_commit(&id, &table, version).await?;
    let features = |key: &str| {
        protocol
            .get(key)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(format::plain)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .map_or(Value::Null, Value::String)
    };
    let mut properties: Vec<(String, String)> = metadata
        .get("configuration")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(k, v)| (k.clone(), format::plain(v)))
                .collect()
        })
        .unwrap_or_default();
    properties.sort();

    let mut detail = |key: &str, value: Value, comment: Value| {
        rows.push(vec![json!(key), value, comment]);
    };
    detail("# Detailed Table Information", Value::Null, Value::Null);
    detail("Database", json!(DATABASE), Value::Null);
    detail("Table", json!(name), Value::Null);
    detail(
        "Description",
        metadata.get("description").cloned().unwrap_or_default(),
        Value::Null,
    );
    detail("Location", json!(id.url.as_str()), Value::Null);
    detail("Provider", json!("delta"), Value::Null);
    detail(
        "Partition Columns",
        json!(
            metadata
                .get("partitionColumns")
                .and_then(Value::as_array)
                .map(|cols| cols
                    .iter()
                    .map(format::plain)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
        Value::Null,
    );
    detail("Version", json!(version), Value::Null);
    detail(
        "Created Time",
        metadata
            .get("createdTime")
            .and_then(Value::as_i64)
            .map_or(Value::Null, format::millis),
        Value::Null,
    );
    detail(
        "Last Commit",
        last.as_ref()
            .and_then(|c| c.timestamp())
            .map_or(Value::Null, format::millis),
        last.as_ref()
            .and_then(|c| c.info.as_ref())
            .and_then(|i| i.operation.clone())
            .map_or(Value::Null, Value::String),
    );
    detail("Files", json!(files.num_files()), Value::Null);
    detail("Size (bytes)", json!(bytes), Value::Null);
    detail(
        "Rows",
        records.map_or(Value::Null, Value::from),
        json!("from file statistics"),
    );
    detail(
        "Min Reader Version",
        protocol
            .get("minReaderVersion")
            .cloned()
            .unwrap_or_default(),
        Value::Null,
    );
    detail(
        "Min Writer Version",
        protocol
            .get("minWriterVersion")
            .cloned()
            .unwrap_or_default(),
        Value::Null,
    );
    detail("Reader Features", features("readerFeatures"), Value::Null);
    detail("Writer Features", features("writerFeatures"), Value::Null);
    detail(
        "Table Properties",
        json!(format!(
            "[{}]",
            properties
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Value::Null,
    );
    for txn in super::app_transactions(warehouse, &id, &table).await? {
        let (key, value) = match (&txn.upstream, &txn.bronze_source) {
            (Some(upstream), _) => ("Consumed", format!("{upstream} v{}", txn.version)),
            (None, Some(source)) if source == crate::warehouse::DEFAULT_SOURCE => (
                "Stream Batch",
                format!("bronze stream batch {}", txn.version),
            ),
            (None, Some(source)) => (
                "Stream Batch",
                format!("bronze stream of source {source}, batch {}", txn.version),
            ),
            (None, None) => ("Transaction", format!("{} = {}", txn.app_id, txn.version)),
        };
        detail(key, json!(value), json!(format!("txn {}", txn.app_id)));
    }
    Ok(rows)
}

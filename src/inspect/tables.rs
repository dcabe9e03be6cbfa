//! `medallion tables`: every table of the warehouse at a glance. Row counts come from the file
//! statistics in the log, so listing a large warehouse reads no data file.

use serde_json::{Value, json};

use super::format::{self, Rows};
use crate::error::Result;
use crate::warehouse::Warehouse;

/// One row per table: version, rows, files, bytes, last commit time.
pub async fn run(warehouse: &Warehouse) -> Result<Rows> {
    let mut rows = Rows::new(&["table", "version", "rows", "files", "bytes", "last_commit"]);
    for name in super::table_names(warehouse).await? {
        let (id, table) = match super::open_table(warehouse, &name).await {
            Ok(opened) => opened,
            // A folder whose first commit is not written yet is no table yet.
            Err(crate::error::Error::TableNotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let version = super::latest_version(&id, &table)?;
        let snapshot = table.snapshot().map_err(id.err("load"))?;
        let files = snapshot.log_data();
        let (records, bytes) = super::file_totals(snapshot);
        let last_commit = super::read_commit(&id, &table, version)
            .await?
            .and_then(|c| c.timestamp());
        rows.push(vec![
            json!(name),
            json!(version),
            records.map_or(Value::Null, Value::from),
            json!(files.num_files()),
            json!(bytes),
            last_commit.map_or(Value::Null, format::millis),
        ]);
    }
    Ok(rows)
}

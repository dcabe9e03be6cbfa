//! `medallion files`: the state of every source file the bronze streams know, as Auto Loader's
//! `cloud_files_state()`: taken files from each stream's checkpoint (its state file and the
//! plans after it: batch, when it was planned, the bronze version that holds it, what
//! `--clean-source` did), the rows of each the quarantine table holds, and the files listed in
//! the source folder that no batch has taken yet (`pending`).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::format::{self, Rows};
use crate::catalog;
use crate::delta::{self, TableId};
use crate::error::Result;
use crate::folder::Folder;
use crate::source::discover::{self, Completeness, Seen};
use crate::stream::checkpoint::{self, Checkpoint};
use crate::stream::state::FileState;
use crate::warehouse::{DEFAULT_SOURCE, DataDir, Warehouse, parse_location};

const COLUMNS: [&str; 11] = [
    "source",
    "file",
    "size",
    "modified",
    "discovered",
    "batch",
    "version",
    "state",
    "quarantined_rows",
    "detail",
    "path",
];

/// One row per file, by source, then batch (pending files last, oldest first).
pub async fn run(warehouse: &Warehouse, data: &DataDir) -> Result<Rows> {
    let mut rows = Rows::new(&COLUMNS);
    let quarantined = quarantined_rows(warehouse).await?;
    let bronze_id = TableId::of(warehouse, &catalog::BRONZE);
    let bronze = delta::open(&bronze_id).await?;
    let default = warehouse.checkpoint(catalog::BRONZE.name, DEFAULT_SOURCE)?;
    let checkpoints = checkpoint::all(&default, DEFAULT_SOURCE).await?;
    if !checkpoints.iter().any(|(name, _)| name == DEFAULT_SOURCE) {
        // No stream yet: every file of the tracker folder waits for its first batch.
        if let Ok(folder) = data.tracker().folder(data.options()) {
            for file in pending(None, &folder).await? {
                rows.push(pending_row(DEFAULT_SOURCE, &folder, &file));
            }
        }
    }
    for (name, checkpoint) in checkpoints {
        // The batches the table holds: a batch committed by a run killed before its done
        // marker is committed all the same.
        let committed = match &bronze {
            Some(table) => delta::app_version(&bronze_id, table, checkpoint.stream_id()).await?,
            None => None,
        };
        let folder = match checkpoint
            .source()
            .and_then(|bound| parse_location(bound).ok())
        {
            Some(location) => Some(location.folder(data.options())?),
            None => None,
        };
        let path = |file: &str| match &folder {
            Some(folder) => folder.display_file(file),
            None => file.to_string(),
        };
        for file in checkpoint.known().await?.files() {
            let quarantined = quarantined
                .get(&(file.batch_id, file.file.name.clone()))
                .copied()
                .unwrap_or(0);
            let in_table = committed.is_some_and(|c| c >= file.batch_id);
            rows.push(taken_row(
                &name,
                &path(&file.file.name),
                &file,
                quarantined,
                in_table,
            ));
        }
        if let Some(folder) = &folder {
            for file in pending(Some(&checkpoint), folder).await? {
                rows.push(pending_row(&name, folder, &file));
            }
        }
    }
    Ok(rows)
}

fn pending_row(source: &str, folder: &Folder, file: &discover::SourceFile) -> Vec<Value> {
    vec![
        json!(source),
        json!(file.name),
        json!(file.size),
        format::millis(file.mtime_ms),
        Value::Null,
        Value::Null,
        Value::Null,
        json!("pending"),
        Value::Null,
        Value::Null,
        json!(folder.display_file(&file.name)),
    ]
}

/// The row of a file a batch took.
fn taken_row(
    source: &str,
    path: &str,
    file: &FileState,
    quarantined: u64,
    in_table: bool,
) -> Vec<Value> {
    let state = match (&file.cleaned, file.table_version) {
        (Some(cleaned), _) => cleaned.action.as_str(),
        (None, Some(_)) => "committed",
        (None, None) if in_table => "committed",
        (None, None) => "planned",
    };
    // Where clean-up moved it, or why it left it.
    let detail = file
        .cleaned
        .as_ref()
        .and_then(|c| c.detail.as_ref())
        .map_or(Value::Null, |d| json!(d));
    vec![
        json!(source),
        json!(file.file.name),
        json!(file.file.size),
        format::millis(file.file.mtime_ms),
        format::millis(file.planned_at),
        json!(file.batch_id),
        file.table_version.map_or(Value::Null, Value::from),
        json!(state),
        json!(quarantined),
        detail,
        json!(path),
    ]
}

/// The files in a stream's folder that no batch has taken, whether or not complete yet.
async fn pending(
    checkpoint: Option<&Checkpoint>,
    folder: &Folder,
) -> Result<Vec<discover::SourceFile>> {
    let mut seen = match checkpoint {
        Some(checkpoint) => Seen::as_the_stream_saw(checkpoint).await?,
        None => Seen::default(),
    };
    let now = Completeness {
        settle: Duration::ZERO,
        recheck: Duration::ZERO,
    };
    Ok(discover::discover(folder, &mut seen, now).await?.files)
}

/// Rows of the bronze quarantine table by (batch, file name).
async fn quarantined_rows(warehouse: &Warehouse) -> Result<HashMap<(i64, String), u64>> {
    let id = TableId::of(warehouse, &catalog::BRONZE_QUARANTINE);
    let mut counts = HashMap::new();
    let Some(table) = delta::open(&id).await? else {
        return Ok(counts);
    };
    let ctx = delta::session_with(&id, &table, "q").await?;
    let sql = "SELECT batch_id AS b, source_file AS f, count(*) AS n FROM q GROUP BY 1, 2";
    for batch in delta::query(&ctx, &id, "count quarantined rows", sql).await? {
        let batch_ids = delta::int64s(&batch, "b")?;
        let files = delta::strings(&batch, "f")?;
        let n = delta::int64s(&batch, "n")?;
        for ((b, f), n) in batch_ids.iter().zip(files.iter()).zip(n.iter()) {
            if let (Some(b), Some(f), Some(n)) = (b, f, n) {
                let name = f.rsplit('/').next().unwrap_or(f).to_string();
                *counts.entry((b, name)).or_default() += n as u64;
            }
        }
    }
    Ok(counts)
}

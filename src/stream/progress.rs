//! One progress record per micro-batch, with Spark's field names (`StreamingQueryProgress`)
//! where they fit, appended to the checkpoint's `progress.jsonl` and printed with `--json`.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub id: String,
    pub run_id: String,
    pub name: String,
    /// When the batch's trigger started, RFC 3339 UTC.
    pub timestamp: String,
    pub batch_id: i64,
    pub num_input_rows: u64,
    pub input_rows_per_second: f64,
    pub processed_rows_per_second: f64,
    pub duration_ms: Durations,
    pub sources: Vec<SourceProgress>,
    pub sink: SinkProgress,
    /// Rows (or whole files) that went to the quarantine table instead.
    pub num_quarantined_rows: u64,
    /// The bronze version that holds the batch.
    pub table_version: u64,
    /// Whether this batch was planned by an earlier run that stopped before finishing it.
    pub recovered: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Durations {
    /// Listing the source folder for new files.
    pub latest_offset: u64,
    /// Writing the batch's plan to the write-ahead log.
    pub wal_commit: u64,
    /// Reading the files and writing Parquet (done ahead, overlapping earlier batches).
    pub get_batch: u64,
    /// The Delta commits (quarantine, then bronze).
    pub add_batch: u64,
    /// Marking the batch done in the checkpoint.
    pub commit_offsets: u64,
    pub trigger_execution: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceProgress {
    pub description: String,
    /// The previous batch id (Spark's offsets are batch ids for file sources), if any.
    pub start_offset: Option<i64>,
    pub end_offset: i64,
    pub num_input_rows: u64,
    /// The files of the batch.
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkProgress {
    pub description: String,
    pub num_output_rows: u64,
}

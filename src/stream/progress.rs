//! One progress record per micro-batch, appended to the checkpoint's `progress.jsonl` and
//! printed with `--json`: Spark's `StreamingQueryProgress` as Spark 4 writes it (PySpark's own
//! `StreamingQueryProgress.fromJson` reads every record: `make test` checks it), with the
//! source's backlog in its `metrics` as Auto Loader reports them, and a few keys of our own
//! (the batch's files, quarantined rows, the table version, recovered) that Spark's readers
//! ignore.

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
    /// The batch's time on the stream (Spark: the trigger's duration), milliseconds.
    pub batch_duration: u64,
    /// Rows read from the sources (committed plus quarantined), as the sources' sum.
    pub num_input_rows: u64,
    pub input_rows_per_second: f64,
    pub processed_rows_per_second: f64,
    pub duration_ms: Durations,
    /// No stateful operators in an append of files.
    pub state_operators: Vec<serde_json::Value>,
    pub sources: Vec<SourceProgress>,
    pub sink: SinkProgress,
    /// Rows (or whole files) that went to the quarantine table instead.
    pub num_quarantined_rows: u64,
    /// Of the rows committed, those with fields outside the source columns (`_rescued_data`).
    pub num_rescued_rows: u64,
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
    /// The offset before the batch (Spark's file source: `{"logOffset": N}`, the previous
    /// batch id), `null` for the first batch.
    pub start_offset: Option<Offset>,
    pub end_offset: Offset,
    /// Not tracked for a file source, as Spark's: `null`.
    pub latest_offset: Option<Offset>,
    pub num_input_rows: u64,
    pub input_rows_per_second: f64,
    pub processed_rows_per_second: f64,
    /// Auto Loader's backlog: `numFilesOutstanding`, `numBytesOutstanding` (files listed but
    /// not yet taken into a batch, as of the listing the batch was planned from), as strings.
    pub metrics: std::collections::BTreeMap<String, String>,
    /// The files of the batch.
    pub files: Vec<String>,
}

/// A file source's offset: the batch id in its log.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Offset {
    pub log_offset: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkProgress {
    pub description: String,
    pub num_output_rows: u64,
    pub metrics: std::collections::BTreeMap<String, String>,
}

/// What a trigger's listing left for later batches: files and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub files: u64,
    pub bytes: u64,
}

impl Backlog {
    pub fn metrics(self) -> std::collections::BTreeMap<String, String> {
        [
            ("numFilesOutstanding".to_string(), self.files.to_string()),
            ("numBytesOutstanding".to_string(), self.bytes.to_string()),
        ]
        .into()
    }
}

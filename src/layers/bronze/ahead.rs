//! Micro-batches read and written ahead of their commits, so the two cores work at once.
//!
//! Three stages run side by side: a thread reads and parses the files of batch N+2, a task
//! encodes batch N+1 as Parquet in the table's folder, and the stream plans, commits and marks
//! done batch N. Each stage hands the next one batch at a time (a channel of one), so at most a
//! few batches are in memory whatever the number of files.
//!
//! Nothing here touches the stream's state: a data file is only part of the table once a commit
//! names it, and the commit still follows the plan in the write-ahead log. A file written for a
//! batch that is never committed (the stream stopped, or failed, first) is deleted by
//! [`Ahead::discard`]; after a crash it stays as an orphan no reader sees, as one written just
//! before a crash always did.

use std::path::PathBuf;
use std::time::Instant;

use deltalake::ObjectStore;
use deltalake::arrow::array::RecordBatch;
use deltalake::kernel::Add;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use tokio::sync::mpsc;

use super::QuarantineRow;
use crate::delta::TableId;
use crate::error::{Error, Result};
use crate::source::discover::{self, SourceFile};
use crate::source::json::{self, FileError, Lineage};

/// What one batch's files gave, written as Parquet but not committed.
pub struct Prepared {
    pub batch_id: i64,
    pub adds: Vec<Add>,
    pub rows: u64,
    pub quarantine: Vec<QuarantineRow>,
    /// Stamped on the rows as `_ingested_at` (and on quarantine rows).
    pub ingested_at: i64,
    /// Time spent reading, parsing and writing the batch (not waiting for a stage).
    pub millis: u64,
}

/// A batch's files parsed into Arrow, before Parquet.
struct Parsed {
    batch_id: i64,
    batches: Vec<RecordBatch>,
    rows: u64,
    quarantine: Vec<QuarantineRow>,
    ingested_at: i64,
    millis: u64,
}

/// The batches of one trigger, being prepared in order.
pub struct Ahead {
    prepared: mpsc::Receiver<Result<Prepared>>,
    store: std::sync::Arc<dyn ObjectStore>,
    /// The Parquet stage, which deletes what it wrote when nobody takes it.
    writer: tokio::task::JoinHandle<()>,
}

impl Ahead {
    /// Start preparing `batches` (batch id, files), in order.
    pub fn start(
        id: &TableId,
        store: std::sync::Arc<dyn ObjectStore>,
        source_dir: PathBuf,
        batches: Vec<(i64, Vec<SourceFile>)>,
    ) -> Self {
        let (parsed_tx, mut parsed_rx) = mpsc::channel::<Result<Parsed>>(1);
        std::thread::spawn(move || {
            for (batch_id, files) in batches {
                let parsed = parse_files(&source_dir, batch_id, &files);
                let failed = parsed.is_err();
                if parsed_tx.blocking_send(parsed).is_err() || failed {
                    return;
                }
            }
        });
        let (prepared_tx, prepared) = mpsc::channel::<Result<Prepared>>(1);
        let (id, task_store) = (id.clone(), store.clone());
        let writer = tokio::spawn(async move {
            while let Some(parsed) = parsed_rx.recv().await {
                let prepared = match parsed {
                    Ok(parsed) => write_parquet(&id, parsed).await,
                    Err(e) => Err(e),
                };
                if let Err(mpsc::error::SendError(unwanted)) = prepared_tx.send(prepared).await {
                    // The stream stopped waiting: nobody will commit these files.
                    if let Ok(unwanted) = unwanted {
                        delete(task_store.as_ref(), &unwanted.adds).await;
                    }
                    return;
                }
            }
        });
        Self {
            prepared,
            store,
            writer,
        }
    }

    /// The next batch, which must be `batch_id`.
    pub async fn next(&mut self, batch_id: i64) -> Result<Prepared> {
        let prepared = self
            .prepared
            .recv()
            .await
            .expect("a stage stops early only after handing over its error (or panicking)")?;
        assert_eq!(prepared.batch_id, batch_id, "batches are prepared in order");
        Ok(prepared)
    }

    /// Stop preparing, and delete the files of batches prepared but never handed out.
    pub async fn discard(mut self) {
        self.prepared.close();
        while let Some(prepared) = self.prepared.recv().await {
            if let Ok(prepared) = prepared {
                delete(self.store.as_ref(), &prepared.adds).await;
            }
        }
        let _ = self.writer.await;
    }
}

/// Best effort: a file left behind is an orphan no reader sees.
async fn delete(store: &dyn ObjectStore, adds: &[Add]) {
    for add in adds {
        if let Ok(path) = deltalake::Path::parse(&add.path) {
            let _ = store.delete(&path).await;
        }
    }
}

/// Read and parse a batch's files. A file that vanished since it was planned, or cannot be read
/// as JSON, becomes quarantine rows; only an I/O error fails the batch.
fn parse_files(
    source_dir: &std::path::Path,
    batch_id: i64,
    files: &[SourceFile],
) -> Result<Parsed> {
    let start = Instant::now();
    let ingested_at = chrono::Utc::now().timestamp_micros();
    let mut parsed = Parsed {
        batch_id,
        batches: Vec::new(),
        rows: 0,
        quarantine: Vec::new(),
        ingested_at,
        millis: 0,
    };
    for file in files {
        let path = discover::path_of(source_dir, file);
        let source_file = path.display().to_string();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                parsed.quarantine.push(QuarantineRow {
                    source_file,
                    line: None,
                    error: "the file was planned for this batch but no longer exists".into(),
                    raw: String::new(),
                });
                continue;
            }
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        let lineage = Lineage {
            source_file: source_file.clone(),
            batch_id,
            ingested_at,
        };
        match json::read_tracker(&bytes, &lineage, &mut |b| parsed.batches.push(b)) {
            Ok(outcome) => {
                parsed.rows += outcome.rows as u64;
                parsed
                    .quarantine
                    .extend(outcome.rejects.into_iter().map(|r| QuarantineRow {
                        source_file: source_file.clone(),
                        line: Some(r.line),
                        error: r.message,
                        raw: r.excerpt,
                    }));
            }
            Err(FileError {
                line,
                message,
                excerpt,
            }) => parsed.quarantine.push(QuarantineRow {
                source_file,
                line,
                error: format!("file not ingested: {message}"),
                raw: excerpt,
            }),
        }
    }
    parsed.millis = start.elapsed().as_millis() as u64;
    Ok(parsed)
}

/// Write a parsed batch's rows as Parquet in the table's folder (invisible until committed).
async fn write_parquet(id: &TableId, parsed: Parsed) -> Result<Prepared> {
    let start = Instant::now();
    let mut adds = Vec::new();
    if !parsed.batches.is_empty() {
        let mut writer =
            RecordBatchWriter::try_new(id.url.as_str(), json::bronze_schema(), None, None)
                .map_err(id.err("write Parquet"))?;
        for batch in parsed.batches {
            writer.write(batch).await.map_err(id.err("write Parquet"))?;
        }
        adds = writer.flush().await.map_err(id.err("write Parquet"))?;
    }
    Ok(Prepared {
        batch_id: parsed.batch_id,
        adds,
        rows: parsed.rows,
        quarantine: parsed.quarantine,
        ingested_at: parsed.ingested_at,
        millis: parsed.millis + start.elapsed().as_millis() as u64,
    })
}

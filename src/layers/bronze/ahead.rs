//! Micro-batches read and written ahead of their commits, so the two cores work at once.
//!
//! Three stages run side by side: a thread reads and parses source files, a task encodes them
//! as Parquet, one file per batch, in the table's folder, and the stream plans, commits and
//! marks done the batches so written. The parser hands the writer one source file at a time and
//! the writer hands the stream one batch at a time (channels of one), so a batch of many files
//! is parsed and encoded at once too, and memory holds a few files' rows and one batch's
//! Parquet, whatever the number of files.
//!
//! Nothing here touches the stream's state: a data file is only part of the table once a commit
//! names it, and the commit still follows the plan in the write-ahead log. A file written for a
//! batch that is never committed (the stream stopped, or failed, first) is deleted by
//! [`Ahead::discard`]; after a crash it stays as an orphan no reader sees, as one written just
//! before a crash always did.

use std::time::Instant;

use deltalake::ObjectStore;
use deltalake::arrow::array::{Array, RecordBatch};
use deltalake::kernel::Add;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use tokio::sync::mpsc;

use super::batch::QuarantineRow;
use crate::delta::TableId;
use crate::error::{Error, Result};
use crate::folder::Folder;
use crate::source::discover::SourceFile;
use crate::source::json::{self, FileError, Lineage};

/// What one batch's files gave, written as Parquet but not committed.
pub struct Prepared {
    pub batch_id: i64,
    pub adds: Vec<Add>,
    pub rows: u64,
    /// Of `rows`, those with fields outside the source columns (`_rescued_data` set).
    pub rescued: u64,
    pub quarantine: Vec<QuarantineRow>,
    /// Stamped on the rows as `_ingested_at` (and on quarantine rows).
    pub ingested_at: i64,
    /// Time spent reading, parsing and writing the batch (not waiting for a stage).
    pub millis: u64,
}

/// One source file of a batch, parsed into Arrow, before Parquet.
struct Piece {
    batch_id: i64,
    /// The batch's last file.
    last: bool,
    batches: Vec<RecordBatch>,
    rows: u64,
    quarantine: Vec<QuarantineRow>,
    ingested_at: i64,
    millis: u64,
}

impl Piece {
    fn empty(batch_id: i64, ingested_at: i64) -> Self {
        Self {
            batch_id,
            last: false,
            batches: Vec::new(),
            rows: 0,
            quarantine: Vec::new(),
            ingested_at,
            millis: 0,
        }
    }
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
        source: Folder,
        batches: Vec<(i64, Vec<SourceFile>)>,
    ) -> Self {
        let (pieces_tx, mut pieces) = mpsc::channel::<Result<Piece>>(1);
        // An object store is read through the runtime, from the parsing thread.
        let runtime = tokio::runtime::Handle::current();
        std::thread::spawn(move || {
            for (batch_id, files) in batches {
                let ingested_at = chrono::Utc::now().timestamp_micros();
                // A batch without files (a plan edited by hand) still gets its (empty) piece.
                let files: Vec<Option<&SourceFile>> = if files.is_empty() {
                    vec![None]
                } else {
                    files.iter().map(Some).collect()
                };
                // Rows are numbered across the batch's files, in plan order (`_position`).
                let mut position = 0i64;
                for (index, file) in files.iter().enumerate() {
                    let last = index + 1 == files.len();
                    let piece = match file {
                        Some(file) => {
                            let read = read_source(&runtime, &source, file);
                            parse_file(&source, file, read, batch_id, ingested_at, position)
                        }
                        None => Ok(Piece::empty(batch_id, ingested_at)),
                    }
                    .map(|piece| Piece { last, ..piece });
                    if let Ok(piece) = &piece {
                        position += piece.rows as i64;
                    }
                    let failed = piece.is_err();
                    if pieces_tx.blocking_send(piece).is_err() || failed {
                        return;
                    }
                }
            }
        });
        let (prepared_tx, prepared) = mpsc::channel::<Result<Prepared>>(1);
        let (id, task_store) = (id.clone(), store.clone());
        let writer = tokio::spawn(async move {
            let mut batch: Option<BatchWriter> = None;
            while let Some(piece) = pieces.recv().await {
                if prepared_tx.is_closed() {
                    // The stream stopped waiting: do not finish the batch for nobody (what a
                    // large batch already wrote is deleted).
                    if let Some(writer) = batch.take()
                        && let Ok(unwanted) = writer.finish(&id).await
                    {
                        delete(task_store.as_ref(), &unwanted.adds).await;
                    }
                    return;
                }
                let done = match piece {
                    Ok(piece) => {
                        let last = piece.last;
                        let writer = batch.get_or_insert_with(|| BatchWriter::new(&piece));
                        match writer.add(&id, piece).await {
                            Ok(()) if !last => continue,
                            Ok(()) => {
                                let writer = batch.take().expect("the batch was just written to");
                                writer.finish(&id).await
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                };
                let failed = done.is_err();
                if let Err(mpsc::error::SendError(unwanted)) = prepared_tx.send(done).await {
                    // The stream stopped waiting: nobody will commit these files.
                    if let Ok(unwanted) = unwanted {
                        delete(task_store.as_ref(), &unwanted.adds).await;
                    }
                    return;
                }
                if failed {
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

/// Delete data files that will not be committed. Best effort: a file left behind is an orphan
/// no reader sees.
pub(super) async fn delete(store: &dyn ObjectStore, adds: &[Add]) {
    for add in adds {
        if let Ok(path) = deltalake::Path::parse(&add.path) {
            let _ = store.delete(&path).await;
        }
    }
}

/// The bytes of a source file, from a local folder or an object store, as it is now. A batch
/// redone after a crash was never committed, so reading the file's current content (a bad file
/// fixed after `--bad-files fail`, say) doubles nothing.
fn read_source(
    runtime: &tokio::runtime::Handle,
    source: &Folder,
    file: &SourceFile,
) -> Result<Option<Vec<u8>>> {
    match source {
        // Read directly: a symbolic link is followed, as discovery did.
        Folder::Local(dir) => {
            let path = dir.join(&file.name);
            match std::fs::read(&path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io("read", path)(e)),
            }
        }
        Folder::Store { .. } => runtime.block_on(source.read(&file.name)),
    }
}

/// Parse one source file of a batch, `read` from its folder. A file that vanished since it was
/// planned, or cannot be read as JSON, becomes quarantine rows; only an I/O error fails the
/// batch.
fn parse_file(
    source: &Folder,
    file: &SourceFile,
    read: Result<Option<Vec<u8>>>,
    batch_id: i64,
    ingested_at: i64,
    first_position: i64,
) -> Result<Piece> {
    let start = Instant::now();
    let mut piece = Piece::empty(batch_id, ingested_at);
    let source_file = source.display_file(&file.name);
    let bytes = match read? {
        Some(bytes) => bytes,
        None => {
            piece.quarantine.push(QuarantineRow {
                source_file,
                line: None,
                error: "the file was planned for this batch but no longer exists".into(),
                raw: String::new(),
            });
            return Ok(piece);
        }
    };
    let lineage = Lineage {
        source_file: source_file.clone(),
        batch_id,
        ingested_at,
        first_position,
    };
    match json::read_tracker(&bytes, &lineage, &mut |b| piece.batches.push(b)) {
        Ok(outcome) => {
            piece.rows = outcome.rows as u64;
            piece.quarantine = outcome
                .rejects
                .into_iter()
                .map(|r| QuarantineRow {
                    source_file: source_file.clone(),
                    line: Some(r.line),
                    error: r.message,
                    raw: r.excerpt,
                })
                .collect();
        }
        Err(FileError {
            line,
            message,
            excerpt,
        }) => piece.quarantine.push(QuarantineRow {
            source_file,
            line,
            error: format!("file not ingested: {message}"),
            raw: excerpt,
        }),
    }
    piece.millis = start.elapsed().as_millis() as u64;
    Ok(piece)
}

/// A batch being written: its rows go to one Parquet file (invisible until committed).
struct BatchWriter {
    writer: Option<RecordBatchWriter>,
    prepared: Prepared,
}

impl BatchWriter {
    fn new(first: &Piece) -> Self {
        Self {
            writer: None,
            prepared: Prepared {
                batch_id: first.batch_id,
                adds: Vec::new(),
                rows: 0,
                rescued: 0,
                quarantine: Vec::new(),
                ingested_at: first.ingested_at,
                millis: 0,
            },
        }
    }

    async fn add(&mut self, id: &TableId, piece: Piece) -> Result<()> {
        let start = Instant::now();
        for batch in piece.batches {
            if let Some(rescued) = batch.column_by_name("_rescued_data") {
                self.prepared.rescued += (rescued.len() - rescued.null_count()) as u64;
            }
            let writer = match &mut self.writer {
                Some(writer) => writer,
                None => self.writer.insert(
                    RecordBatchWriter::try_new(
                        id.url.as_str(),
                        crate::catalog::BRONZE.schema(),
                        None,
                        Some(id.options.as_ref().clone()),
                    )
                    .map_err(id.err("write Parquet"))?
                    .with_writer_properties(crate::catalog::BRONZE.writer_properties()),
                ),
            };
            writer.write(batch).await.map_err(id.err("write Parquet"))?;
        }
        let prepared = &mut self.prepared;
        prepared.rows += piece.rows;
        prepared.quarantine.extend(piece.quarantine);
        prepared.millis += piece.millis + start.elapsed().as_millis() as u64;
        Ok(())
    }

    async fn finish(mut self, id: &TableId) -> Result<Prepared> {
        let start = Instant::now();
        if let Some(mut writer) = self.writer {
            self.prepared.adds = writer.flush().await.map_err(id.err("write Parquet"))?;
            // On disk before the (synced) commit names them, or a power cut could keep the
            // commit and lose its rows.
            let paths: Vec<String> = self.prepared.adds.iter().map(|a| a.path.clone()).collect();
            crate::delta::store::sync_local_files(id, &paths).await?;
        }
        self.prepared.millis += start.elapsed().as_millis() as u64;
        Ok(self.prepared)
    }
}

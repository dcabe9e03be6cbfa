//! A table's data files read back from their Parquet directly, several at once, without a
//! snapshot that must still list them: silver reads bronze files a compaction may have removed
//! since they were added (they stay in the folder until a vacuum deletes them), and a
//! compaction reads the files it packs. Our tables have neither deletion vectors nor column
//! mapping, so a file's Parquet is its rows.

use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;
use deltalake::kernel::Add;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use futures::StreamExt;

use super::TableId;
use crate::error::{Error, Result};

/// One data file's rows, or that it is gone.
pub enum Read {
    Rows(Vec<RecordBatch>),
    Gone,
}

/// The rows of `adds`' files, in their order (read on every core).
pub async fn read(id: &TableId, table: &DeltaTable, adds: Vec<Add>) -> Result<Vec<(Add, Read)>> {
    let store = table.log_store().object_store(None);
    let reads = adds.into_iter().map(|add| {
        let store = store.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let read = read_one(&id, store.as_ref(), &add).await;
            read.map(|r| (add, r))
        })
    });
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut results = futures::stream::iter(reads).buffered(parallel);
    let mut files = Vec::new();
    while let Some(joined) = results.next().await {
        let read =
            joined.map_err(|e| Error::Usage(format!("table {}: a read stopped: {e}", id.name)))?;
        files.push(read?);
    }
    Ok(files)
}

async fn read_one(id: &TableId, store: &dyn deltalake::ObjectStore, add: &Add) -> Result<Read> {
    let failed = |message: String| Error::FileUnreadable {
        table: id.name.clone(),
        path: add.path.clone(),
        message,
    };
    let path = deltalake::Path::from_url_path(&add.path)
        .map_err(|e| failed(format!("not a path: {e}")))?;
    let bytes = match store.get(&path).await {
        Ok(got) => got.bytes().await,
        Err(e) => Err(e),
    };
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(deltalake::ObjectStoreError::NotFound { .. }) => return Ok(Read::Gone),
        Err(e) => return Err(failed(crate::error::chain_of(&e))),
    };
    let batches = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| failed(e.to_string()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| failed(e.to_string()))?;
    Ok(Read::Rows(batches))
}

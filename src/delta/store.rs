//! The store every table is opened through: a wrapper of the table's object store that
//! writes commit files durably on a local disk (temporary file, sync, put-if-absent by hard
//! link, sync of the folder; deltalake's local store syncs nothing), syncs local data files
//! before the commit that names them, and, inside a job run by [`super::orphans::scoped`],
//! notes every data file the job puts, so that a failed job's uncommitted files can be deleted.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use deltalake::{DeltaResult, DeltaTableBuilder, DeltaTableError, ObjectStoreError};
use futures::stream::BoxStream;

use super::TableId;
use super::orphans::Written;

/// The folder of a table's log: what is written there is never a data file.
const LOG_FOLDER: &str = "_delta_log";

/// The builder of a table's handle. Its store writes commit files durably on a local disk
/// ([`durable_commit`]) and, inside [`super::orphans::scoped`], records the data files the job
/// writes.
pub(crate) fn builder(id: &TableId) -> DeltaResult<DeltaTableBuilder> {
    let builder = DeltaTableBuilder::from_url(id.url.clone())?
        .with_storage_options(id.options.as_ref().clone());
    let written = super::orphans::recorder(id);
    let local = id.url.to_file_path().ok();
    if written.is_none() && local.is_none() {
        return Ok(builder);
    }
    let table = Path::from_url_path(id.url.path()).map_err(|e| DeltaTableError::GenericError {
        source: Box::new(e),
    })?;
    let store = Recording {
        inner: builder.build_storage()?.root_object_store(None),
        table,
        written,
        local,
    };
    Ok(builder.with_storage_backend(Arc::new(store), id.url.clone()))
}

/// Whether `relative` (to the table's folder) names a commit file: `_delta_log/<20 digits>.json`.
fn is_commit(relative: &Path) -> bool {
    let parts: Vec<_> = relative.parts().collect();
    match parts.as_slice() {
        [log, name] => {
            log.as_ref() == LOG_FOLDER
                && name.as_ref().len() == 25
                && name.as_ref().ends_with(".json")
                && name.as_ref()[..20].bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// Write a commit file so that a power cut cannot leave it empty or torn: the bytes go to a
/// temporary file in `_delta_log/`, synced, then take the commit's name only if it is free (a
/// hard link, as the local store does for put-if-absent), and the folder is synced. Without
/// the syncs a power cut can leave a 0-byte commit, which readers take for an empty one.
fn durable_commit(
    path: &std::path::Path,
    bytes: &[u8],
    create: bool,
) -> deltalake::logstore::object_store::Result<PutResult> {
    use crate::atomic::{Durability, create_new, write_atomically};
    let failed = |e: crate::error::Error| ObjectStoreError::Generic {
        store: "LocalFileSystem",
        source: Box::new(e),
    };
    // The first commit makes the log's folder (as the local store would).
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| failed(crate::error::Error::io("create", dir)(e)))?;
    }
    if create {
        if !create_new(path, bytes, Durability::PowerCut, None).map_err(failed)? {
            return Err(ObjectStoreError::AlreadyExists {
                path: path.display().to_string(),
                source: "the commit file exists".into(),
            });
        }
    } else {
        write_atomically(path, bytes).map_err(failed)?;
    }
    Ok(PutResult {
        e_tag: None,
        version: None,
    })
}

/// Note the version a job opened a table at. The first time, before the job wrote to it: a
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ObjectStore>,
    /// The table's folder in `inner`.
    table: Path,
    /// What the job writes, inside [`scoped`].
    written: Option<Arc<Mutex<Written>>>,
    /// The table's local folder, where commit files are written durably.
    local: Option<std::path::PathBuf>,
}

impl Recording {
    /// Note `location` if it is a data file of the table. Noted before it is written: a file
    /// that fails half-way is as much the job's to delete.
    fn note(&self, location: &Path) {
        let Some(parts) = location.prefix_match(&self.table) else {
            return;
        };
        let relative: Path = parts.collect();
        if relative
            .parts()
            .next()
            .is_none_or(|p| p.as_ref() == LOG_FOLDER)
        {
            return;
        }
        if let Some(written) = &self.written {
            super::orphans::note(written, relative);
        }
    }
}

impl Recording {
    /// The local file of `location` in a local table, and whether it is a commit file.
    fn local_file(&self, location: &Path) -> Option<(std::path::PathBuf, bool)> {
        let dir = self.local.as_ref()?;
        let relative: Path = location.prefix_match(&self.table)?.collect();
        let path = relative
            .parts()
            .fold(dir.clone(), |path, part| path.join(part.as_ref()));
        Some((path, is_commit(&relative)))
    }

    /// The local data file of `location` (not a commit): synced once written, so that the
    /// commit that names it (synced itself) never survives a power cut without it.
    fn local_data(&self, location: &Path) -> Option<std::path::PathBuf> {
        self.local_file(location)
            .filter(|(_, commit)| !*commit)
            .map(|(p, _)| p)
    }
}

/// Sync data files a writer outside this store wrote to a local table (bronze's Parquet
/// writer), by their paths relative to the table: before the commit that names them.
pub(crate) async fn sync_local_files(
    id: &TableId,
    relative: &[String],
) -> crate::error::Result<()> {
    let Ok(dir) = id.url.to_file_path() else {
        return Ok(());
    };
    for file in relative {
        let Ok(path) = Path::from_url_path(file) else {
            continue;
        };
        let local = path
            .parts()
            .fold(dir.clone(), |local, part| local.join(part.as_ref()));
        sync_file_async(local)
            .await
            .map_err(|e| id.err("sync a data file")(e.into()))?;
    }
    Ok(())
}

/// Sync a file and the folder that holds its name.
fn sync_file(path: &std::path::Path) -> deltalake::logstore::object_store::Result<()> {
    let sync = |p: &std::path::Path| std::fs::File::open(p).and_then(|f| f.sync_all());
    sync(path)
        .and_then(|()| path.parent().map_or(Ok(()), sync))
        .map_err(|e| ObjectStoreError::Generic {
            store: "LocalFileSystem",
            source: Box::new(crate::error::Error::io("sync", path)(e)),
        })
}

async fn sync_file_async(
    path: std::path::PathBuf,
) -> deltalake::logstore::object_store::Result<()> {
    tokio::task::spawn_blocking(move || sync_file(&path))
        .await
        .map_err(|e| ObjectStoreError::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        })?
}

/// A multipart upload of a local data file, synced when complete.
#[derive(Debug)]
struct SyncedUpload {
    inner: Box<dyn MultipartUpload>,
    path: std::path::PathBuf,
}

impl MultipartUpload for SyncedUpload {
    fn put_part(&mut self, data: PutPayload) -> deltalake::logstore::object_store::UploadPart {
        self.inner.put_part(data)
    }

    fn complete<'life0, 'async_trait>(&'life0 mut self) -> Boxed<'async_trait, PutResult>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let result = self.inner.complete().await?;
            sync_file_async(self.path.clone()).await?;
            Ok(result)
        })
    }

    fn abort<'life0, 'async_trait>(&'life0 mut self) -> Boxed<'async_trait, ()>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.abort()
    }
}

impl fmt::Display for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recording({})", self.inner)
    }
}

/// `bytes::Bytes`, named without depending on `bytes`.
type Bytes = <PutPayload as IntoIterator>::Item;

type Boxed<'a, T> =
    Pin<Box<dyn Future<Output = deltalake::logstore::object_store::Result<T>> + Send + 'a>>;

// `ObjectStore` is an `async_trait`: these are its methods written out (medallion does not
// depend on `async_trait`), each delegating to the inner store.
impl ObjectStore for Recording {
    fn put_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Boxed<'async_trait, PutResult>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let local = self.local_file(location);
        if let Some((path, true)) = local {
            let create = matches!(
                opts.mode,
                deltalake::logstore::object_store::PutMode::Create
            );
            let bytes = Bytes::from(payload);
            return Box::pin(async move {
                tokio::task::spawn_blocking(move || durable_commit(&path, &bytes, create))
                    .await
                    .map_err(|e| ObjectStoreError::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(e),
                    })?
            });
        }
        self.note(location);
        if let Some((path, false)) = local {
            let put = self.inner.put_opts(location, payload, opts);
            return Box::pin(async move {
                let result = put.await?;
                sync_file_async(path).await?;
                Ok(result)
            });
        }
        self.inner.put_opts(location, payload, opts)
    }

    fn put_multipart_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        opts: PutMultipartOptions,
    ) -> Boxed<'async_trait, Box<dyn MultipartUpload>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.note(location);
        let upload = self.inner.put_multipart_opts(location, opts);
        match self.local_data(location) {
            Some(path) => Box::pin(async move {
                let inner = upload.await?;
                Ok(Box::new(SyncedUpload { inner, path }) as Box<dyn MultipartUpload>)
            }),
            None => upload,
        }
    }

    fn get_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        options: GetOptions,
    ) -> Boxed<'async_trait, GetResult>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.get_opts(location, options)
    }

    fn get_ranges<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        ranges: &'life2 [Range<u64>],
    ) -> Boxed<'async_trait, Vec<Bytes>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        // The local store reads all ranges in one go; the default would not.
        self.inner.get_ranges(location, ranges)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, deltalake::logstore::object_store::Result<Path>>,
    ) -> BoxStream<'static, deltalake::logstore::object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> BoxStream<'static, deltalake::logstore::object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, deltalake::logstore::object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    fn list_with_delimiter<'life0, 'life1, 'async_trait>(
        &'life0 self,
        prefix: Option<&'life1 Path>,
    ) -> Boxed<'async_trait, ListResult>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.list_with_delimiter(prefix)
    }

    fn copy_opts<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        from: &'life1 Path,
        to: &'life2 Path,
        options: CopyOptions,
    ) -> Boxed<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.note(to);
        self.inner.copy_opts(from, to, options)
    }

    fn rename_opts<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        from: &'life1 Path,
        to: &'life2 Path,
        options: RenameOptions,
    ) -> Boxed<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.note(to);
        self.inner.rename_opts(from, to, options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_commit_files_are_commits() {
        for (path, commit) in [
            ("_delta_log/00000000000000000007.json", true),
            ("_delta_log/00000000000000000007.checkpoint.parquet", false),
            ("_delta_log/_last_checkpoint", false),
            ("_delta_log/_commit_1234.json.tmp", false),
            ("_delta_log/0000000000000000000x.json", false),
            ("00000000000000000007.json", false),
            ("part-0000.snappy.parquet", false),
        ] {
            assert_eq!(is_commit(&Path::from(path)), commit, "{path}");
        }
    }

    #[test]
    fn a_durable_commit_is_created_once_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("_delta_log/00000000000000000001.json");
        durable_commit(&path, b"{\"commitInfo\":{}}\n", true).unwrap();
        let again = durable_commit(&path, b"{\"other\":{}}\n", true);
        assert!(
            matches!(again, Err(ObjectStoreError::AlreadyExists { .. })),
            "{again:?}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"commitInfo\":{}}\n");
        durable_commit(&path, b"{\"replaced\":{}}\n", false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"replaced\":{}}\n");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("_delta_log"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}

//! What a failed job leaves behind: the data files it wrote that no commit names.
//!
//! A job writes Parquet before it commits; if it fails in between (a full disk, a lost race),
//! those files are in the table's folder but in no version of it. Readers never see them, but
//! they take space until a vacuum. Deleting files by age, or because the log does not name
//! them, would also delete a concurrent writer's files that its commit is about to name. So a
//! job records exactly what it writes: [`scoped`] runs it with a recorder, the tables it opens
//! get a store (`Recording`) that notes every data file it puts, and when the job fails, the
//! noted files that no commit after the version the job opened names are deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use deltalake::logstore::LogStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::logstore::object_store::path::Path;
use deltalake::{DeltaResult, DeltaTableBuilder, DeltaTableError, ObjectStoreError};

use super::TableId;

tokio::task_local! {
    static JOB: Arc<Job>;
}

/// What a job cleaned up after failing: one line per table, and what it could not do.
#[derive(Debug, Default)]
pub struct Cleanup {
    /// `table: deleted N uncommitted data files`, for `-v`.
    pub deleted: Vec<String>,
    /// Files that may be uncommitted but were left, and why: a user should know.
    pub problems: Vec<String>,
}

/// Run `job`, recording the data files it writes to the tables it opens; if it fails, delete
/// those that no commit names. Returns the job's result untouched.
pub async fn scoped<T, E>(job: impl Future<Output = Result<T, E>>) -> (Result<T, E>, Cleanup) {
    let recorder = Arc::new(Job::default());
    let result = JOB.scope(Arc::clone(&recorder), job).await;
    let cleanup = match &result {
        Ok(_) => Cleanup::default(),
        Err(_) => recorder.delete_uncommitted().await,
    };
    (result, cleanup)
}

/// Note the version a job opened a table at. The first time, before the job wrote to it: a
/// commit naming a file the job writes comes after that version.
pub(crate) fn opened(id: &TableId, version: Option<u64>) {
    if let (Ok(job), Some(version)) = (JOB.try_with(Arc::clone), version) {
        let table = job.table(id);
        let mut table = lock(&table);
        if table.since.is_none() && table.files.is_empty() {
            table.since = Some(version);
        }
    }
}

/// Every table a job opened, by location.
#[derive(Default)]
struct Job {
    tables: Mutex<BTreeMap<String, Arc<Mutex<Written>>>>,
}

/// What a job wrote to one table.
pub(super) struct Written {
    id: TableId,
    /// The version the job first opened the table at, before writing to it (None: it wrote
    /// before opening a version, e.g. it created the table: every commit counts).
    since: Option<u64>,
    /// Data files, relative to the table's folder.
    files: BTreeSet<Path>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data is a set of names: still meaningful if a holder panicked.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Job {
    fn table(&self, id: &TableId) -> Arc<Mutex<Written>> {
        let mut tables = lock(&self.tables);
        let entry = tables.entry(id.url.to_string()).or_insert_with(|| {
            Arc::new(Mutex::new(Written {
                id: id.clone(),
                since: None,
                files: BTreeSet::new(),
            }))
        });
        Arc::clone(entry)
    }

    async fn delete_uncommitted(&self) -> Cleanup {
        let tables: Vec<(TableId, Option<u64>, BTreeSet<Path>)> = lock(&self.tables)
            .values()
            .map(|t| {
                let t = lock(t);
                (t.id.clone(), t.since, t.files.clone())
            })
            .collect();
        let mut cleanup = Cleanup::default();
        for (id, since, files) in tables {
            if files.is_empty() {
                continue;
            }
            match delete_unnamed(&id, since, &files).await {
                Ok(0) => {}
                Ok(n) => cleanup.deleted.push(format!(
                    "table {}: deleted {n} data files this run wrote and did not commit",
                    id.name
                )),
                Err(e) => cleanup.problems.push(format!(
                    "table {}: this run wrote {} data files it may not have committed; they are \
                     left in place (no reader sees a file no commit names): {e}",
                    id.name,
                    files.len()
                )),
            }
        }
        cleanup
    }
}

/// Delete the `files` of a table that no commit after `since` names; returns how many.
async fn delete_unnamed(
    id: &TableId,
    since: Option<u64>,
    files: &BTreeSet<Path>,
) -> Result<usize, String> {
    let log_store = DeltaTableBuilder::from_url(id.url.clone())
        .and_then(|b| b.build_storage())
        .map_err(|e| e.to_string())?;
    let named = named_files(&log_store, since)
        .await
        .map_err(|e| format!("cannot read the log: {e}"))?;
    let store = log_store.object_store(None);
    let mut deleted = 0;
    for file in files.difference(&named) {
        match store.delete(file).await {
            Ok(()) => deleted += 1,
            Err(ObjectStoreError::NotFound { .. }) => {}
            Err(e) => return Err(format!("cannot delete {file}: {e}")),
        }
    }
    Ok(deleted)
}

/// The data files named by the commits after `since` (every commit if None), relative to the
/// table's folder. A table without a log names none.
async fn named_files(log_store: &LogStoreRef, since: Option<u64>) -> DeltaResult<BTreeSet<Path>> {
    let mut named = BTreeSet::new();
    if !log_store.is_delta_table_location().await? {
        return Ok(named);
    }
    let latest = log_store.get_latest_version(since.unwrap_or(0)).await?;
    let first = since.map_or(0, |v| v + 1);
    for version in first..=latest {
        // An old commit that expired cannot name a file this run wrote.
        let Some(commit) = super::log::read_raw(log_store.as_ref(), version).await? else {
            continue;
        };
        let paths = commit.adds.iter().map(|a| &a.path);
        let paths = paths
            .chain(commit.removes.iter().map(|r| &r.path))
            .chain(&commit.cdc_files);
        for path in paths {
            // Paths in the log are relative URLs, percent-encoded; absolute ones are not ours.
            // One that cannot be read stops the clean-up: it might be one of ours.
            if !path.contains("://") {
                let path =
                    Path::from_url_path(path).map_err(|e| DeltaTableError::GenericError {
                        source: Box::new(e),
                    })?;
                named.insert(path);
            }
        }
    }
    Ok(named)
}

/// The recorder of what the running job (inside [`scoped`]) writes to a table, if any.
pub(super) fn recorder(id: &TableId) -> Option<Arc<Mutex<Written>>> {
    JOB.try_with(|job| job.table(id)).ok()
}

/// Note data files (relative to the table's folder) the running job wrote to a table through
/// a store of its own (a writer built from the table's location), not the table's.
pub(crate) fn note_written(id: &TableId, relative: &[String]) {
    let Some(written) = recorder(id) else {
        return;
    };
    for file in relative {
        if let Ok(path) = Path::from_url_path(file) {
            note(&written, path);
        }
    }
}

/// Note a data file (relative to its table's folder) the job writes.
pub(super) fn note(written: &Mutex<Written>, relative: Path) {
    lock(written).files.insert(relative);
}

impl fmt::Debug for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} files written)", self.id.name, self.files.len())
    }
}

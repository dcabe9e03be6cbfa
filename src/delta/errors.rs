//! What a user can act on in deltalake's errors: a race lost to another writer (exit 3, with
//! the winner named), a data file gone from the table's folder (named, not a debug dump).

use deltalake::{DeltaTableBuilder, DeltaTableError};
use url::Url;

use super::TableId;
use crate::error::{Error, Winner};

impl TableId {
    /// Wrap a Delta error with this table and what was being done. A commit that lost its
    /// version to another writer becomes [`Error::LostRace`], a data file the log names but
    /// the folder lacks [`Error::FileMissing`].
    pub fn err(&self, action: &'static str) -> impl FnOnce(DeltaTableError) -> Error + '_ {
        move |source| {
            if is_lost_race(&source) {
                return self.lost_race();
            }
            if let Some(missing) = self.file_missing(&source) {
                return missing;
            }
            Error::Delta {
                table: self.name.clone(),
                location: self.url.to_string(),
                action,
                source: Box::new(source),
            }
        }
    }

    /// Wrap a DataFusion error with this table and what was being done.
    pub fn query_err(
        &self,
        action: &'static str,
    ) -> impl FnOnce(deltalake::datafusion::error::DataFusionError) -> Error + '_ {
        move |source| {
            if let Some(missing) = self.file_missing(&source) {
                return missing;
            }
            Error::Query {
                table: self.name.clone(),
                action,
                source: Box::new(source),
            }
        }
    }

    /// The error for a table that has not been written yet.
    pub fn not_found(&self, hint: &str) -> Error {
        Error::TableNotFound {
            name: self.name.clone(),
            location: self.url.to_string(),
            hint: hint.to_string(),
        }
    }
}

/// Whether a Delta error says another writer committed the version this commit needed: an
/// existing version, a conflict with a commit made meanwhile, or no retry left.
fn is_lost_race(e: &DeltaTableError) -> bool {
    use deltalake::kernel::transaction::{CommitConflictError as Conflict, TransactionError};
    match e {
        DeltaTableError::VersionAlreadyExists(_) => true,
        DeltaTableError::Transaction { source } => match source {
            TransactionError::VersionAlreadyExists(_) | TransactionError::MaxCommitAttempts(_) => {
                true
            }
            TransactionError::CommitConflict(conflict) => matches!(
                conflict,
                Conflict::ConcurrentAppend
                    | Conflict::ConcurrentDeleteRead
                    | Conflict::ConcurrentDeleteDelete
                    | Conflict::MetadataChanged
                    | Conflict::ConcurrentTransaction
                    | Conflict::ProtocolChanged(_)
            ),
            _ => false,
        },
        _ => false,
    }
}

impl TableId {
    pub(super) fn lost_race(&self) -> Error {
        Error::LostRace {
            table: self.name.clone(),
            location: self.url.to_string(),
            winner: None,
        }
    }

    /// [`Error::FileMissing`] if `e` (or a cause of it) is a data file that is not found.
    fn file_missing(&self, e: &(dyn std::error::Error + 'static)) -> Option<Error> {
        let path = missing_path(e)?;
        // A commit file missing is another story (a log read while it changed).
        (!path.contains("_delta_log")).then(|| Error::FileMissing {
            table: self.name.clone(),
            path,
        })
    }
}

/// The path of the object an error (or a cause of it) did not find. Parquet's reader keeps
/// object_store's error only as text ("Object at location P not found: ..."): read it there too.
fn missing_path(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if let Some(deltalake::ObjectStoreError::NotFound { path, .. }) = e.downcast_ref() {
            return Some(path.clone());
        }
        let text = e.to_string();
        if let Some((_, rest)) = text.split_once("Object at location ")
            && let Some((path, _)) = rest.split_once(" not found")
        {
            return Some(path.to_string());
        }
        cause = e.source();
    }
    None
}

/// Name the winner of a race this run lost: the job that writes the table (or `restore`,
/// `optimize`, `vacuum`) and
/// the latest version, read from the table's log. Any other error is returned as it is.
pub async fn name_the_winner(error: Error) -> Error {
    match error {
        Error::LostRace {
            table,
            location,
            winner: None,
        } => {
            let winner = winner(&table, &location).await;
            Error::LostRace {
                table,
                location,
                winner,
            }
        }
        other => other,
    }
}

async fn winner(table: &str, location: &str) -> Option<Winner> {
    let url = Url::parse(location).ok()?;
    let log_store = DeltaTableBuilder::from_url(url)
        .ok()?
        .build_storage()
        .ok()?;
    let version = log_store.get_latest_version(0).await.ok()?;
    let commit = super::log::read_raw(log_store.as_ref(), version)
        .await
        .ok()??;
    let operation = commit.operation().map(str::to_string);
    let job = match operation.as_deref() {
        Some("RESTORE") => "restore",
        Some("OPTIMIZE") => "optimize",
        Some("VACUUM START" | "VACUUM END") => "vacuum",
        _ => crate::catalog::find(table)?.writer,
    };
    Some(Winner {
        job: job.to_string(),
        version,
    })
}

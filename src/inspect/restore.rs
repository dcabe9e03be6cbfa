//! `medallion restore <table> --version N`: put a past version back, as a new commit (Delta's
//! RESTORE), so history keeps both what was and the restore itself.
//!
//! Layers downstream record which version of their upstream they consumed and read only later
//! commits. Restoring a table below a version a consumer has already read does not reach that
//! consumer: it keeps what it built from the versions taken back. So such a restore is refused
//! with an explanation, unless `--force`.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::output::Report;
use crate::warehouse::{Warehouse, tables};

#[derive(Debug, Clone, Copy)]
pub struct RestoreOptions {
    pub version: u64,
    /// Restore even if downstream tables have consumed later versions.
    pub force: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub table: String,
    pub restored_version: u64,
    pub version_before: u64,
    pub version_after: u64,
    pub files_removed: usize,
    pub files_restored: usize,
    /// Downstream tables that had consumed a later version (restored anyway with `--force`).
    pub stale_consumers: Vec<String>,
}

impl Report for RestoreReport {
    fn summary(&self) -> String {
        let mut line = format!(
            "restore: {} v{} restored as v{} (was v{}): {} files removed, {} restored",
            self.table,
            self.restored_version,
            self.version_after,
            self.version_before,
            self.files_removed,
            self.files_restored
        );
        if !self.stale_consumers.is_empty() {
            line.push_str(&format!(
                "; now stale: {} (rebuild them)",
                self.stale_consumers.join(", ")
            ));
        }
        line
    }
}

pub async fn run(
    warehouse: &Warehouse,
    name: &str,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    let (id, table) = super::open_table(warehouse, name).await?;
    let latest = super::latest_version(&id, &table)?;
    let version = options.version;
    super::check_version(&id, &table, version)?;
    if version == latest {
        return Err(Error::Refused {
            table: name.to_string(),
            message: format!("v{version} is its latest version: there is nothing to restore"),
        });
    }

    let ahead: Vec<_> = super::consumers(warehouse, name)
        .await?
        .into_iter()
        .filter(|(_, txn)| txn.version > version as i64)
        .collect();
    if !ahead.is_empty() && !options.force {
        let mut message = format!(
            "restoring v{version} would take back what {} changed, but downstream tables have \
             already consumed it:",
            span(version + 1, latest)
        );
        for (consumer, txn) in &ahead {
            message.push_str(&format!(
                "\n  - {consumer} consumed {name} up to v{} (txn {}): it keeps the rows it built \
                 from {}, and its next refresh reads only {name}'s commits after v{}, so it \
                 would no longer match {name} until it is rebuilt",
                txn.version,
                txn.app_id,
                span(version + 1, txn.version as u64),
                txn.version
            ));
        }
        if name == tables::BRONZE {
            message.push_str(
                "\n  - the bronze stream's checkpoint records the source files of those batches \
                 as done: it will not read them again",
            );
        }
        message.push_str("\nRun again with --force to restore anyway.");
        return Err(Error::Refused {
            table: name.to_string(),
            message,
        });
    }

    let (restored, metrics) = table
        .restore()
        .with_version_to_restore(version)
        .await
        .map_err(id.err("restore"))?;
    Ok(RestoreReport {
        table: name.to_string(),
        restored_version: version,
        version_before: latest,
        version_after: super::latest_version(&id, &restored)?,
        files_removed: metrics.num_removed_file,
        files_restored: metrics.num_restored_file,
        stale_consumers: ahead.into_iter().map(|(consumer, _)| consumer).collect(),
    })
}

/// `v3` or `v3..v5`.
fn span(from: u64, to: u64) -> String {
    if from >= to {
        format!("v{to}")
    } else {
        format!("v{from}..v{to}")
    }
}

//! `medallion restore <table> --version N`: put a past version back, as a new commit (Delta's
//! RESTORE), so history keeps both what was and the restore itself.
//!
//! A table that consumes another (silver, gold, daily, the quarantines) records the upstream
//! versions it has consumed as application transactions (`<table><-<upstream>`), and its next
//! refresh reads only what came after them. Its rows and those positions go together: the
//! restore commit carries, as `txn` actions, the positions the table had at the restored
//! version (a reader takes the latest `txn` of each app id, so a lower version takes the
//! position back), so rows and positions change in one atomic commit and the next refresh reads
//! again what the restore took back. A position cannot be taken back to "nothing": restoring a
//! version that had not consumed an upstream the table consumes now is refused.
//!
//! Layers downstream record which version of their upstream they consumed and read only later
//! commits. Restoring a table below a version a consumer has already read does not reach that
//! consumer: it keeps what it built from the versions taken back. So such a restore is refused
//! with an explanation, unless `--force`.

use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use serde::Serialize;

use crate::catalog;
use crate::delta;
use crate::error::{Error, Result};
use crate::output::Report;
use crate::warehouse::Warehouse;

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
    /// The upstream positions the restore took back with the rows (the table's own `txn`s).
    pub positions: Vec<Position>,
}

/// One consumed position a restore put back: the app id's version before and after.
#[derive(Debug, Clone, Serialize)]
pub struct Position {
    pub app_id: String,
    pub upstream: String,
    pub version_before: i64,
    pub version_after: i64,
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
        let moved: Vec<String> = self
            .positions
            .iter()
            .filter(|p| p.version_before != p.version_after)
            .map(|p| {
                format!(
                    "{} v{} (was v{})",
                    p.upstream, p.version_after, p.version_before
                )
            })
            .collect();
        if !moved.is_empty() {
            line.push_str(&format!(
                "; consumed positions taken back: {}",
                moved.join(", ")
            ));
        }
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
        if name == catalog::BRONZE.name {
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

    let positions = positions_at(warehouse, name, &id, &table, version).await?;
    let txns = positions
        .iter()
        .map(|p| Transaction::new(&p.app_id, p.version_after))
        .collect();
    let (restored, metrics) = table
        .restore()
        .with_version_to_restore(version)
        // No retry: deltalake would not see a compaction's removes (`delta::rewrite`).
        .with_commit_properties(
            CommitProperties::default()
                .with_application_transactions(txns)
                .with_max_retries(crate::delta::rewrite::NO_RETRY),
        )
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
        positions,
    })
}

/// The upstream positions the table consumes now, each with the version it had at `version`.
/// Only consumer app ids (`<table><-<upstream>`): the bronze stream's batch id stays, since its
/// checkpoint, not the table, says which source files are done.
async fn positions_at(
    warehouse: &Warehouse,
    name: &str,
    id: &delta::TableId,
    table: &deltalake::DeltaTable,
    version: u64,
) -> Result<Vec<Position>> {
    let past = delta::open_version(id, version).await?;
    let then = super::app_transactions(warehouse, id, &past).await?;
    let mut positions = Vec::new();
    for now in super::app_transactions(warehouse, id, table).await? {
        // A side table's position (silver's waiting rows) as of `version` goes back with it
        // when it had one; a version before the first keeps the latest set: the rows it holds
        // are read again from bronze too, and silver keeps one delivery of each.
        if let Some(side) = catalog::parse_app_id(&now.app_id).filter(|c| !c.upstream) {
            if let Some(before) = then.iter().find(|t| t.app_id == now.app_id) {
                positions.push(Position {
                    app_id: now.app_id.clone(),
                    upstream: side.table.to_string(),
                    version_before: now.version,
                    version_after: before.version,
                });
            }
            continue;
        }
        let Some(upstream) = now.upstream else {
            continue;
        };
        let Some(before) = then.iter().find(|t| t.app_id == now.app_id) else {
            return Err(Error::Refused {
                table: name.to_string(),
                message: format!(
                    "v{version} had consumed nothing of {upstream} (no txn {}), and v{} has: a                      restore takes a consumed position back, it cannot remove one. Restore a                      later version, or remove the table's folder and rerun the pipeline to                      rebuild it",
                    now.app_id, now.version
                ),
            });
        };
        positions.push(Position {
            app_id: now.app_id,
            upstream,
            version_before: now.version,
            version_after: before.version,
        });
    }
    Ok(positions)
}

/// `v3` or `v3..v5`.
fn span(from: u64, to: u64) -> String {
    if from >= to {
        format!("v{to}")
    } else {
        format!("v{from}..v{to}")
    }
}

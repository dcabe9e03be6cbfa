//! Keeping tables cheap to read however long their streams run: compaction ([`optimize`]),
//! deleting files no retained version needs ([`vacuum`]), and the log's checkpoint and expired
//! commits; [`run`] (`medallion maintain`) does all three on every table with the defaults, a
//! one-liner for cron.

pub mod optimize;
mod splice;
pub mod vacuum;

use serde::Serialize;

use crate::delta::{self, TableId};
use crate::error::Result;
use crate::output::Report;
use crate::warehouse::Warehouse;

/// What `maintain` did to one table.
#[derive(Debug, Clone, Serialize)]
pub struct Maintained {
    pub optimize: optimize::OptimizeReport,
    pub vacuum: vacuum::VacuumReport,
    /// The version the checkpoint was written at.
    pub checkpoint_version: u64,
    /// Commit files older than the log retention that the checkpoint made unneeded, deleted.
    pub expired_log_files: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct MaintainReport {
    pub tables: Vec<Maintained>,
    /// Tables that could not be maintained, with the error; the others were.
    pub failed: Vec<Failed>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    pub table: String,
    pub error: String,
}

impl Report for MaintainReport {
    fn summary(&self) -> String {
        let mut lines = Vec::new();
        for t in &self.tables {
            lines.push(t.optimize.summary());
            lines.push(t.vacuum.summary());
            lines.push(format!(
                "checkpoint: {} v{}; {} expired log files deleted",
                t.optimize.table, t.checkpoint_version, t.expired_log_files
            ));
        }
        for f in &self.failed {
            lines.push(format!("maintain: {} failed: {}", f.table, f.error));
        }
        if lines.is_empty() {
            lines.push("maintain: the warehouse has no tables yet".into());
        }
        lines.join("\n")
    }
}

/// Optimize, vacuum and checkpoint every table of the warehouse, with the defaults. A table
/// that fails is named in the report with its error, and the others are still maintained (a
/// cron job should not leave every table after one it could not touch).
pub async fn run(warehouse: &Warehouse) -> Result<MaintainReport> {
    let mut report = MaintainReport {
        tables: Vec::new(),
        failed: Vec::new(),
    };
    for name in crate::inspect::table_names(warehouse).await? {
        match maintain_one(warehouse, &name).await {
            Ok(done) => report.tables.push(done),
            Err(e) => report.failed.push(Failed {
                table: name,
                error: e.chain(),
            }),
        }
    }
    Ok(report)
}

async fn maintain_one(warehouse: &Warehouse, name: &str) -> Result<Maintained> {
    let (id, table) = crate::inspect::open_table(warehouse, name).await?;
    let optimize = optimize::run(&id, table, &optimize::OptimizeOptions::default()).await?;
    let table = reopen(&id).await?;
    let vacuum = vacuum::run(&id, table, &vacuum::VacuumOptions::default()).await?;
    let table = reopen(&id).await?;
    let version = table.version().unwrap_or(0);
    let expired = delta::append::checkpoint(id.clone(), version).await?;
    Ok(Maintained {
        optimize,
        vacuum,
        checkpoint_version: version,
        expired_log_files: expired,
    })
}

async fn reopen(id: &TableId) -> Result<deltalake::DeltaTable> {
    delta::open(id)
        .await?
        .ok_or_else(|| id.not_found(" (it was there a moment ago)"))
}

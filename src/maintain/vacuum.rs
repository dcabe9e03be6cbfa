//! `medallion vacuum TABLE`: delete the data files no version within the retention needs, and
//! the orphans (Parquet of batches or jobs that never committed) older than the retention.
//!
//! A file is needed by every version from the one that added it to the one before the commit
//! that removed it, so a file removed less than the retention ago may still be read by time
//! travel to a version within the retention (the version in effect at "now - retention"
//! included): it stays. A file no version names is an orphan; one younger than the retention
//! may be a running writer's batch not committed yet (a bronze stream writes Parquet ahead of
//! its commits), so it stays too. `_delta_log`, `_checkpoint` and every other `_`/`.` name are
//! never touched. deltalake's VACUUM in full mode does exactly this listing; this module adds
//! the retention rule (under Delta's default of 7 days only with `--force`, saying which time
//! travel it breaks), the sizes and reasons of a dry run, and the report.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use deltalake::DeltaTable;
use deltalake::operations::vacuum::VacuumMode;
use futures::TryStreamExt;
use serde::Serialize;

use super::optimize::human_bytes;
use crate::delta::TableId;
use crate::error::{Error, Result};
use crate::output::Report;

/// Delta's default `delta.deletedFileRetentionDuration`: the shortest retention without
/// `--force`.
pub const MIN_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct VacuumOptions {
    pub retain: Duration,
    /// List what would be deleted, delete nothing.
    pub dry_run: bool,
    /// Accept a retention under [`MIN_RETENTION`].
    pub force: bool,
}

impl Default for VacuumOptions {
    fn default() -> Self {
        Self {
            retain: MIN_RETENTION,
            dry_run: false,
            force: false,
        }
    }
}

/// One file vacuum deletes (or would).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Doomed {
    pub path: String,
    pub bytes: u64,
    /// `removed` (a version older than the retention removed it) or `orphan` (no version of
    /// the log names it: a batch or job that never committed).
    pub reason: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct VacuumReport {
    pub table: String,
    pub dry_run: bool,
    pub retain_hours: f64,
    pub files: Vec<Doomed>,
    pub bytes: u64,
    pub millis: u64,
}

impl Report for VacuumReport {
    fn summary(&self) -> String {
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        let (removed, orphans) = self
            .files
            .iter()
            .partition::<Vec<&Doomed>, _>(|f| f.reason == "removed");
        let mut text = format!(
            "vacuum: {} (retain {}h): {verb} {} files ({}): {} removed by versions older than \
             the retention, {} orphans",
            self.table,
            self.retain_hours,
            self.files.len(),
            human_bytes(self.bytes as i64),
            removed.len(),
            orphans.len()
        );
        if self.dry_run {
            for file in &self.files {
                text.push_str(&format!(
                    "\n  {:>10}  {:<8} {}",
                    human_bytes(file.bytes as i64),
                    file.reason,
                    file.path
                ));
            }
        }
        text
    }
}

/// Refuse a retention under Delta's default unless forced, naming what it would break.
pub fn check_retention(table: &str, options: &VacuumOptions) -> Result<()> {
    if options.retain >= MIN_RETENTION || options.force {
        return Ok(());
    }
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(options.retain).unwrap_or(chrono::Duration::zero());
    Err(Error::Refused {
        table: table.to_string(),
        message: format!(
            "a retention of {} is under Delta's 7 days (168h): it would delete files that \
             versions committed before {} need, so time travel to them (`show --version`, \
             `show --as-of`, `diff --from`, `restore`) would fail, and a running writer's \
             files not committed yet (a bronze stream's next batch) younger than 7 days could \
             go too; pass --force to accept that",
            humantime::format_duration(options.retain),
            cutoff.format("%Y-%m-%dT%H:%M:%SZ")
        ),
    })
}

/// The decision, from deltalake's list of deletable paths: each with its size (from a listing
/// of the table's folder) and why it goes (a tombstone names it, or nothing does).
pub fn plan(
    deletable: &[String],
    sizes: &HashMap<String, u64>,
    tombstones: &HashSet<String>,
) -> Vec<Doomed> {
    let mut files: Vec<Doomed> = deletable
        .iter()
        .map(|path| Doomed {
            path: path.clone(),
            bytes: sizes.get(path).copied().unwrap_or(0),
            reason: if tombstones.contains(path) {
                "removed"
            } else {
                "orphan"
            },
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// The listing vacuum deletes from follows symbolic links: a link in a table's folder to a
/// folder or file elsewhere would have files outside the table deleted. Refuse, naming it.
fn refuse_links(table: &str, dir: &std::path::Path) -> Result<()> {
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder).map_err(Error::io("list", &folder))?;
        for entry in entries {
            let entry = entry.map_err(Error::io("list", &folder))?;
            let path = entry.path();
            // `_delta_log`, `_checkpoint` and hidden names are never vacuumed.
            if entry.file_name().to_string_lossy().starts_with(['_', '.']) {
                continue;
            }
            let kind = entry.file_type().map_err(Error::io("read", &path))?;
            if kind.is_symlink() {
                let target = std::fs::read_link(&path)
                    .map_or_else(|_| "?".to_string(), |t| t.display().to_string());
                return Err(Error::Refused {
                    table: table.to_string(),
                    message: format!(
                        "its folder holds a symbolic link, {} -> {target}: vacuum lists through \
                         links, so it could delete files outside the table; nothing was \
                         deleted. Remove the link (or replace it by what it points to) and run \
                         vacuum again",
                        path.display()
                    ),
                });
            }
            if kind.is_dir() {
                folders.push(path);
            }
        }
    }
    Ok(())
}

/// Vacuum one table.
pub async fn run(id: &TableId, table: DeltaTable, options: &VacuumOptions) -> Result<VacuumReport> {
    let started = Instant::now();
    check_retention(&id.name, options)?;
    if let Some(dir) = id
        .url
        .to_file_path()
        .ok()
        .filter(|_| id.url.scheme() == "file")
    {
        refuse_links(&id.name, &dir)?;
    }
    let retain = chrono::Duration::from_std(options.retain)
        .map_err(|_| Error::Usage("--retain is too long".into()))?;
    let log_store = table.log_store();
    let tombstones: HashSet<String> = table
        .snapshot()
        .map_err(id.err("read"))?
        .all_tombstones(log_store.as_ref())
        .map_ok(|t| t.path().to_string())
        .try_collect()
        .await
        .map_err(id.err("read the removed files"))?;
    // Sizes first: a real run deletes what it lists.
    let sizes: HashMap<String, u64> = log_store
        .object_store(None)
        .list(None)
        .map_ok(|meta| (meta.location.to_string(), meta.size))
        .try_collect()
        .await
        .map_err(|e| id.err("list the table's files")(e.into()))?;
    // What would go, first: a tombstone whose file is gone already (an earlier vacuum) is
    // not a deletion, and with nothing on disk to delete no VACUUM commits are written.
    let vacuum = |dry_run: bool| {
        table
            .clone()
            .vacuum()
            .with_mode(VacuumMode::Full)
            .with_retention_period(retain)
            .with_enforce_retention_duration(false)
            .with_dry_run(dry_run)
    };
    let (_, would) = vacuum(true).await.map_err(id.err("vacuum"))?;
    let on_disk = |paths: Vec<String>| -> Vec<String> {
        paths
            .into_iter()
            .filter(|p| sizes.contains_key(p))
            .collect()
    };
    let mut deleted = on_disk(would.files_deleted);
    if !options.dry_run && !deleted.is_empty() {
        let (_, done) = vacuum(false).await.map_err(id.err("vacuum"))?;
        deleted = on_disk(done.files_deleted);
    }
    let files = plan(&deleted, &sizes, &tombstones);
    Ok(VacuumReport {
        table: id.name.clone(),
        dry_run: options.dry_run,
        retain_hours: options.retain.as_secs_f64() / 3600.0,
        bytes: files.iter().map(|f| f.bytes).sum(),
        files,
        millis: started.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_under_seven_days_needs_force() {
        let hour = Duration::from_secs(3600);
        let cases = [
            (168 * hour, false, true),
            (200 * hour, false, true),
            (167 * hour, false, false),
            (Duration::ZERO, false, false),
            (Duration::ZERO, true, true),
        ];
        for (retain, force, allowed) in cases {
            let options = VacuumOptions {
                retain,
                dry_run: false,
                force,
            };
            let result = check_retention("t", &options);
            assert_eq!(result.is_ok(), allowed, "{retain:?} force={force}");
            if let Err(e) = result {
                let text = e.to_string();
                assert!(
                    text.contains("time travel") && text.contains("--force"),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn the_plan_says_why_each_file_goes_and_its_size() {
        let deletable = vec!["b.parquet".to_string(), "a.parquet".to_string()];
        let sizes = HashMap::from([("a.parquet".to_string(), 10), ("b.parquet".to_string(), 20)]);
        let tombstones = HashSet::from(["b.parquet".to_string()]);
        assert_eq!(
            plan(&deletable, &sizes, &tombstones),
            vec![
                Doomed {
                    path: "a.parquet".into(),
                    bytes: 10,
                    reason: "orphan"
                },
                Doomed {
                    path: "b.parquet".into(),
                    bytes: 20,
                    reason: "removed"
                },
            ]
        );
    }
}

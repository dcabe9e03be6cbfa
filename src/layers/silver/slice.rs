//! Which of bronze's new rows a refresh reads: the data files bronze's commits after silver's
//! position added (bronze is append-only, so its log lists exactly the new rows), up to about
//! `--max-rows-per-commit` rows, ending on a commit. The decision is made from the log alone
//! ([`Slicer`]); only then are the slice's files read.

use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;
use deltalake::kernel::Add;

use crate::delta::TableId;
use crate::delta::files::{self, Read};
use crate::delta::log::{self, Commit, add_rows};
use crate::error::{Error, Result};

/// One slice of bronze: its last version and its data files, those of bronze versions the
/// quarantine already covers (`seen`: typed again, never refused again) apart from the rest.
#[derive(Debug, Default)]
pub(super) struct Slice {
    pub to: u64,
    pub seen: Vec<Add>,
    pub new: Vec<Add>,
}

/// Builds a slice from bronze's commits, oldest first.
#[derive(Debug)]
pub(super) struct Slicer {
    max_rows: u64,
    rows: u64,
    adds: Vec<(u64, Add)>,
}

impl Slicer {
    pub fn new(max_rows: u64) -> Self {
        Self {
            max_rows,
            rows: 0,
            adds: Vec::new(),
        }
    }

    /// Take a commit's new data files (a compaction's re-added files carry no new rows); true
    /// when the slice is full and ends on this commit.
    pub fn take(&mut self, commit: Commit) -> bool {
        let version = commit.version;
        for add in commit.into_data_adds() {
            self.rows += add_rows(&add);
            self.adds.push((version, add));
        }
        self.rows >= self.max_rows
    }

    /// The slice ending on version `to`; files of versions up to `refused_up_to` are `seen`.
    pub fn finish(self, to: u64, refused_up_to: Option<u64>) -> Slice {
        let (seen, new): (Vec<_>, Vec<_>) = self
            .adds
            .into_iter()
            .partition(|(version, _)| refused_up_to.is_some_and(|q| *version <= q));
        let strip = |v: Vec<(u64, Add)>| v.into_iter().map(|(_, add)| add).collect();
        Slice {
            to,
            seen: strip(seen),
            new: strip(new),
        }
    }
}

/// The next slice of bronze's versions `from..=to`, reading only its commits; `None` if the log
/// no longer holds one of them (expired).
pub(super) async fn next_slice(
    id: &TableId,
    bronze: &DeltaTable,
    (from, to): (u64, u64),
    max_rows: u64,
    refused_up_to: Option<u64>,
) -> Result<Option<Slice>> {
    let mut slicer = Slicer::new(max_rows);
    for version in from..=to {
        let Some(commit) = log::read_commit(id, bronze.log_store().as_ref(), version).await? else {
            return Ok(None);
        };
        if slicer.take(commit) {
            return Ok(Some(slicer.finish(version, refused_up_to)));
        }
    }
    Ok(Some(slicer.finish(to, refused_up_to)))
}

/// The bronze rows a silver at position `consumed` has not read yet, by the statistics of the
/// files bronze's later commits added (0 when its log no longer holds them).
pub(super) async fn rows_to_read(
    id: &TableId,
    bronze: &DeltaTable,
    consumed: Option<i64>,
) -> Result<u64> {
    let first = consumed.map_or(1, |v| v as u64 + 1);
    let latest = bronze.version().unwrap_or(0);
    if first > latest {
        return Ok(0);
    }
    Ok(
        match next_slice(id, bronze, (first, latest), u64::MAX, None).await? {
            Some(slice) => slice.new.iter().map(add_rows).sum(),
            None => 0,
        },
    )
}

/// The rows of some of bronze's data files, read from their Parquet (`delta::files`): a file
/// silver has not read yet may have been compacted away since (removed with `dataChange=false`),
/// so the current snapshot no longer lists it, but it stays in the folder until a vacuum
/// deletes it after the retention. One that is gone cannot be read incrementally.
pub(super) async fn read_files(
    id: &TableId,
    table: &DeltaTable,
    adds: Vec<Add>,
) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for (add, read) in files::read(id, table, adds).await? {
        match read {
            Read::Rows(rows) => batches.extend(rows),
            // Still in the table: deleted by hand.
            Read::Gone if lists(table, &add.path) => {
                return Err(Error::FileMissing {
                    table: id.name.clone(),
                    path: id
                        .url
                        .join(&add.path)
                        .ok()
                        .and_then(|u| u.to_file_path().ok())
                        .map_or(add.path.clone(), |p| p.display().to_string()),
                });
            }
            Read::Gone => {
                return Err(Error::Refused {
                    table: id.name.clone(),
                    message: format!(
                        "data file {} holds rows silver has not read yet, but it is gone (a \
                         compaction removed it and a vacuum deleted it): silver cannot read \
                         bronze incrementally from there; run `medallion silver \
                         --full-refresh` to rebuild silver from bronze as it is now",
                        add.path
                    ),
                });
            }
        }
    }
    Ok(batches)
}

/// Whether the table's current version names the data file `path`.
fn lists(table: &DeltaTable, path: &str) -> bool {
    table
        .snapshot()
        .is_ok_and(|s| s.log_data().iter().any(|f| f.path() == path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(version: u64, files: &[(u64, bool)]) -> Commit {
        Commit {
            version,
            adds: files
                .iter()
                .enumerate()
                .map(|(i, (rows, data_change))| Add {
                    path: format!("v{version}-{i}.parquet"),
                    data_change: *data_change,
                    stats: Some(format!("{{\"numRecords\":{rows}}}")),
                    ..Add::default()
                })
                .collect(),
            ..Commit::default()
        }
    }

    /// (commits: version -> files as (rows, dataChange), max rows, quarantine position)
    /// -> (slice's last version, seen files, new files).
    #[test]
    fn a_slice_ends_on_the_commit_that_fills_it_and_sets_covered_files_apart() {
        type Case = (
            &'static [(u64, &'static [(u64, bool)])],
            u64,
            Option<u64>,
            (u64, &'static [&'static str], &'static [&'static str]),
        );
        let cases: [Case; 6] = [
            // Everything fits.
            (
                &[(1, &[(10, true)]), (2, &[(10, true)])],
                100,
                None,
                (2, &[], &["v1-0", "v2-0"]),
            ),
            // The slice ends on the commit that reaches the bound, whole.
            (
                &[(1, &[(10, true), (10, true)]), (2, &[(10, true)])],
                15,
                None,
                (1, &[], &["v1-0", "v1-1"]),
            ),
            // Exactly the bound ends it too.
            (
                &[(1, &[(10, true)]), (2, &[(10, true)])],
                10,
                None,
                (1, &[], &["v1-0"]),
            ),
            // A compaction's files (dataChange=false) hold no new rows: not read, not counted.
            (
                &[(1, &[(10, false)]), (2, &[(10, true)])],
                10,
                None,
                (2, &[], &["v2-0"]),
            ),
            // Versions the quarantine covers are seen (typed, never refused again).
            (
                &[(1, &[(10, true)]), (2, &[(10, true)]), (3, &[(1, true)])],
                100,
                Some(2),
                (3, &["v1-0", "v2-0"], &["v3-0"]),
            ),
            // A commit with no files (a table property, a restore) only moves the position.
            (&[(1, &[]), (2, &[])], 10, None, (2, &[], &[])),
        ];
        for (commits, max_rows, refused, (to, seen, new)) in cases {
            let mut slicer = Slicer::new(max_rows);
            let mut end = commits.last().unwrap().0;
            for (version, files) in commits {
                if slicer.take(commit(*version, files)) {
                    end = *version;
                    break;
                }
            }
            let slice = slicer.finish(end, refused);
            let names = |adds: &[Add]| {
                adds.iter()
                    .map(|a| a.path.trim_end_matches(".parquet").to_string())
                    .collect::<Vec<_>>()
            };
            assert_eq!(slice.to, to, "{commits:?}");
            assert_eq!(names(&slice.seen), seen, "{commits:?}");
            assert_eq!(names(&slice.new), new, "{commits:?}");
        }
    }
}

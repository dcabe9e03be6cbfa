//! A stream's checkpoint kept small however long it runs. Every [`COMPACT_EVERY`] batches the
//! files its batches took are written as one state file (`_state/<N>`: each file's name, size,
//! time, batch, bronze version and clean-up), and the plans, done and cleaned markers of the
//! batches before the last [`RETAIN_BATCHES`] are deleted, as Spark's file-source log compacts
//! every 10 batches and keeps the last 100. `progress.jsonl` keeps the last
//! [`PROGRESS_KEPT`] records.
//!
//! With `--max-file-age`, the state forgets files older than the newest file taken minus the
//! age (Spark's `maxFileAge`): a file that old is not taken any more (with a warning), so it
//! need not be remembered, and the state is bounded by the files of one age window.
//!
//! [`plan`] decides what a compaction writes and deletes from what is there (a plain function,
//! tested table-driven); [`crate::stream::checkpoint::Checkpoint::compact`] does it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::source::discover::SourceFile;

/// A state file is written after every this many batches.
pub const COMPACT_EVERY: i64 = 100;
/// The plans and markers of this many batches before a state file are kept (to read by hand).
pub const RETAIN_BATCHES: i64 = 100;
/// Progress records kept in `progress.jsonl` (the newest).
pub const PROGRESS_KEPT: usize = 1000;

/// `_state/<batch_id>`: every file the batches up to `batch_id` took (less those forgotten
/// under `--max-file-age`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub batch_id: i64,
    pub files: Vec<FileState>,
    /// The newest modification time of a file the stream took, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_mtime_ms: Option<i64>,
    /// Files forgotten under `--max-file-age`, in all.
    #[serde(default)]
    pub forgotten: u64,
    /// Files modified before this (milliseconds) may have been taken and forgotten: a file that
    /// old is never taken again, whatever a later run's `--max-file-age`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgotten_before_ms: Option<i64>,
}

/// One file a batch took, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileState {
    #[serde(flatten)]
    pub file: SourceFile,
    pub batch_id: i64,
    /// When its batch was planned, milliseconds since the epoch.
    pub planned_at: i64,
    /// The bronze version that holds its batch; `None` while the batch is not done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_version: Option<u64>,
    /// What `--clean-source` did with it, if it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleaned: Option<CleanedFile>,
}

/// What clean-up did with one source file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanedFile {
    pub name: String,
    pub action: CleanAction,
    /// Where it went (archived), or why it stayed (kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CleanAction {
    Archived,
    Deleted,
    /// Left where it is (say why): an archive copy of that name with other bytes, or a file
    /// already gone.
    Kept,
}

impl CleanAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Archived => "archived",
            Self::Deleted => "deleted",
            Self::Kept => "kept",
        }
    }
}

/// What a compaction up to batch `up_to` writes and deletes.
#[derive(Debug, Clone, PartialEq)]
pub struct Compaction {
    /// The state file to write, `_state/<up_to>`.
    pub state: State,
    /// Batches whose plan and markers go.
    pub delete_batches: Vec<i64>,
    /// Older state files that go.
    pub delete_states: Vec<i64>,
}

/// Decide a compaction: the previous state and the files of the batches after it (up to
/// `up_to`) make the new state; files older than the newest taken minus `max_age` are
/// forgotten (the newest taken counts as `now_ms` at most: one file dated in the future does
/// not make every other file too old); the plans of batches more than [`RETAIN_BATCHES`]
/// before `up_to`, and every state before the new one, go. `None` when the newest state
/// already covers `up_to`.
pub fn plan(
    previous: Option<&State>,
    newer: &[FileState],
    up_to: i64,
    (planned, states): (&[i64], &[i64]),
    max_age: Option<Duration>,
    now_ms: i64,
) -> Option<Compaction> {
    if previous.is_some_and(|p| p.batch_id >= up_to) {
        return None;
    }
    let mut files: Vec<FileState> = previous.map(|p| p.files.clone()).unwrap_or_default();
    let covered = previous.map_or(i64::MIN, |p| p.batch_id);
    // A later plan of a name replaces an earlier one (as the stream's memory does).
    for file in newer
        .iter()
        .filter(|f| f.batch_id > covered && f.batch_id <= up_to)
    {
        files.retain(|f| f.file.name != file.file.name);
        files.push(file.clone());
    }
    let latest_mtime_ms = files
        .iter()
        .map(|f| f.file.mtime_ms)
        .chain(previous.and_then(|p| p.latest_mtime_ms))
        .max();
    let mut forgotten = previous.map_or(0, |p| p.forgotten);
    let mut forgotten_before_ms = previous.and_then(|p| p.forgotten_before_ms);
    if let (Some(age), Some(latest)) = (max_age, latest_mtime_ms) {
        let threshold = oldest_kept(latest.min(now_ms), age);
        let before = files.len();
        files.retain(|f| f.file.mtime_ms >= threshold);
        forgotten += (before - files.len()) as u64;
        forgotten_before_ms = forgotten_before_ms.max(Some(threshold));
    }
    files.sort_by_key(|f| f.batch_id);
    let keep_from = up_to.saturating_sub(RETAIN_BATCHES);
    Some(Compaction {
        state: State {
            batch_id: up_to,
            files,
            latest_mtime_ms,
            forgotten,
            forgotten_before_ms,
        },
        delete_batches: planned.iter().copied().filter(|b| *b < keep_from).collect(),
        delete_states: states.iter().copied().filter(|s| *s < up_to).collect(),
    })
}

/// The oldest modification time a stream still takes, given the newest it took: Spark's
/// `maxFileAge` threshold.
pub fn oldest_kept(latest_mtime_ms: i64, max_age: Duration) -> i64 {
    latest_mtime_ms.saturating_sub(i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, batch_id: i64, mtime_ms: i64) -> FileState {
        FileState {
            file: SourceFile {
                name: name.into(),
                size: 1,
                mtime_ms,
                e_tag: None,
            },
            batch_id,
            planned_at: 0,
            table_version: Some(batch_id as u64 + 1),
            cleaned: None,
        }
    }

    fn names(state: &State) -> Vec<&str> {
        state.files.iter().map(|f| f.file.name.as_str()).collect()
    }

    #[test]
    fn a_compaction_folds_new_plans_into_the_state_and_forgets_only_what_max_age_allows() {
        let day = Duration::from_secs(86_400);
        let ms_day = 86_400_000;
        let previous = State {
            batch_id: 99,
            files: vec![file("a", 3, 0), file("b", 50, 5 * ms_day)],
            latest_mtime_ms: Some(5 * ms_day),
            forgotten: 2,
            forgotten_before_ms: None,
        };
        let newer = [
            file("c", 100, 6 * ms_day),
            file("d", 150, 10 * ms_day),
            // Planned after `up_to`: not folded in yet.
            file("e", 201, 11 * ms_day),
        ];
        let planned: Vec<i64> = (0..=201).collect();
        let now = 30 * ms_day;
        // (previous, up to, max age, now) -> (files kept, forgotten, forgotten before, first
        // batch kept)
        type Case<'a> = (
            Option<&'a State>,
            i64,
            Option<Duration>,
            i64,
            &'a [&'a str],
            u64,
            Option<i64>,
            i64,
        );
        let cases: [Case; 5] = [
            (
                Some(&previous),
                200,
                None,
                now,
                &["a", "b", "c", "d"],
                2,
                None,
                100,
            ),
            // 7 days before the newest (day 10): day 3 on stays, day 0 goes.
            (
                Some(&previous),
                200,
                Some(7 * day),
                now,
                &["b", "c", "d"],
                3,
                Some(3 * ms_day),
                100,
            ),
            (None, 100, None, now, &["c"], 0, None, 0),
            (None, 200, Some(day), now, &["d"], 1, Some(9 * ms_day), 100),
            // The newest file (day 10) is dated after now (day 8): now counts as the newest.
            (
                None,
                200,
                Some(day),
                8 * ms_day,
                &["d"],
                1,
                Some(7 * ms_day),
                100,
            ),
        ];
        for (prev, up_to, age, now, kept, forgotten, before, first_kept) in cases {
            let got = plan(prev, &newer, up_to, (&planned, &[99, 0]), age, now).unwrap();
            assert_eq!(names(&got.state), kept, "{up_to} {age:?} {now}");
            assert_eq!(got.state.forgotten, forgotten, "{up_to} {age:?}");
            assert_eq!(got.state.forgotten_before_ms, before, "{up_to} {age:?}");
            assert_eq!(got.state.batch_id, up_to);
            assert_eq!(
                got.delete_batches,
                (0..first_kept).collect::<Vec<_>>(),
                "{up_to}"
            );
            assert_eq!(got.delete_states, vec![99, 0]);
        }
        // A state that covers the batch already: nothing to do.
        assert_eq!(
            plan(Some(&previous), &newer, 99, (&planned, &[99]), None, now),
            None
        );
        // A name planned again later replaces its first plan.
        let again = [file("a", 120, 7 * ms_day)];
        let got = plan(Some(&previous), &again, 200, (&planned, &[]), None, now).unwrap();
        assert_eq!(names(&got.state), ["b", "a"]);
        assert_eq!(got.state.files[1].batch_id, 120);
    }

    #[test]
    fn the_oldest_file_kept_saturates() {
        assert_eq!(oldest_kept(10_000, Duration::from_secs(3)), 7_000);
        assert_eq!(oldest_kept(i64::MIN + 1, Duration::from_secs(3)), i64::MIN);
        assert_eq!(oldest_kept(0, Duration::MAX), -i64::MAX);
    }
}

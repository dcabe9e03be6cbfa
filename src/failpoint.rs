//! Fault injection for the crash and race tests.
//!
//! - `MEDALLION_FAILPOINT=<name>` aborts the process at the named point, with no clean-up, as a
//!   `kill -9` or a power cut would.
//! - `MEDALLION_FAILPOINT=<name>:pause=<file>` holds the process at the named point until
//!   `<file>` exists (it says `failpoint <name>: paused until <file> exists` on stderr first), so
//!   a test can make another process act in between, e.g. commit the version this one is about
//!   to write, and then let it go on. Once the file exists the point is passed without a word.
//!
//! Every point is named in [`points`]; tests use those constants, so a misspelt point is a
//! compile error rather than a crash test that never crashes.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The points a job can be stopped (or held) at.
pub mod points {
    // The bronze stream, in the order a batch passes them.
    /// The batch's plan is written under its temporary name, not yet renamed into place.
    pub const PLAN_BEFORE_RENAME: &str = "bronze-plan-before-rename";
    /// The plan is in place; nothing of the batch is written yet.
    pub const AFTER_PLAN: &str = "bronze-after-plan";
    /// The batch's Parquet files are written; nothing is committed.
    pub const BEFORE_COMMIT: &str = "bronze-before-commit";
    /// The quarantine table has the batch's rejects; bronze does not have its rows yet.
    pub const BETWEEN_COMMITS: &str = "bronze-between-commits";
    /// The batch is committed to bronze; the checkpoint does not mark it done yet.
    pub const AFTER_COMMIT: &str = "bronze-after-commit";
    /// The batch is marked done; `--clean-source` has not touched its files yet.
    pub const AFTER_DONE: &str = "bronze-after-done";
    /// `--clean-source` moved (or deleted) some of the batch's files; the rest and its
    /// `_cleaned` marker are not done yet.
    pub const CLEAN_BETWEEN_FILES: &str = "bronze-clean-between-files";

    /// Listing the source folder: a file younger than the settle time was seen once; the
    /// second look, which takes it only if its size and time have not moved, is not taken yet.
    pub const BETWEEN_LOOKS: &str = "discover-between-looks";

    /// An [`AppendLog`](crate::delta::append::AppendLog) commit is built for the next version
    /// it knows of; its commit file is not written yet (bronze and its quarantine table).
    pub const APPEND_BEFORE_WRITE: &str = "append-before-write";

    // A silver refresh (one slice).
    /// The quarantine and waiting tables are written; silver itself is not.
    pub const SILVER_BEFORE_COMMIT: &str = "silver-before-commit";
    /// The slice's MERGEs are committed, its append (which records what was consumed) is not.
    pub const SILVER_BETWEEN_WRITES: &str = "silver-between-writes";
    /// Silver's commit is done.
    pub const SILVER_AFTER_COMMIT: &str = "silver-after-commit";

    // A gold refresh.
    /// The gold table is committed; the daily table is not.
    pub const GOLD_BETWEEN_COMMITS: &str = "gold-between-commits";
    /// Both gold tables are committed.
    pub const GOLD_AFTER_COMMIT: &str = "gold-after-commit";
    /// A compaction wrote its files and is about to commit them.
    pub const OPTIMIZE_BEFORE_COMMIT: &str = "optimize-before-commit";

    /// Every point.
    pub const ALL: &[&str] = &[
        PLAN_BEFORE_RENAME,
        AFTER_PLAN,
        BEFORE_COMMIT,
        BETWEEN_COMMITS,
        AFTER_COMMIT,
        AFTER_DONE,
        CLEAN_BETWEEN_FILES,
        BETWEEN_LOOKS,
        APPEND_BEFORE_WRITE,
        SILVER_BEFORE_COMMIT,
        SILVER_BETWEEN_WRITES,
        SILVER_AFTER_COMMIT,
        GOLD_BETWEEN_COMMITS,
        GOLD_AFTER_COMMIT,
        OPTIMIZE_BEFORE_COMMIT,
    ];
}

/// A process held at a point gives up after this long, so a test that never releases it
/// fails instead of hanging.
const PAUSE_LIMIT: Duration = Duration::from_secs(300);

/// What to do at the armed point.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Abort,
    /// Wait until this file exists.
    Pause(PathBuf),
}

/// `MEDALLION_FAILPOINT`'s value: the point, and what to do there.
fn parse(value: &str) -> (&str, Action) {
    match value.split_once(":pause=") {
        Some((name, file)) => (name, Action::Pause(PathBuf::from(file))),
        None => (value, Action::Abort),
    }
}

/// Abort the process here, or hold it, if `MEDALLION_FAILPOINT` names this point.
pub fn failpoint(name: &str) {
    static ARMED: OnceLock<Option<(String, Action)>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| {
        let value = std::env::var("MEDALLION_FAILPOINT").ok()?;
        let (point, action) = parse(&value);
        if !points::ALL.contains(&point) {
            eprintln!("MEDALLION_FAILPOINT: there is no failpoint {point:?}");
        }
        Some((point.to_string(), action))
    });
    if let Some((point, action)) = armed
        && point == name
    {
        hit(name, action);
    }
}

fn hit(name: &str, action: &Action) {
    match action {
        Action::Abort => {
            eprintln!("failpoint {name}: aborting");
            std::process::abort();
        }
        Action::Pause(file) => {
            if file.exists() {
                return;
            }
            eprintln!("failpoint {name}: paused until {} exists", file.display());
            let start = Instant::now();
            while !file.exists() {
                if start.elapsed() > PAUSE_LIMIT {
                    eprintln!("failpoint {name}: not released after {PAUSE_LIMIT:?}: aborting");
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            eprintln!("failpoint {name}: released");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_names_are_distinct_and_parse_with_their_action() {
        let mut names = points::ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), points::ALL.len(), "a name is used twice");
        for name in points::ALL {
            assert!(
                !name.contains(':'),
                "{name}: a colon would read as an action"
            );
            assert_eq!(parse(name), (*name, Action::Abort));
        }
        assert_eq!(
            parse("append-before-write:pause=/tmp/x:y"),
            (
                "append-before-write",
                Action::Pause(PathBuf::from("/tmp/x:y"))
            )
        );
    }
}

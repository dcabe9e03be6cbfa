//! The library's one error type. Every variant carries what a user needs to act on it: the file
//! and line of bad input, the table and its location, the version that was asked for.

use std::path::PathBuf;

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An object store refused or failed a read, write or listing.
    #[error("cannot {action} {location}: {message}")]
    Store {
        action: &'static str,
        location: String,
        message: String,
    },

    /// A store that does not honour "create only if absent": writing to it could lose commits.
    #[error("{location}: {message}")]
    UnsafeStore { location: String, message: String },

    /// A source file the job needs is not there.
    #[error("source file {} does not exist{hint}", path.display())]
    SourceMissing { path: PathBuf, hint: String },

    /// A source folder the job reads is not there (a typo in `--data`?).
    #[error("source folder {} does not exist{hint}", path.display())]
    SourceFolderMissing { path: PathBuf, hint: String },

    /// A source file holds something the job cannot use. `line` is 1-based where there is one.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    SourceParse {
        path: PathBuf,
        line: Option<u64>,
        message: String,
    },

    /// A Delta operation on a table failed.
    #[error("table {table} ({location}): {action} failed")]
    Delta {
        table: String,
        location: String,
        action: &'static str,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },

    /// A query over a table failed.
    #[error("table {table}: {action} failed")]
    Query {
        table: String,
        action: &'static str,
        #[source]
        source: Box<deltalake::datafusion::error::DataFusionError>,
    },

    /// Arrow could not build or convert a batch.
    #[error("{context}")]
    Arrow {
        context: String,
        #[source]
        source: deltalake::arrow::error::ArrowError,
    },

    /// A table the command needs has not been written yet.
    #[error("table {name} does not exist at {location}{hint}")]
    TableNotFound {
        name: String,
        location: String,
        hint: String,
    },

    /// A version beyond a table's latest.
    #[error("table {table} has no version {version}: its latest version is {latest}")]
    VersionNotFound {
        table: String,
        version: u64,
        latest: u64,
    },

    /// A time before the table's first commit.
    #[error(
        "table {table} did not exist at {time}: its first version (v{first_version}) was committed at {first_time}"
    )]
    TimeBeforeTable {
        table: String,
        time: String,
        first_version: u64,
        first_time: String,
    },

    /// A SQL query that DataFusion could not plan or run; the cause is DataFusion's message.
    #[error("SQL query failed")]
    Sql {
        #[source]
        source: Box<deltalake::datafusion::error::DataFusionError>,
    },

    /// An operation refused because of what it would do to other tables (`--force` overrides).
    #[error("table {table}: {message}")]
    Refused { table: String, message: String },

    /// An expectation whose action is `fail` failed on rows about to be written: nothing of the
    /// refresh was committed.
    #[error("table {table}: expectation {rule} failed: {message}")]
    ExpectationFailed {
        table: String,
        rule: String,
        message: String,
    },

    /// A chart of the report could not be drawn.
    #[error("report: cannot draw the {chart} chart: {message}")]
    Render {
        chart: &'static str,
        message: String,
    },

    /// The stream's checkpoint folder holds something this version cannot use.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },

    /// Another writer got there first; nothing of ours was committed.
    #[error("table {table}: {message}")]
    Conflict { table: String, message: String },

    /// A commit to a Delta table lost the race for its version to another writer (two jobs on
    /// one table). `winner` is who got there first, once the log has been read
    /// ([`crate::delta::name_the_winner`]).
    #[error("table {table}: {}", lost_race(winner.as_ref()))]
    LostRace {
        table: String,
        location: String,
        winner: Option<Winner>,
    },

    /// A data file the table's log names is not in the table's folder (deleted by hand?).
    #[error(
        "table {table}: data file {path} is missing, but the table's log names it (was it \
         deleted by hand?); put it back from a copy of the table, or restore the table to a \
         version from before that file"
    )]
    FileMissing { table: String, path: String },

    /// A data file that is there but cannot be read as Parquet.
    #[error("table {table}: data file {path} cannot be read: {message}")]
    FileUnreadable {
        table: String,
        path: String,
        message: String,
    },

    /// `maintain` could not maintain some tables (each named in its report); the others were.
    #[error("maintain: {count} of {total} tables failed (named above); the others were maintained")]
    MaintainFailed { count: usize, total: usize },

    /// `status` found what does not add up (listed on stdout).
    #[error("status: {count} inconsistencies found (listed above)")]
    Inconsistent { count: usize },

    /// A bad argument that clap could not catch (a folder that is a file, a time zone...).
    #[error("{0}")]
    Usage(String),

    /// A commit file of a table's log is empty or unreadable: the job stops, never repairs it.
    #[error(
        "table {table}: log file {path}{}: {message}; medallion stops rather than guess what \
         the table holds (restore the file from a copy of the table; never edit a log by hand)",
        line.map(|l| format!(":{l}")).unwrap_or_default()
    )]
    DamagedLog {
        table: String,
        path: String,
        line: Option<u64>,
        message: String,
    },
}

/// Who won a race for a table's version: the job that writes the table (or `restore`) and the
/// version it committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Winner {
    pub job: String,
    pub version: u64,
}

fn lost_race(winner: Option<&Winner>) -> String {
    let first = match winner {
        Some(Winner { job, version: 0 }) => format!("another `{job}` created it first"),
        Some(Winner { job, version }) => {
            format!("another `{job}` committed version {version} first")
        }
        None => "another writer committed to it first".to_string(),
    };
    format!("{first}, so nothing of this run was committed to it; run it again to go on from there")
}

impl Error {
    /// Wrap an I/O error with the path it concerns.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    /// The message with every cause after it, `a: b: c`, as a user should see it.
    pub fn chain(&self) -> String {
        chain_of(self)
    }

    /// Exit code for the CLI: 2 for usage errors, 3 for a race lost to another writer (nothing
    /// was committed: running again is safe), 4 for a store that does not honour
    /// put-if-absent (nothing was written), 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Conflict { .. } | Error::LostRace { .. } => 3,
            Error::UnsafeStore { .. } => 4,
            _ => 1,
        }
    }
}

/// Any error with every cause after it, `a: b: c` ([`Error::chain`]; an object store's or
/// deltalake's error too).
pub(crate) fn chain_of(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(next) = cause {
        let next_text = next.to_string();
        // Some libraries repeat their cause's text in their own message.
        if !text.ends_with(&next_text) {
            text.push_str(": ");
            text.push_str(&next_text);
        }
        cause = next.source();
    }
    text
}

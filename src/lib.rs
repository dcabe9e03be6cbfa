//! medallion: a bronze/silver/gold ("medallion") lakehouse pipeline on Delta Lake tables.
//!
//! Data flows one way: source files → layers → Delta tables. Modules are private: the binary
//! needs [`cli`] and [`run`](run()); the integration tests, benchmarks and examples reach what
//! they need through [`testing`], which is not an API.
//!
//! - [`cli`]: the command line (clap derive), parsing only.
//! - [`run`]: dispatch a parsed command to the job that does it and print its report.
//! - [`error`]: the one error type; every variant names the file, table or version concerned.
//! - [`atomic`]: files that appear whole or not at all (temporary name, sync, rename).
//! - [`catalog`]: every table described once (name, schema, key, properties, description) and
//!   the app ids by which a consumer records what it consumed.
//! - [`warehouse`]: where things are: table URLs, checkpoint folders, source folders, as local
//!   paths or object store URLs (`s3://`).
//! - [`folder`]: a folder of small files on a local disk or in an object store, with one
//!   meaning of "whole or not at all" and "create only if absent" on both.
//! - [`storage`]: the probe that refuses a store which does not honour put-if-absent.
//! - [`source`]: source files into Arrow: the patient CSV, the tracker folder and its JSON.
//! - [`layers`]: one job per table (`patients`, `bronze`, `silver`, `gold`) and the whole
//!   `pipeline`, each returning a report.
//! - [`stream`]: the bronze stream's checkpoint, triggers, progress records and stop request.
//! - [`failpoint`]: every point a crash test can stop (or hold) a job at, in one place.
//! - [`delta`]: opening and creating tables; one reader of the log, one upsert, application
//!   transactions, the SQL plumbing, and the stream's cheap append commits.
//! - [`parallel`]: per-row work spread over the cores, results in order.
//! - [`transform`]: silver's pure conversions (text to types, instants to the lab's strings).
//! - [`inspect`]: the read side: tables, describe, history, show (time travel), sql, diff, and
//!   restore.
//! - [`maintain`]: optimize (compaction), vacuum, checkpoints and log retention, `maintain`.
//! - [`quality`]: expectations (`medallion.toml`): rules read and checked, then evaluated on
//!   the rows a job writes.
//! - [`events`]: the event log, `pipeline_events`: each run's start, progress, expectation
//!   counts, errors and end.
//! - [`report`]: `medallion report`: the warehouse as one self-contained HTML file (SVG charts).
//! - [`generate`]: the deterministic generator of the lab's source data.
//! - [`output`]: reports on stdout, warnings and progress on stderr.
//! - [`docgen`]: shell completions and man pages, generated from the command line's definition.

mod atomic;
pub mod catalog;
pub mod cli;
mod delta;
mod docgen;
mod error;
mod events;
pub mod failpoint;
mod folder;
mod generate;
mod inspect;
mod layers;
mod maintain;
mod output;
mod parallel;
mod quality;
mod report;
mod run;
mod source;
mod storage;
mod stream;
mod transform;
mod warehouse;

pub use error::{Error, Result};
pub use run::run;

/// What the integration tests, the benchmarks and the example reach inside the crate for: the
/// tables' descriptions, opening and reading a table, the stream's append path, the generator
/// and the tracker reader. Not an API: it changes with the code.
#[doc(hidden)]
pub mod testing {
    pub use crate::catalog;
    pub use crate::delta::append::{AppendCommit, AppendLog};
    pub use crate::delta::{TableId, app_version, create, int64s, open, read_all, strings};
    pub use crate::generate::{GenerateOptions, generate};
    pub use crate::inspect::format::{Format, Rows};
    pub use crate::source::json::{Lineage, read_tracker};
    pub use crate::warehouse::{DataDir, LocalData, Warehouse};
}

//! medallion: a bronze/silver/gold ("medallion") lakehouse pipeline on Delta Lake tables.
//!
//! Data flows one way: source files → layers → Delta tables.
//!
//! - [`cli`]: the command line (clap derive), parsing only.
//! - [`run`]: dispatch a parsed command to the job that does it and print its report.
//! - [`error`]: the one error type; every variant names the file, table or version concerned.
//! - [`atomic`]: files that appear whole or not at all (temporary name, sync, rename).
//! - [`warehouse`]: where things are: table URLs, checkpoint folders, source folders.
//! - [`source`]: source files into Arrow: the patient CSV, the tracker folder and its JSON.
//! - [`layers`]: one job per table (`patients`, `bronze`, `silver`, `gold`) and the whole
//!   `pipeline`, each returning a report.
//! - [`stream`]: the bronze stream's checkpoint, triggers, progress records and failpoints.
//! - [`delta`]: opening, creating and reading tables; the stream's cheap append commits.
//! - [`parallel`]: per-row work spread over the cores, results in order.
//! - [`transform`]: silver's pure conversions (text to types, instants to the lab's strings).
//! - [`inspect`]: the read side: tables, describe, history, show (time travel), sql, diff, and
//!   restore.
//! - [`generate`]: the deterministic generator of the lab's source data.
//! - [`output`]: reports on stdout, warnings and progress on stderr.
//! - [`docgen`]: shell completions and man pages, generated from the command line's definition.

pub mod atomic;
pub mod cli;
pub mod delta;
pub mod docgen;
pub mod error;
pub mod generate;
pub mod inspect;
pub mod layers;
pub mod output;
pub mod parallel;
pub mod source;
pub mod stream;
pub mod transform;
pub mod warehouse;

mod run;

pub use error::{Error, Result};
pub use run::run;

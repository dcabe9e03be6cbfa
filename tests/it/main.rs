//! Integration tests: the real `medallion` binary on temporary warehouses, one file per topic.

mod bronze;
mod common;
mod conventions;
mod feedback;
mod generate;
mod hostile_env;
mod inspect;
mod long_running;
mod patients;
mod quality;
mod readonly;
mod regressions;
mod report;
mod s3;
mod safety_rails;
mod silver_gold;
mod skipped_files;
mod source_state;
mod sources;
mod wide_output;

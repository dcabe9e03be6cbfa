//! The command line: global flags, one subcommand per job, each with real examples. Parsing only;
//! [`crate::run`] does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::layers::bronze::BadFiles;
use crate::stream::trigger::Trigger;

#[derive(Debug, Parser)]
#[command(
    name = "medallion",
    version,
    about = "A bronze/silver/gold lakehouse pipeline on Delta Lake tables",
    after_help = "Examples:
  medallion generate                 write the lab's data under ./lab_data
  medallion patients                 load the patient dimension into Delta
  medallion bronze                   stream the tracker files into bronze, exactly once
  medallion silver                   type, clean and join the new bronze rows
  medallion gold                     refresh the per-patient aggregates
  medallion pipeline                 all of the above, then print gold
  medallion --json patients          the same, with a JSON report on stdout"
)]
pub struct Cli {
    /// Folder of the Delta tables (`<warehouse>/healthcare_dlh.db/<table>/`).
    #[arg(
        long,
        global = true,
        env = "MEDALLION_WAREHOUSE",
        default_value = "warehouse"
    )]
    pub warehouse: PathBuf,

    /// Folder of the source files (`healthcare/batch/`, `healthcare/streaming/tracker/`).
    #[arg(
        long,
        global = true,
        env = "MEDALLION_DATA",
        default_value = "lab_data"
    )]
    pub data: PathBuf,

    /// Print nothing but errors (and the JSON report with --json).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Say more about what is happening (on stderr).
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Print reports as JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the lab's source data: the patient CSV and one tracker file per month.
    #[command(after_help = "Examples:
  medallion generate                          34 patients, 12 monthly files (~100k rows)
  medallion generate --seed 7 --force         replace the data set with another seed
  medallion generate --scale 10 --data big    10x the rows (120 monthly files)
  medallion generate --append                 add the next month's file")]
    Generate(GenerateArgs),

    /// Load the patient CSV into `dim_patients` (MERGE on mrn; no new version if nothing changed).
    #[command(after_help = "Examples:
  medallion patients
  medallion --data ./lab_data --warehouse ./warehouse patients
  medallion --json patients                   the report as JSON")]
    Patients,

    /// Stream new tracker files into `fact_heartrate_bronze`, one commit per micro-batch,
    /// exactly once even if killed at any instant.
    #[command(after_help = "Examples:
  medallion bronze                                  every new file, one file per batch
  medallion bronze --max-files-per-trigger 0        every new file in one batch
  medallion bronze --trigger once                   one batch, then stop
  medallion bronze --trigger every=5s               keep watching until Ctrl-C / SIGTERM
  medallion --json bronze                           one progress record per batch on stdout
  medallion bronze --bad-files fail                 stop on a bad file instead of quarantining it

Unreadable files and elements go to fact_heartrate_bronze_quarantine with the reason.
The stream's checkpoint is <warehouse>/healthcare_dlh.db/fact_heartrate_bronze/_checkpoint/.")]
    Bronze(BronzeArgs),

    /// Refresh `fact_heartrate_silver` from bronze's new rows: typed, cleaned, joined with the
    /// patients, MERGEd on (device_id, mrn, datetime).
    #[command(after_help = "Examples:
  medallion silver
  medallion silver --timezone America/New_York     render date/time in New York time

Rows that cannot be typed go to fact_heartrate_silver_quarantine with the reason; readings of a
patient not in dim_patients wait in fact_heartrate_silver_waiting and join when it arrives.")]
    Silver(SilverArgs),

    /// Refresh `fact_heartrate_gold` (per patient) and `fact_heartrate_daily` (per patient and
    /// UTC day) from silver's changes, by MERGE.
    #[command(after_help = "Examples:
  medallion gold
  medallion --json gold")]
    Gold,

    /// Run every layer (patients, bronze, silver, gold), then print gold by average rate.
    #[command(after_help = "Examples:
  medallion pipeline
  medallion pipeline --timezone America/New_York
  medallion --json pipeline                         the whole report as JSON")]
    Pipeline(PipelineArgs),
}

#[derive(Debug, Args)]
pub struct SilverArgs {
    /// IANA time zone of the `date` and `time` strings (the instant itself is UTC).
    #[arg(long, default_value = "UTC", value_parser = crate::transform::parse_timezone)]
    pub timezone: chrono_tz::Tz,
}

#[derive(Debug, Args)]
pub struct PipelineArgs {
    #[command(flatten)]
    pub bronze: BronzeArgs,

    #[command(flatten)]
    pub silver: SilverArgs,
}

#[derive(Debug, Args)]
pub struct BronzeArgs {
    /// Files per micro-batch (0: every new file in one batch).
    #[arg(long, default_value_t = 1)]
    pub max_files_per_trigger: usize,

    /// When to run batches: available-now (drain, then stop), once, or every=DURATION.
    #[arg(long, default_value = "available-now")]
    pub trigger: Trigger,

    /// What to do with a file or element that cannot be read.
    #[arg(long, value_enum, default_value = "quarantine")]
    pub bad_files: BadFiles,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of patients, one monitor each.
    #[arg(long, default_value_t = 34, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub patients: u32,

    /// Number of monthly tracker files, starting January 2020.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=1_200))]
    pub months: u32,

    /// Seed of every random choice: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// N times the rows, for benchmarks: the months repeat over N years.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub scale: u32,

    /// Add the next month's file to a generated folder (with the options it was generated with).
    #[arg(long, conflicts_with_all = ["force", "patients", "months", "seed", "scale"])]
    pub append: bool,

    /// Replace an existing data set.
    #[arg(long)]
    pub force: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}

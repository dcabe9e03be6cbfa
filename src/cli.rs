//! The command line: global flags, one subcommand per job, each with real examples. Parsing only;
//! [`crate::run`] does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::inspect::format::Format;
use crate::layers::bronze::BadFiles;
use crate::stream::trigger::Trigger;
use crate::warehouse::{Location, SourceSpec};

/// The heading of the flags every command takes, listed after a command's own options.
const GLOBAL: &str = "Global options";

/// A help text with the catalog's table names in place of `{gold}`, `{silver}`, ... and each
/// merged table's key in place of `{keys}`: the names and keys live in one place.
fn fill(text: &str) -> String {
    use crate::catalog::*;
    let keys: Vec<String> = TABLES
        .iter()
        .filter(|t| !t.key.is_empty())
        .map(|t| format!("  {:<24}{}", t.name, t.key.join(", ")))
        .collect();
    [
        ("{bronze_quarantine}", BRONZE_QUARANTINE.name),
        ("{silver_quarantine}", SILVER_QUARANTINE.name),
        ("{waiting}", SILVER_WAITING.name),
        ("{bronze}", BRONZE.name),
        ("{silver}", SILVER.name),
        ("{gold}", GOLD.name),
        ("{daily}", DAILY.name),
        ("{patients}", DIM_PATIENTS.name),
        ("{db}", DATABASE),
        ("{keys}", &keys.join("\n")),
    ]
    .iter()
    .fold(text.to_string(), |text, (from, to)| text.replace(from, to))
}

#[derive(Debug, Parser)]
#[command(
    name = "medallion",
    version,
    about = "A bronze/silver/gold lakehouse pipeline on Delta Lake tables",
    after_help = fill("Examples:
  medallion generate                 write the lab's data under ./lab_data
  medallion patients                 load the patient dimension into Delta
  medallion bronze                   stream the tracker files into bronze, exactly once
  medallion silver                   type, clean and join the new bronze rows
  medallion gold                     refresh the per-patient aggregates
  medallion pipeline                 all of the above, then print gold
  medallion --json patients          the same, with a JSON report on stdout
  medallion tables                   the tables of the warehouse, their versions and sizes
  medallion show {gold} --version 1     a table as it was at version 1
  medallion completions bash > ~/.local/share/bash-completion/completions/medallion

--warehouse and --data are a local folder (a path, taken as written, or a file:///absolute/path
URL) or an S3 folder (s3://bucket/prefix), reached with the usual AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL and AWS_ALLOW_HTTP variables or
--storage-option KEY=VALUE. Before its first write to an S3 warehouse, medallion checks once that
the store refuses a second create of one object (check-store), and refuses a store that does not.

Exit status:
  0  done
  1  failed (the message says what and where)
  2  bad usage (arguments, options, paths)
  3  lost a race: another job committed to the same table first, nothing of this run was
     committed to it; run it again
  4  the warehouse's store does not honour put-if-absent: nothing was written to it")
)]
pub struct Cli {
    /// Folder of the Delta tables (`<warehouse>/healthcare_dlh.db/<table>/`): a path, a
    /// file:// URL or s3://bucket/prefix.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "MEDALLION_WAREHOUSE",
        default_value = "warehouse",
        value_parser = crate::warehouse::parse_location
    )]
    pub warehouse: Location,

    /// Folder of the source files (`healthcare/batch/`, `healthcare/streaming/tracker/`): a path,
    /// a file:// URL or s3://bucket/prefix.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "MEDALLION_DATA",
        default_value = "lab_data",
        value_parser = crate::warehouse::parse_location
    )]
    pub data: Location,

    /// An object store setting, KEY=VALUE (repeatable): AWS_ENDPOINT_URL, AWS_REGION,
    /// AWS_ALLOW_HTTP, AWS_ACCESS_KEY_ID, ... (the environment's AWS_* variables apply where a
    /// key is not given).
    #[arg(
        long = "storage-option",
        global = true,
        help_heading = GLOBAL,
        value_name = "KEY=VALUE",
        value_parser = crate::warehouse::parse_storage_option
    )]
    pub storage_options: Vec<(String, String)>,

    /// No progress bars and no summary line; warnings and errors still go to stderr, the rows of
    /// the inspect commands and --json reports to stdout.
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub quiet: bool,

    /// Say more about what is happening (on stderr).
    #[arg(
        short,
        long,
        global = true,
        help_heading = GLOBAL,
        conflicts_with = "quiet"
    )]
    pub verbose: bool,

    /// Print reports as JSON on stdout instead of text.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,

    /// The expectations file (default: medallion.toml in the working directory, if there is
    /// one; `medallion init` writes an example).
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "MEDALLION_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

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
    #[command(after_help = fill("Examples:
  medallion bronze                                  every new file, one file per batch
  medallion bronze --max-files-per-trigger 0        every new file in one batch
  medallion bronze --trigger once                   one batch, then stop
  medallion bronze --trigger every=5s               keep watching until Ctrl-C / SIGTERM
  medallion bronze --source site_a=s3://lake/site_a/   one source of several into one table
  medallion --json bronze                           one progress record per batch on stdout
  medallion bronze --bad-files fail                 stop on a bad file instead of quarantining it
  medallion bronze --clean-source archive=/data/done   move each done batch's files there
  medallion bronze --trigger every=5s --max-file-age 7d   forget files a week older than the newest

Unreadable files and elements go to {bronze_quarantine} with the reason.
The stream's checkpoint is <warehouse>/{db}.db/{bronze}/_checkpoint/."))]
    Bronze(BronzeArgs),

    /// Refresh `fact_heartrate_silver` from bronze's new rows: typed, cleaned, joined with the
    /// patients, MERGEd on (device_id, mrn, datetime).
    #[command(after_help = fill("Examples:
  medallion silver
  medallion silver --timezone America/New_York     render date/time in New York time
  medallion silver --full-refresh                   rebuild from all of bronze (one new version)

Rows that cannot be typed go to {silver_quarantine} with the reason; readings of a
patient not in {patients} wait in {waiting} and join when it arrives."))]
    Silver(SilverCommandArgs),

    /// Refresh `fact_heartrate_gold` (per patient) and `fact_heartrate_daily` (per patient and
    /// UTC day) from silver's changes, by MERGE.
    #[command(after_help = "Examples:
  medallion gold
  medallion --json gold
  medallion gold --full-refresh               recompute every patient from all of silver")]
    Gold(GoldArgs),

    /// Run every layer (patients, bronze, silver, gold), then print gold by average rate.
    #[command(after_help = "Examples:
  medallion pipeline
  medallion pipeline --timezone America/New_York
  medallion --json pipeline                         the whole report as JSON")]
    Pipeline(PipelineArgs),

    /// List the tables of the warehouse: version, rows (from file statistics), files, bytes,
    /// last commit time.
    #[command(after_help = "Examples:
  medallion tables
  medallion tables --format json              one JSON object per table")]
    Tables(TablesArgs),

    /// Describe a table: its columns, then location, protocol, properties, version, size, and
    /// the upstream versions it has consumed (like Spark's DESCRIBE EXTENDED).
    #[command(after_help = fill("Examples:
  medallion describe {silver}      with \"Consumed  {bronze} v12\"
  medallion describe {patients} --no-truncate
  medallion describe {gold} --format csv"))]
    Describe(DescribeArgs),

    /// The commits of a table, newest first: version, time, operation, parameters, metrics,
    /// application transactions.
    #[command(after_help = fill("Examples:
  medallion history {bronze}
  medallion history {gold} --limit 3
  medallion history {silver} --format json | jq .metrics"))]
    History(HistoryArgs),

    /// Rows of a table: now, at a past version, or as they were at a past time.
    #[command(after_help = fill("Examples:
  medallion show {gold}
  medallion show {gold} --version 1
  medallion show {gold} --as-of 2024-05-01T12:00:00Z
  medallion show {gold} --as-of '2024-05-01 12:00:00'      (UTC)
  medallion show {silver} --where 'heartrate < 0' --order-by 'datetime DESC'
  medallion show {daily} --limit 0 --format csv > daily.csv   every row

--as-of TIME reads the latest version committed at or before TIME (by the commit timestamps in
the log). --limit defaults to 20 rows; 0 shows them all."))]
    Show(ShowArgs),

    /// Run a read-only SQL query (DataFusion) over every table of the warehouse.
    #[command(after_help = fill("Examples:
  medallion sql 'SELECT patient_name, avg_heartrate FROM {gold} ORDER BY 2 DESC'
  medallion sql 'SELECT count(*) FROM {db}.{silver}'
  medallion sql 'SELECT * FROM \"{gold}@v1\"'             gold at version 1
  medallion sql 'SELECT n.mrn, o.count AS before, n.count AS after
                 FROM {gold} n JOIN \"{gold}@v1\" o USING (mrn)'
  medallion sql 'SHOW TABLES'                          the tables, as `medallion tables`
  medallion sql 'DESCRIBE {gold}'         its columns
  medallion sql -f report.sql                          the query in a file
  echo 'SELECT 1' | medallion sql -                    the query on stdin

Every table is registered by its name and as {db}.<name>. A past version of a table
is read as \"<name>@v<N>\" (double-quoted: '@' is not an identifier character).
Only queries run (SELECT, WITH ... SELECT, VALUES, EXPLAIN of a query), and SHOW TABLES and
DESCRIBE <table>: INSERT, COPY, CREATE, DROP, SET and several statements in one string are
refused (exit 2) before anything runs, as is text that does not parse (with its line and
column)."))]
    Sql(SqlArgs),

    /// Rows added, removed and changed in a table between two versions, matched by key, with
    /// old and new values side by side.
    #[command(after_help = fill("Examples:
  medallion diff {gold} --from 1                 version 1 against the latest
  medallion diff {gold} --from 1 --to 2
  medallion diff {daily} --from 1 --key mrn,date --format json
  medallion diff {gold} --from 1 --all-columns     unchanged columns too

The key defaults to the table's merge key:
{keys}
and for other tables every column (then rows are only added or removed).
The text table shows the key and the columns whose old and new values differ in at least one
row (an added or removed row differs in every column it has a value for)."))]
    Diff(DiffArgs),

    /// Restore a past version of a table, as a new commit.
    #[command(after_help = fill("Examples:
  medallion restore {gold} --version 1
  medallion restore {silver} --version 1 --force

A restore below a version a downstream table has already consumed (e.g. silver below what gold
read) is refused, with what it would mean for those tables, unless --force. A restore of a
table that consumes another (silver, gold, daily) also takes back its consumed positions, so
its next refresh reads again what the restore took back."))]
    Restore(RestoreArgs),

    /// What each layer still has to do (files to ingest, upstream versions to consume), the
    /// quarantined and waiting rows, each table's version and consumed positions, and anything
    /// that does not add up.
    #[command(after_help = "Examples:
  medallion status
  medallion --json status                     one JSON object

Exit status: 0 when everything is consistent (work left to do is not an inconsistency), 1 when
an inconsistency is found: a consumed version beyond its upstream's latest, rows of upstream
versions a restore took back, a consumer of a missing table, a bronze checkpoint bound to
another folder.")]
    Status,

    /// The state of every source file the bronze streams know (as Auto Loader's
    /// cloud_files_state): name, size, modified, when its batch was planned, batch, the bronze
    /// version that holds it, state, quarantined rows, where --clean-source moved it, path.
    #[command(after_help = "Examples:
  medallion files
  medallion files --format csv > files.csv
  medallion files --format json | jq 'select(.state == \"pending\")'

States: pending (in the source folder, not taken yet), planned (taken by a batch not done yet),
committed (its rows are in bronze), archived / deleted (by --clean-source), kept (clean-up left
it; detail says why). Files --max-file-age passes over (bronze names each in a warning) and
files it let the checkpoint forget are not listed.")]
    Files(FilesArgs),

    /// Write an example expectations file (medallion.toml): commented rules for the lab's
    /// data, each a SQL condition on a table's rows with what to do when it is not true.
    #[command(after_help = fill("Examples:
  medallion init                          ./medallion.toml (refused if it exists)
  medallion init --force                  replace it
  medallion --config rules.toml init      write rules.toml instead

Actions: warn (keep the row, count it), drop and quarantine (leave it out of the table; it
goes to {silver_quarantine} with the rule's name), fail (stop the refresh before it
commits anything, exit 1). Rules on {silver} take any action; rules on {gold} and
{daily} warn or fail. A rule applies to the rows written after it is added:
`medallion silver --full-refresh` applies the current rules to all of bronze."))]
    Init(InitArgs),

    /// List the event log (pipeline_events): each job run's start, progress per table,
    /// expectation counts, maintenance, errors and end.
    #[command(after_help = "Examples:
  medallion events                              every event, oldest first
  medallion events --job silver --level WARN    silver's warnings and errors
  medallion events --since 2026-12-01 --format json
  medallion sql \"SELECT job, count(*) FROM pipeline_events WHERE level = 'ERROR' GROUP BY job\"

Levels: INFO, METRICS, WARN, ERROR; --level WARN shows WARN and ERROR. A text table shows
the time, job, table, type, level, message and version written; --format json and csv add
run_id, upstream_versions and details (JSON text).")]
    Events(EventsArgs),

    /// Each expectation's pass rate per version written and overall, from the event log: the
    /// rules of medallion.toml and the built-in checks (bronze's readable files and rescued
    /// data, silver's typed rows and known patients).
    #[command(after_help = fill("Examples:
  medallion quality                             every table's checks
  medallion quality {silver}
  medallion quality --overall --format json     one row per check"))]
    Quality(QualityArgs),

    /// Write the warehouse as one self-contained HTML file (inline SVG charts, nothing fetched,
    /// works offline and printed): gold per patient, daily over time, the pipeline's batches,
    /// quality and events, the tables and their lineage; as it is, or as it was.
    #[command(after_help = fill("Examples:
  medallion report                              ./report.html from the latest versions
  medallion report --out /tmp/lake.html --open  and open it in the browser
  medallion report --version 3                  as {gold} v3 was written
  medallion report --as-of '2026-12-01 08:00:00'

--version N reads {gold} at version N, {daily} as the same refresh left it, and every
other table as of gold vN's commit; --as-of reads each table's latest version at or before
the time (UTC). The file is replaced whole or not at all. `make report` writes it from the
default warehouse."))]
    Report(ReportArgs),

    /// Compact a table's small files into larger ones (Delta's OPTIMIZE): one commit whose
    /// files carry dataChange=false, so no downstream table sees a change.
    #[command(after_help = fill("Examples:
  medallion optimize {bronze}                        pack files under 128 MiB
  medallion optimize {bronze} --target-size 32MB
  medallion optimize {silver} --where \"datetime < '2020-06-01'\"           (UTC)

--where selects files by their statistics (files that may hold a matching row): comparisons of
a column with a literal (=, !=, <, <=, >, >=, IN (...), NOT IN (...)) joined by AND.
It can run while a bronze stream appends: the stream's commits and the compaction do not
conflict. A MERGE that rewrote a compacted file meanwhile makes optimize lose (exit 3)."))]
    Optimize(OptimizeArgs),

    /// Delete data files no version within the retention needs, and orphans (files of batches
    /// or jobs that never committed) older than it; never _delta_log or _checkpoint.
    #[command(after_help = fill("Examples:
  medallion vacuum {bronze} --dry-run                what would go, with sizes
  medallion vacuum {bronze}                          retain 168h (7 days)
  medallion vacuum {silver} --retain 720h
  medallion vacuum {gold} --retain 0h --force        time travel to older versions breaks

A retention under 168h is refused without --force: versions older than it could no longer be
read, and a running writer's files not committed yet could be taken."))]
    Vacuum(VacuumArgs),

    /// Optimize, vacuum (168h) and checkpoint every table, deleting commit files older than
    /// each table's log retention (delta.logRetentionDuration, 30 days): a cron-able one-liner.
    #[command(after_help = "Examples:
  medallion maintain
  medallion --json maintain
  0 3 * * * cd /srv/lake && medallion maintain      (crontab: every night at 3)")]
    Maintain,

    /// Check that the warehouse's store honours put-if-absent (a second create of one object is
    /// refused), which every commit relies on; keeps the record of a passed check.
    #[command(after_help = "Examples:
  medallion --warehouse s3://lakehouse/warehouse check-store
  AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ALLOW_HTTP=true medallion --warehouse s3://lake/wh check-store

medallion runs this check by itself before its first write to an object-store warehouse and
refuses a store that fails it (exit 4); a local folder is always safe (hard links).")]
    CheckStore,

    /// Print the shell completion script of medallion: bash, zsh, fish, powershell or elvish.
    #[command(after_help = "Examples:
  medallion completions bash > ~/.local/share/bash-completion/completions/medallion
  medallion completions zsh > ~/.zfunc/_medallion        (with fpath+=(~/.zfunc) in .zshrc)
  medallion completions fish > ~/.config/fish/completions/medallion.fish
  make completions                   every shell's script under target/completions/")]
    Completions(CompletionsArgs),

    /// Write the man pages: medallion.1 and one per command (medallion-silver.1, ...).
    #[command(
        hide = true,
        after_help = "Examples:
  medallion man --out target/man     what `make man` runs
  man target/man/medallion.1"
    )]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Folder to write the pages into (created if missing).
    #[arg(long, value_name = "DIR", default_value = "target/man")]
    pub out: PathBuf,
}

/// How the inspect commands print their results.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format (`--json` also selects json).
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,

    /// Print long values whole in text tables (they are cut at 40 characters, and to fit the
    /// terminal's width or COLUMNS).
    #[arg(long)]
    pub no_truncate: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this job's runs (patients, bronze, silver, gold, pipeline, optimize, ...).
    #[arg(long)]
    pub job: Option<String>,

    /// Only events at or after this time: RFC 3339, or YYYY-MM-DD[ HH:MM:SS] in UTC.
    #[arg(long, value_parser = crate::inspect::show::parse_time)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,

    /// Only events of this level or above (INFO and METRICS < WARN < ERROR).
    #[arg(long, value_parser = ["INFO", "METRICS", "WARN", "ERROR"], ignore_case = true)]
    pub level: Option<String>,

    /// Only one run's events (its run_id).
    #[arg(long)]
    pub run: Option<String>,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The HTML file to write (replaced if it exists).
    #[arg(long, value_name = "FILE", default_value = "report.html")]
    pub out: PathBuf,

    /// Show gold at this version (daily from the same refresh, other tables as of its commit).
    #[arg(long, conflicts_with = "as_of")]
    pub version: Option<u64>,

    /// Show every table as it was at this time: RFC 3339, or YYYY-MM-DD[ HH:MM:SS] in UTC.
    #[arg(long, value_parser = crate::inspect::show::parse_time)]
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,

    /// Open the written file in the desktop's browser.
    #[arg(long)]
    pub open: bool,
}

#[derive(Debug, Args)]
pub struct QualityArgs {
    /// Only this table's checks.
    pub table: Option<String>,

    /// One row per check over every version (without it, a row per check and version written,
    /// then the overall rows).
    #[arg(long)]
    pub overall: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct FilesArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct TablesArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Table name, e.g. fact_heartrate_gold.
    pub table: String,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Table name, e.g. fact_heartrate_gold.
    pub table: String,

    /// Only the N most recent commits (0: all, the default).
    #[arg(long)]
    pub limit: Option<usize>,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Table name, e.g. fact_heartrate_gold.
    pub table: String,

    /// Read this version of the table.
    #[arg(long, conflicts_with = "as_of")]
    pub version: Option<u64>,

    /// Read the table as it was at this time: RFC 3339, or YYYY-MM-DD[ HH:MM:SS] in UTC.
    #[arg(long, value_parser = crate::inspect::show::parse_time)]
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,

    /// At most N rows (0: all).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,

    /// Only rows matching this SQL condition, e.g. 'heartrate < 0'.
    #[arg(long = "where", value_name = "EXPR")]
    pub filter: Option<String>,

    /// Order rows by these columns, as in SQL's ORDER BY, e.g. 'mrn, datetime DESC'.
    #[arg(long, value_name = "COLS")]
    pub order_by: Option<String>,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query (DataFusion SQL, read-only); `-` reads it from stdin.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub query: Option<String>,

    /// Read the query from this file (`-`: stdin).
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Table name, e.g. fact_heartrate_gold.
    pub table: String,

    /// The older version.
    #[arg(long)]
    pub from: u64,

    /// The newer version (default: the latest).
    #[arg(long)]
    pub to: Option<u64>,

    /// Columns that identify a row, comma-separated (default: the table's merge key).
    #[arg(long, value_delimiter = ',', value_name = "COLS")]
    pub key: Option<Vec<String>>,

    /// Show every column in the text table, not only the key and the columns that changed in
    /// at least one row (JSON and CSV always have every column).
    #[arg(long)]
    pub all_columns: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct OptimizeArgs {
    /// Table name, e.g. fact_heartrate_bronze.
    pub table: String,

    /// The size to pack files up to (files at or above it are left alone): 128MiB, 1GiB, 500KB (KB, MB: powers of 1000)...
    #[arg(long, default_value = "128MiB", value_parser = parse_size)]
    pub target_size: u64,

    /// Only files whose statistics say they may hold a matching row.
    #[arg(long = "where", value_name = "PRED")]
    pub filter: Option<String>,

    /// Decode and re-encode the files instead of copying their row groups: slower, but the
    /// new files have large row groups (full scans of many small ones run faster after it).
    #[arg(long)]
    pub rewrite: bool,
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// Table name, e.g. fact_heartrate_bronze.
    pub table: String,

    /// How long removed and orphaned files are kept: 168h, 7d, 30days...
    #[arg(long, default_value = "168h", value_parser = parse_duration)]
    pub retain: std::time::Duration,

    /// List what would be deleted, with sizes; delete nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Accept a retention under 168h (older versions can no longer be read).
    #[arg(long)]
    pub force: bool,
}

/// A size as people write it: `128MB`, `1GiB`, `4096`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{text:?} is not a size like 128MB, 1GiB or 4096 ({e})"))
}

/// A duration as people write it: `168h`, `7d`, `30min`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration like 168h, 7d or 30min ({e})"))
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Table name, e.g. fact_heartrate_gold.
    pub table: String,

    /// The version to restore.
    #[arg(long)]
    pub version: u64,

    /// Restore even if downstream tables have consumed later versions.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SilverArgs {
    /// New bronze rows per silver commit (about: whole bronze commits), bounding memory (0: no
    /// limit, every new row in one commit).
    #[arg(long, default_value_t = crate::layers::silver::SLICE_ROWS)]
    pub max_rows_per_commit: u64,

    /// IANA time zone of the `date` and `time` strings (the instant itself is UTC). Silver
    /// keeps the zone it was created with (default UTC); naming another is refused.
    #[arg(long, value_parser = crate::transform::parse_timezone)]
    pub timezone: Option<chrono_tz::Tz>,
}

#[derive(Debug, Args)]
pub struct SilverCommandArgs {
    #[command(flatten)]
    pub silver: SilverArgs,

    /// Rebuild silver (and its waiting and quarantine tables) from bronze as it is now, each
    /// as one new version (time travel keeps the old ones): after bronze's log expired under a
    /// silver that was behind, or to start over.
    #[arg(long)]
    pub full_refresh: bool,
}

#[derive(Debug, Args)]
pub struct GoldArgs {
    /// Rebuild gold and daily from all of silver as it is now, each as one new version.
    #[arg(long)]
    pub full_refresh: bool,

    /// A first (or full) refresh reads silver in ranges of UTC days of about this many rows,
    /// so memory holds one range's aggregates (0: all of silver at once).
    #[arg(long, default_value_t = crate::layers::gold::SCAN_ROWS)]
    pub max_rows_per_scan: u64,
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

    /// The tracker folder has moved on purpose: bind the stream to the one --data gives
    /// (files whose names were already ingested are not read again).
    #[arg(long)]
    pub source_moved: bool,

    /// A source folder, NAME=FOLDER (a path or s3://bucket/prefix; repeatable): each source has
    /// its own stream id and checkpoint (`_checkpoint/NAME/`), so several processes or sites
    /// can append to one bronze table at once. Default: the tracker folder of --data, named
    /// `tracker`.
    #[arg(long = "source", value_name = "NAME=FOLDER", value_parser = crate::warehouse::parse_source)]
    pub sources: Vec<SourceSpec>,

    /// Compact the table's small files (as `optimize` does) every N committed files, in the
    /// background of the stream (0: never).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub auto_compact: usize,

    /// Once a batch is committed and marked done, move its source files into FOLDER
    /// (`archive=FOLDER`, a path or s3:// URL) or delete them (`delete`), as Spark's
    /// cleanSource. A crash before the clean-up leaves them for the next start to clean; a file
    /// is never touched before its rows are committed. Default: leave them.
    #[arg(long, value_name = "archive=FOLDER|delete", value_parser = crate::layers::bronze::clean::parse)]
    pub clean_source: Option<crate::layers::bronze::clean::CleanSource>,

    /// Take no new file modified more than AGE before the newest file the stream has taken
    /// (with a warning naming it), and let the checkpoint forget files that old, as Spark's
    /// maxFileAge (e.g. 7d). Files it has forgotten are never taken again, whatever a later
    /// run's AGE. Default: remember every file, take every new one.
    #[arg(long, value_name = "AGE", value_parser = parse_duration)]
    pub max_file_age: Option<std::time::Duration>,
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

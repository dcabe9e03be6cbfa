//! Dispatch: turn a parsed command line into a call of the library and print what it returns.
//! No logic of its own beyond wiring flags to options.

use std::future::Future;

use crate::cli::{BronzeArgs, Cli, Command, GenerateArgs, OutputArgs};
use crate::delta::{self, orphans};
use crate::error::Result;
use crate::events::{EventLog, Logged, reports};
use crate::generate::{self, GenerateOptions, GenerateReport};
use crate::inspect::diff::DiffOptions;
use crate::inspect::format::{Format, Printed, RowStream, Rows, terminal_width};
use crate::inspect::restore::RestoreOptions;
use crate::inspect::show::{At, ShowOptions};
use crate::inspect::{describe, diff, history, restore, show, sql, status, tables};
use crate::layers::bronze::{self, BronzeOptions, Observer};
use crate::layers::silver::{self, SilverOptions};
use crate::layers::{gold, patients, pipeline};
use crate::output::{self, Printer, Report, StepBar, Steps};
use crate::quality::rules::{self, Rules};
use crate::storage;
use crate::stream::progress::Progress;
use crate::warehouse::{DataDir, StorageOptions, Warehouse};

/// Run one command of the CLI.
pub async fn run(cli: Cli) -> Result<()> {
    let result = dispatch(cli).await;
    // A write to stdout that failed (not a closed pipe) ends the command with that error, once
    // the job is at a safe point; a failure of the job itself comes first.
    match crate::output::take_failure() {
        Some(failure) if result.is_ok() => Err(failure),
        _ => result,
    }
}

async fn dispatch(cli: Cli) -> Result<()> {
    let printer = Printer {
        quiet: cli.quiet,
        verbose: cli.verbose,
        json: cli.json,
    };
    let options: StorageOptions = cli.storage_options.iter().cloned().collect();
    let data = DataDir::new(cli.data.clone(), &options);
    // The warehouse to read, and (checked once that its store is safe for commits) to write.
    let reading = || Warehouse::open(&cli.warehouse, &options);
    let writing_to = || async {
        let warehouse = reading()?;
        storage::ensure_safe(&warehouse).await?;
        Ok::<_, crate::error::Error>(warehouse)
    };
    // The expectations, read and checked before any work (a bad rule is a usage error).
    let rules = || Rules::load(cli.config.as_deref());
    let log = |warehouse: &Warehouse, job: &str, arguments: serde_json::Value| {
        EventLog::start(warehouse, job, arguments)
    };
    match cli.command {
        Command::Generate(args) => {
            let report = run_generate(&data, &args).await?;
            for warning in &report.warnings {
                printer.warn(warning);
            }
            printer.report(&report);
        }
        Command::Patients => {
            let warehouse = writing_to().await?;
            let events = log(&warehouse, "patients", serde_json::json!({}));
            let job = writing(printer, patients::run(&warehouse, &data));
            printer.report(&logged(&events, printer, job).await?);
        }
        Command::Bronze(args) => {
            let warehouse = writing_to().await?;
            let events = log(&warehouse, "bronze", arguments(&args));
            let mut observer = BronzeOutput::new(printer);
            observer.log = Some(events.clone());
            let report =
                bronze::run(&warehouse, &data, &bronze_options(&args), &mut observer).await;
            observer.finish();
            // The stream deletes the Parquet of the batches it did not commit itself.
            let report = match report {
                Ok(report) => Ok(report),
                Err(e) => Err(delta::name_the_winner(e).await),
            };
            let report = logged(&events, printer, async { report }).await?;
            // With --json, after the progress records: the report `--json pipeline` holds as
            // its `bronze`, so both describe bronze the same way.
            printer.report(&report);
        }
        Command::Silver(args) => {
            let rules = rules()?;
            let warehouse = writing_to().await?;
            let events = log(&warehouse, "silver", arguments(&args));
            let options = SilverOptions {
                max_rows_per_commit: unlimited_at_0(args.silver.max_rows_per_commit),
                timezone: args.silver.timezone,
                full_refresh: args.full_refresh,
                rules,
            };
            let mut bar = StepBar::new(printer);
            let job = writing(printer, silver::run(&warehouse, &options, &mut bar));
            printer.report(&logged(&events, printer, job).await?);
        }
        Command::Gold(args) => {
            let rules = rules()?;
            let warehouse = writing_to().await?;
            let events = log(&warehouse, "gold", arguments(&args));
            let mut bar = StepBar::new(printer);
            let options = gold::GoldOptions {
                full_refresh: args.full_refresh,
                max_rows_per_scan: unlimited_at_0(args.max_rows_per_scan),
            };
            let job = gold::run(&warehouse, options, &rules, &mut bar);
            printer.report(&logged(&events, printer, writing(printer, job)).await?);
        }
        Command::Pipeline(args) => {
            let rules = rules()?;
            let warehouse = writing_to().await?;
            let events = log(&warehouse, "pipeline", arguments(&args));
            let silver_options = SilverOptions {
                max_rows_per_commit: unlimited_at_0(args.silver.max_rows_per_commit),
                timezone: args.silver.timezone,
                full_refresh: false,
                rules,
            };
            // Progress records would mix with the report on stdout: keep them in the
            // checkpoint's progress.jsonl.
            let mut watcher = PipelineOutput {
                bronze: BronzeOutput::new(Printer {
                    json: false,
                    ..printer
                }),
                steps: StepBar::new(printer),
                printer,
            };
            watcher.bronze.log = Some(events.clone());
            let report = writing(
                printer,
                pipeline::run(
                    &warehouse,
                    &data,
                    &bronze_options(&args.bronze),
                    &silver_options,
                    &mut watcher,
                ),
            )
            .await;
            watcher.bronze.finish();
            watcher.steps.end();
            printer.report(&logged(&events, printer, async { report }).await?);
        }
        Command::Tables(args) => {
            let warehouse = reading()?;
            print_rows(&tables::run(&warehouse).await?, &args.output, printer)?;
        }
        Command::Describe(args) => {
            let warehouse = reading()?;
            let rows = describe::run(&warehouse, &args.table).await?;
            print_rows(&rows, &args.output, printer)?;
        }
        Command::History(args) => {
            let warehouse = reading()?;
            let rows = history::run(&warehouse, &args.table, args.limit).await?;
            print_rows(&rows, &args.output, printer)?;
        }
        Command::Show(args) => {
            let warehouse = reading()?;
            let at = At::from_flags(args.version, args.as_of);
            let options = ShowOptions {
                at,
                limit: (args.limit > 0).then_some(args.limit),
                filter: args.filter,
                order_by: args.order_by,
            };
            let shown = show::run(&warehouse, &args.table, &options).await?;
            let printed = print_stream(shown.rows, &args.output, printer).await?;
            if printed.more {
                note(
                    printer,
                    &format!(
                        "{} v{}: the first {} rows (--limit 0 shows all)",
                        args.table, shown.version, args.limit
                    ),
                );
            }
        }
        Command::Sql(args) => {
            let warehouse = reading()?;
            let query = sql::query_text(args.query.as_deref(), args.file.as_deref())?;
            match sql::run(&warehouse, &query).await? {
                sql::Answer::Listing(rows) => print_rows(&rows, &args.output, printer)?,
                sql::Answer::Query(rows) => {
                    print_stream(rows, &args.output, printer).await?;
                }
            }
        }
        Command::Diff(args) => {
            let warehouse = reading()?;
            let options = DiffOptions {
                from: args.from,
                to: args.to,
                key: args.key,
            };
            let diff = diff::run(&warehouse, &args.table, &options).await?;
            let text = !printer.json && args.output.format == Format::Text;
            if text && !args.all_columns {
                let (rows, hidden) = diff.changed_columns();
                print_rows(&rows, &args.output, printer)?;
                note(printer, &diff.summary());
                if !hidden.is_empty() {
                    note(
                        printer,
                        &format!(
                            "unchanged, not shown (--all-columns shows them): {}",
                            hidden.join(", ")
                        ),
                    );
                }
            } else {
                print_rows(&diff.rows, &args.output, printer)?;
                note(printer, &diff.summary());
            }
        }
        Command::Restore(args) => {
            let warehouse = writing_to().await?;
            let options = RestoreOptions {
                version: args.version,
                force: args.force,
            };
            let events = log(&warehouse, "restore", arguments(&args));
            let report = match restore::run(&warehouse, &args.table, &options).await {
                Ok(report) => Ok(report),
                Err(e) => Err(delta::name_the_winner(e).await),
            };
            printer.report(&logged(&events, printer, async { report }).await?);
        }
        Command::Completions(args) => crate::docgen::print_completions(args.shell)?,
        Command::Man(args) => printer.report(&crate::docgen::man_pages(&args.out)?),
        Command::Optimize(args) => {
            let warehouse = writing_to().await?;
            let events = log(&warehouse, "optimize", arguments(&args));
            let options = crate::maintain::optimize::OptimizeOptions {
                rewrite: args.rewrite,
                ..crate::maintain::optimize::OptimizeOptions::to_target(
                    args.target_size,
                    args.filter,
                )
            };
            let job = writing(printer, async {
                let (id, table) = crate::inspect::open_table(&warehouse, &args.table).await?;
                crate::maintain::optimize::run(&id, table, &options).await
            });
            printer.report(&logged(&events, printer, job).await?);
        }
        Command::Vacuum(args) => {
            let warehouse = if args.dry_run {
                reading()?
            } else {
                writing_to().await?
            };
            let options = crate::maintain::vacuum::VacuumOptions {
                retain: args.retain,
                dry_run: args.dry_run,
                force: args.force,
            };
            let job = async {
                let (id, table) = crate::inspect::open_table(&warehouse, &args.table).await?;
                crate::maintain::vacuum::run(&id, table, &options).await
            };
            // A dry run changes nothing: it is not a run of the pipeline's.
            let report = if args.dry_run {
                job.await?
            } else {
                logged(&log(&warehouse, "vacuum", arguments(&args)), printer, job).await?
            };
            printer.report(&report);
        }
        Command::Maintain => {
            let warehouse = writing_to().await?;
            let events = log(&warehouse, "maintain", serde_json::json!({}));
            let job = writing(printer, crate::maintain::run(&warehouse));
            let report = logged(&events, printer, job).await?;
            printer.report(&report);
            if !report.failed.is_empty() {
                return Err(crate::error::Error::MaintainFailed {
                    count: report.failed.len(),
                    total: report.failed.len() + report.tables.len(),
                });
            }
        }
        Command::CheckStore => {
            printer.report(&storage::check_store(&reading()?).await?);
        }
        Command::Files(args) => {
            let warehouse = reading()?;
            let rows = crate::inspect::files::run(&warehouse, &data).await?;
            print_rows(&rows, &args.output, printer)?;
        }
        Command::Init(_) if cli.config.as_deref().is_some_and(|p| p.is_dir()) => {
            return Err(crate::error::Error::Usage(
                "--config names a folder; init writes a file".into(),
            ));
        }
        Command::Init(args) => {
            printer.report(&rules::init(cli.config.as_deref(), args.force)?);
        }
        Command::Events(args) => {
            let warehouse = reading()?;
            let filter = crate::inspect::events::EventFilter {
                job: args.job,
                since: args.since,
                level: args.level,
                run: args.run,
                except_type: None,
            };
            let rows = crate::inspect::events::events(&warehouse, &filter).await?;
            let rows = if format_of(&args.output, printer) == Format::Text {
                crate::inspect::events::brief(rows)
            } else {
                rows
            };
            print_rows(&rows, &args.output, printer)?;
        }
        Command::Quality(args) => {
            let warehouse = reading()?;
            let rows =
                crate::inspect::events::quality(&warehouse, args.table.as_deref(), args.overall)
                    .await?;
            print_rows(&rows, &args.output, printer)?;
        }
        Command::Report(args) => {
            let warehouse = reading()?;
            let at = At::from_flags(args.version, args.as_of);
            let options = crate::report::ReportOptions { out: args.out, at };
            let mut written = crate::report::run(&warehouse, &options).await?;
            for warning in &written.warnings {
                printer.warn(warning);
            }
            if args.open {
                written.open_failed = crate::report::open_in_browser(&written.path);
                if let Some(problem) = &written.open_failed {
                    printer.warn(problem);
                }
            }
            printer.report(&written);
        }
        Command::Status => {
            let warehouse = reading()?;
            let found = status::run(&warehouse, &data).await?;
            printer.report(&found);
            if !found.consistent {
                return Err(crate::error::Error::Inconsistent {
                    count: found.inconsistencies.len(),
                });
            }
        }
    }
    Ok(())
}

/// Run a job that writes tables. If it fails, the data files it wrote that no commit names are
/// deleted (`delta::orphans`), and a race lost to another writer names the winner.
async fn writing<T>(printer: Printer, job: impl Future<Output = Result<T>>) -> Result<T> {
    let (result, cleanup) = orphans::scoped(job).await;
    for line in &cleanup.deleted {
        printer.info(line);
    }
    for problem in &cleanup.problems {
        printer.warn(problem);
    }
    match result {
        Ok(report) => Ok(report),
        Err(e) => Err(delta::name_the_winner(e).await),
    }
}

/// End a job's run in the event log: what its report says (if it succeeded) or its error,
/// then the run's end. A log that cannot be written is a warning: the job's result stands.
async fn logged<T: Logged>(
    events: &EventLog,
    printer: Printer,
    job: impl Future<Output = Result<T>>,
) -> Result<T> {
    let result = job.await;
    if let Ok(report) = &result {
        events.extend(report.events());
    }
    for problem in events.finish(result.as_ref().map(|_| ())).await {
        printer.warn(&problem);
    }
    result
}

/// A command's arguments, for its `run_start` event.
fn arguments(args: &impl std::fmt::Debug) -> serde_json::Value {
    serde_json::json!({ "arguments": format!("{args:?}") })
}

/// Print an inspect command's rows on stdout.
fn print_rows(rows: &Rows, output: &OutputArgs, printer: Printer) -> Result<()> {
    let format = format_of(output, printer);
    rows.print(
        format,
        !output.no_truncate,
        terminal_width(),
        output::results(),
    )
}

/// Print a query's rows on stdout as they are read (`show`, `sql`).
async fn print_stream(rows: RowStream, output: &OutputArgs, printer: Printer) -> Result<Printed> {
    let format = format_of(output, printer);
    rows.print(
        format,
        !output.no_truncate,
        terminal_width(),
        output::results(),
    )
    .await
}

/// The format asked for: `--json` means `--format json`.
fn format_of(output: &OutputArgs, printer: Printer) -> Format {
    if printer.json {
        Format::Json
    } else {
        output.format
    }
}

/// A note beside the results, on stderr (silenced by `-q`).
fn note(printer: Printer, message: &str) {
    if !printer.quiet {
        crate::output::stderr_line(message);
    }
}

fn bronze_options(args: &BronzeArgs) -> BronzeOptions {
    BronzeOptions {
        max_files_per_trigger: (args.max_files_per_trigger > 0)
            .then_some(args.max_files_per_trigger),
        trigger: args.trigger,
        bad_files: args.bad_files,
        source_moved: args.source_moved,
        sources: args.sources.clone(),
        auto_compact: args.auto_compact,
        clean_source: args.clean_source.clone(),
        max_file_age: args.max_file_age,
        ..BronzeOptions::default()
    }
}

/// `0` in a count-like flag is no limit (`--max-rows-per-commit 0`, as `--limit 0`).
fn unlimited_at_0(n: u64) -> u64 {
    if n == 0 { u64::MAX } else { n }
}

async fn run_generate(data: &DataDir, args: &GenerateArgs) -> Result<GenerateReport> {
    let options = GenerateOptions {
        patients: args.patients as usize,
        months: args.months,
        seed: args.seed,
        scale: args.scale,
    };
    match data.local() {
        Some(local) if args.append => generate::append(&local),
        Some(local) => generate::generate(&local, &options, args.force),
        None if args.append => Err(crate::error::Error::Usage(format!(
            "generate --append adds to a local folder (it reads the parameters kept there), \
             not to {}",
            data.location().display()
        ))),
        None => generate::upload(data, &options, args.force).await,
    }
}

impl Report for GenerateReport {
    fn summary(&self) -> String {
        let files = match self.files.as_slice() {
            [one] => one.display().to_string(),
            many => format!("{} tracker files", many.len()),
        };
        format!(
            "generate: {} patients, {} rows in {} under {} ({} ms)",
            self.patients,
            self.rows,
            files,
            self.data_dir.display(),
            self.duration_ms
        )
    }
}

/// A pipeline run as it goes: bronze's bar (or batch lines with `-v`), silver's and gold's
/// bars, and each layer's summary line, timestamped, as the layer ends.
struct PipelineOutput {
    bronze: BronzeOutput,
    steps: StepBar,
    printer: Printer,
}

impl pipeline::Watcher for PipelineOutput {
    fn bronze(&mut self) -> &mut dyn Observer {
        &mut self.bronze
    }

    fn steps(&mut self) -> &mut dyn Steps {
        &mut self.steps
    }

    fn layer_done(&mut self, summary: &str) {
        self.bronze.finish();
        self.steps.end();
        let time = chrono::Local::now().format("%H:%M:%S");
        self.printer.line(&format!("{time} {summary}"));
    }
}

/// Shows a bronze stream: a progress bar on a terminal, progress records as JSON lines with
/// `--json`, warnings on stderr.
struct BronzeOutput {
    printer: Printer,
    bar: Option<indicatif::ProgressBar>,
    /// The run's event log, which hears each batch.
    log: Option<EventLog>,
}

impl BronzeOutput {
    fn new(printer: Printer) -> Self {
        Self {
            printer,
            bar: None,
            log: None,
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            if let Some(length) = bar.length() {
                bar.set_position(length);
            }
            bar.finish_and_clear();
        }
    }
}

impl Observer for BronzeOutput {
    fn discovered(&mut self, pending: usize) {
        if !self.printer.progress_bars() {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "bronze {bar:30} {pos}/{len} files, {msg} [{elapsed}]",
                )
                .expect("a valid template"),
            );
            bar
        });
        bar.set_length(bar.position() + pending as u64);
    }

    fn batch(&mut self, progress: &Progress) {
        if let Some(log) = &self.log {
            log.extend(reports::bronze_batch(crate::catalog::BRONZE.name, progress));
            log.flush_soon();
        }
        if self.printer.json {
            if let Ok(line) = serde_json::to_string(progress) {
                // After the batch is done: a closed pipe (`| head -1`) stops the stream there.
                crate::output::stdout_line(&line);
            }
        } else if let Some(bar) = &self.bar {
            bar.inc(progress.sources[0].files.len() as u64);
            bar.set_message(format!(
                "batch {}, {} rows",
                progress.batch_id, progress.num_input_rows
            ));
        } else {
            self.printer.info(&format!(
                "batch {}: {} rows from {} -> v{} ({} ms)",
                progress.batch_id,
                progress.num_input_rows,
                progress.sources[0].files.join(", "),
                progress.table_version,
                progress.duration_ms.trigger_execution
            ));
        }
    }

    fn wants_more(&self) -> bool {
        !crate::output::stdout_closed()
    }

    fn warn(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| self.printer.warn(message)),
            None => self.printer.warn(message),
        }
    }

    fn compacted(&mut self, report: &crate::maintain::optimize::OptimizeReport) {
        let line = format!("auto-compaction: {}", report.summary());
        match &self.bar {
            Some(bar) => bar.suspend(|| self.printer.info(&line)),
            None => self.printer.info(&line),
        }
    }
}

//! How results reach people and programs: reports on stdout (a summary line, or JSON with
//! `--json`), warnings and progress on stderr (progress silenced by `-q`).
//!
//! One policy for every write to stdout ([`delivered`]): a closed pipe (`| head`) is the reader
//! having what it wanted, not a failure: the output ends and the command exits 0, quietly, as
//! ripgrep does (a job stops there: what it committed stays committed, as after any stop);
//! any other failure to write (a full disk behind `>`) is an error. Nothing here `println!`s,
//! which panics on a closed pipe.

use std::io::{BufWriter, IsTerminal, Write};

use serde::Serialize;

use crate::error::{Error, Result};

/// Stdout for results that can be long (the rows of the inspect commands), written as they
/// come: buffered, so that a row is not a write of its own.
pub fn results() -> BufWriter<std::io::Stdout> {
    BufWriter::with_capacity(64 * 1024, std::io::stdout())
}

/// What a write of results to stdout came to: `Ok(true)` written, `Ok(false)` the pipe was
/// closed (stop writing, and end quietly), an error for any other failure (a full disk behind
/// `>`).
pub fn delivered(written: std::io::Result<()>) -> Result<bool> {
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(source) => Err(Error::Io {
            action: "write the results to",
            path: "stdout".into(),
            source,
        }),
    }
}

/// A job's report: serialisable, and summarised in a line for people.
pub trait Report: Serialize {
    fn summary(&self) -> String;
}

/// Where output goes, as the global flags set it.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub quiet: bool,
    pub verbose: bool,
    pub json: bool,
}

impl Printer {
    /// Print a job's report: one JSON object per line with `--json`, else its summary.
    pub fn report(&self, report: &impl Report) {
        let line = if self.json {
            serde_json::to_string(report).expect("reports serialise")
        } else if self.quiet {
            return;
        } else {
            report.summary()
        };
        stdout_line(&line);
    }

    /// A line of results for people on stdout (nothing with `-q` or `--json`).
    pub fn line(&self, text: &str) {
        if self.quiet || self.json {
            return;
        }
        stdout_line(text);
    }

    /// A warning a user must see: on stderr, even with `-q`.
    pub fn warn(&self, message: &str) {
        stderr_line(&format!("warning: {message}"));
    }

    /// A note for `-v`.
    pub fn info(&self, message: &str) {
        if self.verbose {
            stderr_line(message);
        }
    }

    /// Whether to draw progress bars: a terminal on stderr, not quiet, not JSON.
    pub fn progress_bars(&self) -> bool {
        !self.quiet && !self.json && std::io::stderr().is_terminal()
    }
}

/// Write `bytes` to stdout and flush them, for the jobs' reports and progress records: a
/// closed pipe ends the process there, quietly (exit 0, between two batches of a stream: what
/// is committed stays committed), any other failure with its error (exit 1).
pub fn stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    match delivered(out.write_all(bytes).and_then(|()| out.flush())) {
        Ok(true) => {}
        Ok(false) => std::process::exit(0),
        Err(e) => {
            stderr_line(&format!("error: {}", e.chain()));
            std::process::exit(1);
        }
    }
}

/// [`stdout`] of a line.
pub fn stdout_line(text: &str) {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    stdout(line.as_bytes());
}

/// A line on stderr; a closed stderr loses it (there is nowhere else to say it), never panics.
pub fn stderr_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// How far a long job is, for a progress bar. Jobs call it; the CLI draws it on a terminal
/// (stderr), and nothing is drawn otherwise. Every method does nothing by default.
pub trait Steps {
    /// Whether anybody watches: a job may skip work done only to size its stages.
    fn watched(&self) -> bool {
        false
    }
    /// A new stage: `total` units of `unit` to do (`label`: what is being done).
    fn begin(&mut self, _label: &str, _total: u64, _unit: &str) {}
    /// `done` more units of the current stage, and what is happening now.
    fn advance(&mut self, _done: u64, _message: &str) {}
    /// The job is over (done or failed).
    fn end(&mut self) {}
}

/// [`Steps`] drawn as a bar on stderr when it is a terminal (and not `-q` / `--json`).
pub struct StepBar {
    enabled: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl StepBar {
    pub fn new(printer: Printer) -> Self {
        Self {
            enabled: printer.progress_bars(),
            bar: None,
        }
    }
}

impl Steps for StepBar {
    fn watched(&self) -> bool {
        self.enabled
    }

    fn begin(&mut self, label: &str, total: u64, unit: &str) {
        self.end();
        if !self.enabled {
            return;
        }
        let bar = indicatif::ProgressBar::new(total);
        // A stage whose size is not known (0) turns a spinner instead of a bar at 0/0.
        let template = if total == 0 {
            format!("{label} {{spinner}} {unit} {{msg}} [{{elapsed}}]")
        } else {
            format!("{label} {{bar:30}} {{pos}}/{{len}} {unit}, {{msg}} [{{elapsed}}]")
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        // Drawn even while a long step gives no news (a MERGE, the first slice).
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        self.bar = Some(bar);
    }

    fn advance(&mut self, done: u64, message: &str) {
        if let Some(bar) = &self.bar {
            bar.inc(done);
            bar.set_message(message.to_string());
        }
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for StepBar {
    fn drop(&mut self) {
        self.end();
    }
}

/// How a job moved a table's version, for summaries: `created, v3`, `v2 -> v3`, `still v3`.
pub fn version_change(before: Option<u64>, after: Option<u64>) -> String {
    match (before, after) {
        (Some(a), Some(b)) if a == b => format!("still v{a}"),
        (Some(a), Some(b)) => format!("v{a} -> v{b}"),
        (None, Some(b)) => format!("created, v{b}"),
        (_, None) => "not created".to_string(),
    }
}

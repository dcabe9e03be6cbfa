//! How results reach people and programs: reports on stdout (a summary line, or JSON with
//! `--json`), warnings and progress on stderr (progress silenced by `-q`).
//!
//! One policy for every write to stdout ([`delivered`]): a closed pipe (`| head`) is the reader
//! having what it wanted, not a failure: nothing more is written and the command ends quietly
//! with exit 0, as ripgrep does. A command ends at a safe point, never by exiting mid-job: the
//! inspect commands stop reading, a bronze stream stops after the batch whose record found the
//! pipe closed (as on SIGTERM), a job that has only its report left finishes (its work is not
//! lost because nobody reads the summary; `status` still fails on an inconsistency). Any other
//! failure to write (a full disk behind `>`) ends the command with that error, exit 1, once the
//! job is at such a point. Nothing here `println!`s, which panics on a closed pipe.

use std::io::{BufWriter, IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

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
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::SeqCst);
            Ok(false)
        }
        Err(source) => {
            CLOSED.store(true, Ordering::SeqCst);
            Err(Error::Io {
                action: "write the results to",
                path: "stdout".into(),
                source,
            })
        }
    }
}

/// Stdout can take no more: its pipe closed, or a write to it failed.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// The failure of a write to stdout that was not a closed pipe, for the command to end with.
static FAILED: Mutex<Option<Error>> = Mutex::new(None);

/// Whether stdout can take no more (a long job stops at its next safe point).
pub fn stdout_closed() -> bool {
    CLOSED.load(Ordering::SeqCst)
}

/// The first failure to write stdout that was not a closed pipe, if any: the command ends with
/// it.
pub fn take_failure() -> Option<Error> {
    FAILED.lock().unwrap_or_else(|e| e.into_inner()).take()
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

/// Write `bytes` to stdout and flush them, for the jobs' reports and progress records; nothing
/// once stdout can take no more. A failure other than a closed pipe is kept for
/// [`take_failure`]. Returns whether stdout still takes output.
pub fn stdout(bytes: &[u8]) -> bool {
    if stdout_closed() {
        return false;
    }
    let mut out = std::io::stdout().lock();
    match delivered(out.write_all(bytes).and_then(|()| out.flush())) {
        Ok(open) => open,
        Err(e) => {
            FAILED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(e);
            false
        }
    }
}

/// [`stdout`] of a line.
pub fn stdout_line(text: &str) -> bool {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    stdout(line.as_bytes())
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

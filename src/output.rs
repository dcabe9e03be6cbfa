//! How results reach people and programs: reports on stdout (a summary line, or JSON with
//! `--json`), warnings and progress on stderr (silenced by `-q`).

use std::io::{IsTerminal, Write};

use serde::Serialize;

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
        let mut out = std::io::stdout().lock();
        let line = if self.json {
            serde_json::to_string(report).expect("reports serialise")
        } else if self.quiet {
            return;
        } else {
            report.summary()
        };
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = writeln!(out, "{line}");
    }

    /// A warning a user must see: on stderr, even with `-q`.
    pub fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }

    /// A note for `-v`.
    pub fn info(&self, message: &str) {
        if self.verbose {
            eprintln!("{message}");
        }
    }

    /// Whether to draw progress bars: a terminal on stderr, not quiet, not JSON.
    pub fn progress_bars(&self) -> bool {
        !self.quiet && !self.json && std::io::stderr().is_terminal()
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

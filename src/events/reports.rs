//! What each job's report says as events: a `flow_progress` per table written (with the
//! upstream versions it read and the version it wrote), an `expectation` per rule and built-in
//! check, and `maintenance` for the jobs that only reorganise tables.

use serde::Serialize;
use serde_json::{Value, json};

use super::{Event, EventType, Level, Logged};
use crate::catalog;
use crate::inspect::restore::RestoreReport;
use crate::layers::bronze::BronzeReport;
use crate::layers::gold::GoldReport;
use crate::layers::patients::PatientsReport;
use crate::layers::pipeline::PipelineReport;
use crate::layers::silver::SilverReport;
use crate::maintain::MaintainReport;
use crate::maintain::optimize::OptimizeReport;
use crate::maintain::vacuum::VacuumReport;
use crate::output::Report;
use crate::quality::check::RuleCount;
use crate::stream::progress::Progress;

fn details(report: &impl Serialize) -> Value {
    serde_json::to_value(report).unwrap_or(Value::Null)
}

impl Logged for PatientsReport {
    fn events(&self) -> Vec<Event> {
        vec![
            Event::flow(&self.table, self.summary(), details(self))
                .written(self.version_before, Some(self.version_after)),
        ]
    }
}

/// One bronze micro-batch: its progress and its built-in checks (files and elements readable,
/// rows without fields outside the source columns).
pub fn bronze_batch(table: &str, progress: &Progress) -> Vec<Event> {
    let version = (progress.num_input_rows > 0 || progress.num_quarantined_rows > 0)
        .then_some(progress.table_version);
    let message = format!(
        "batch {}: {} rows from {} files, {} quarantined",
        progress.batch_id,
        progress.num_input_rows,
        progress
            .sources
            .iter()
            .map(|s| s.files.len())
            .sum::<usize>(),
        progress.num_quarantined_rows
    );
    let mut events = vec![{
        let mut event = Event::flow(table, message, details(progress));
        event.version_written = version;
        event
    }];
    if version.is_some() {
        let checks = [
            RuleCount::built_in(
                table,
                "readable",
                "elements are records of the source",
                progress.num_input_rows,
                progress.num_quarantined_rows,
            ),
            RuleCount::built_in(
                table,
                "no_rescued_data",
                "_rescued_data IS NULL",
                progress
                    .num_input_rows
                    .saturating_sub(progress.num_rescued_rows),
                progress.num_rescued_rows,
            ),
        ];
        events.extend(checks.iter().map(|c| Event::expectation(c, version)));
    }
    events
}

impl Logged for BronzeReport {
    /// The batches are logged as they commit ([`bronze_batch`]); the run adds its totals.
    fn events(&self) -> Vec<Event> {
        let mut events = vec![
            Event::flow(&self.table, self.summary(), details(self))
                .written(self.version_before, Some(self.version_after)),
        ];
        for warning in &self.warnings {
            events
                .push(Event::new(EventType::FlowProgress, Level::Warn, warning).table(&self.table));
        }
        events
    }
}

impl Logged for SilverReport {
    fn events(&self) -> Vec<Event> {
        let written = self
            .version_after
            .filter(|_| self.version_after != self.version_before);
        let mut events = vec![
            Event::flow(&self.table, self.summary(), details(self))
                .upstream(&[
                    (catalog::BRONZE.name, self.bronze_to),
                    (catalog::DIM_PATIENTS.name, self.patients_version),
                ])
                .written(self.version_before, self.version_after),
        ];
        if written.is_none() && self.rows_read == 0 {
            return events;
        }
        let tried = self.rows_read + self.waiting_before;
        let typed = tried.saturating_sub(self.quarantined);
        let checks = [
            RuleCount::built_in(
                &self.table,
                "typed",
                "device_id, mrn, time, heartrate parse",
                self.rows_read.saturating_sub(self.quarantined),
                self.quarantined,
            ),
            RuleCount::built_in(
                &self.table,
                "patient_known",
                "mrn in dim_patients, else it waits",
                typed.saturating_sub(self.waiting),
                self.waiting,
            ),
        ];
        events.extend(
            checks
                .iter()
                .chain(&self.expectations)
                .map(|c| Event::expectation(c, written)),
        );
        events
    }
}

impl Logged for GoldReport {
    fn events(&self) -> Vec<Event> {
        let written = self
            .version_after
            .filter(|_| self.version_after != self.version_before);
        let mut events = vec![
            Event::flow(&self.table, self.summary(), details(self))
                .upstream(&[(catalog::SILVER.name, self.silver_to)])
                .written(self.version_before, self.version_after),
        ];
        events.extend(self.expectations.iter().map(|c| {
            let version = (c.table == self.table).then_some(written).flatten();
            Event::expectation(c, version)
        }));
        events
    }
}

impl Logged for PipelineReport {
    fn events(&self) -> Vec<Event> {
        let mut events = self.patients.events();
        events.extend(self.bronze.events());
        events.extend(self.silver.events());
        events.extend(self.gold.events());
        events
    }
}

/// A job that reorganises a table without changing its rows.
fn maintenance(table: Option<&str>, report: &impl Report) -> Event {
    let event =
        Event::new(EventType::Maintenance, Level::Info, report.summary()).details(details(report));
    match table {
        Some(table) => event.table(table),
        None => event,
    }
}

impl Logged for OptimizeReport {
    fn events(&self) -> Vec<Event> {
        let mut event = maintenance(Some(&self.table), self);
        event.version_written = self.version_after;
        vec![event]
    }
}

impl Logged for VacuumReport {
    fn events(&self) -> Vec<Event> {
        vec![maintenance(Some(&self.table), self)]
    }
}

impl Logged for RestoreReport {
    fn events(&self) -> Vec<Event> {
        let mut event = maintenance(Some(&self.table), self);
        event.version_written = Some(self.version_after);
        vec![event]
    }
}

impl Logged for MaintainReport {
    fn events(&self) -> Vec<Event> {
        let mut events = vec![maintenance(None, self)];
        events.extend(self.failed.iter().map(|f| {
            Event::new(EventType::Maintenance, Level::Error, f.error.clone())
                .table(&f.table)
                .details(json!({ "error": f.error }))
        }));
        events
    }
}

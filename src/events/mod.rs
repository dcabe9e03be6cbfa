//! The event log: every job run appends its events to the Delta table `pipeline_events`
//! (modelled on Lakeflow's event log): `run_start`, one `flow_progress` per table written (per
//! micro-batch for bronze), one `expectation` per rule and built-in check, `maintenance` for
//! optimize, vacuum and restore, an `error` when the run fails, and `run_end`. It is an
//! ordinary Delta table: `medallion sql`, `events`, `quality` and any Delta reader read it.
//!
//! Events are kept in memory and appended as one commit when the run ends (a stream's also
//! every [`FLUSH_EVERY`] while it runs). The log is a record, not part of a job's work: a job
//! whose events cannot be written still succeeds (or fails) as it would have, with a warning.
//! Concurrent runs append to it at once (blind appends do not conflict).

pub mod reports;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deltalake::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use deltalake::kernel::transaction::CommitProperties;
use serde_json::{Value, json};

use crate::catalog;
use crate::delta::{self, TableId};
use crate::error::{Error, Result};
use crate::quality::check::RuleCount;
use crate::warehouse::Warehouse;

/// How often a running stream appends the events of its batches so far.
pub const FLUSH_EVERY: Duration = Duration::from_secs(30);

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    RunStart,
    FlowProgress,
    Expectation,
    Maintenance,
    Error,
    RunEnd,
}

impl EventType {
    pub fn name(self) -> &'static str {
        match self {
            EventType::RunStart => "run_start",
            EventType::FlowProgress => "flow_progress",
            EventType::Expectation => "expectation",
            EventType::Maintenance => "maintenance",
            EventType::Error => "error",
            EventType::RunEnd => "run_end",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
    Metrics,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Metrics => "METRICS",
        }
    }
}

/// One event, before the run's id and job are stamped on it.
#[derive(Debug, Clone)]
pub struct Event {
    pub timestamp: i64,
    pub table: Option<String>,
    pub event_type: EventType,
    pub level: Level,
    pub message: String,
    pub upstream: Vec<(String, u64)>,
    pub version_written: Option<u64>,
    pub details: Value,
}

impl Event {
    pub fn new(event_type: EventType, level: Level, message: impl Into<String>) -> Self {
        Self {
            timestamp: chrono::Utc::now().timestamp_micros(),
            table: None,
            event_type,
            level,
            message: message.into(),
            upstream: Vec::new(),
            version_written: None,
            details: json!({}),
        }
    }

    pub fn table(mut self, name: &str) -> Self {
        self.table = Some(name.to_string());
        self
    }

    pub fn upstream(mut self, versions: &[(&str, u64)]) -> Self {
        self.upstream = versions.iter().map(|(t, v)| (t.to_string(), *v)).collect();
        self
    }

    /// The version the event's table was left at, if the run committed one.
    pub fn written(mut self, before: Option<u64>, after: Option<u64>) -> Self {
        self.version_written = after.filter(|_| after != before);
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// A flow's progress: a table written (or not) from its upstream versions.
    pub fn flow(table: &str, message: String, details: Value) -> Self {
        Self::new(EventType::FlowProgress, Level::Metrics, message)
            .table(table)
            .details(details)
    }

    /// One rule's (or built-in check's) counts over the rows a flow wrote.
    pub fn expectation(count: &RuleCount, version: Option<u64>) -> Self {
        let total = count.passed + count.failed;
        let level = if count.failed > 0 {
            Level::Warn
        } else {
            Level::Metrics
        };
        let mut event = Self::new(
            EventType::Expectation,
            level,
            format!("{}: {} of {total} failed", count.rule, count.failed),
        )
        .table(&count.table)
        .details(serde_json::to_value(count).unwrap_or(Value::Null));
        event.version_written = version;
        event
    }

    /// A failed run's error.
    pub fn error(error: &Error) -> Self {
        Self::new(EventType::Error, Level::Error, error.chain())
            .details(json!({ "exit_code": error.exit_code() }))
    }
}

/// What a job's report says as events (besides the run's start and end).
pub trait Logged {
    fn events(&self) -> Vec<Event>;
}

/// A run's events, shared by the job and whoever watches it (a stream's observer).
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

struct Inner {
    warehouse: Warehouse,
    id: TableId,
    run_id: String,
    job: String,
    started: Instant,
    /// The events not appended yet, and the last timestamp given (a run's events are strictly
    /// in order of time, so that ordering by it lists them as they happened).
    pending: Mutex<(Vec<Event>, i64)>,
    last_flush: Mutex<Instant>,
    flushing: Mutex<Vec<tokio::task::JoinHandle<Result<()>>>>,
}

impl EventLog {
    /// A run of `job` starts: its `run_start` event, with what it was asked to do.
    pub fn start(warehouse: &Warehouse, job: &str, arguments: Value) -> Self {
        let log = Self {
            inner: Arc::new(Inner {
                warehouse: warehouse.clone(),
                id: TableId::of(warehouse, &catalog::PIPELINE_EVENTS),
                run_id: uuid::Uuid::new_v4().to_string(),
                job: job.to_string(),
                started: Instant::now(),
                pending: Mutex::new((Vec::new(), i64::MIN)),
                last_flush: Mutex::new(Instant::now()),
                flushing: Mutex::new(Vec::new()),
            }),
        };
        log.push(
            Event::new(
                EventType::RunStart,
                Level::Info,
                format!("{job} started (medallion {})", env!("CARGO_PKG_VERSION")),
            )
            .details(arguments),
        );
        log
    }

    pub fn push(&self, event: Event) {
        self.extend(vec![event]);
    }

    pub fn extend(&self, events: Vec<Event>) {
        let mut pending = lock(&self.inner.pending);
        for mut event in events {
            event.timestamp = event.timestamp.max(pending.1.saturating_add(1));
            pending.1 = event.timestamp;
            pending.0.push(event);
        }
    }

    /// Append the events so far in the background, if the last append is [`FLUSH_EVERY`] old
    /// (a running stream's batches appear while it runs).
    pub fn flush_soon(&self) {
        {
            let mut last = lock(&self.inner.last_flush);
            if last.elapsed() < FLUSH_EVERY {
                return;
            }
            *last = Instant::now();
        }
        let log = self.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let task = runtime.spawn(async move { log.flush().await });
            lock(&self.inner.flushing).push(task);
        }
    }

    /// Append the events so far as one commit (none: nothing to do).
    pub async fn flush(&self) -> Result<()> {
        let events = std::mem::take(&mut lock(&self.inner.pending).0);
        if events.is_empty() {
            return Ok(());
        }
        let result = self.append(&events).await;
        if result.is_err() {
            // Kept for the next try (the run's end), in their order.
            let mut pending = lock(&self.inner.pending);
            let later = std::mem::replace(&mut pending.0, events);
            pending.0.extend(later);
        }
        result
    }

    /// The run ends: its error (if it failed) and `run_end`, then every event not appended yet.
    /// Returns what went wrong writing them, for warnings. A run that failed in a warehouse
    /// holding no table yet (a mistyped `--warehouse` or `--data`, a first run refused before
    /// it began) writes nothing, not even its events: a refused command leaves no trace.
    pub async fn finish(&self, outcome: std::result::Result<(), &Error>) -> Vec<String> {
        if outcome.is_err()
            && crate::inspect::table_names(&self.inner.warehouse)
                .await
                .map_or(true, |names| names.is_empty())
        {
            return Vec::new();
        }
        let duration_ms = self.inner.started.elapsed().as_millis() as u64;
        let job = &self.inner.job;
        let (level, message, status) = match outcome {
            Ok(()) => (
                Level::Info,
                format!("{job} succeeded in {duration_ms} ms"),
                "succeeded",
            ),
            Err(e) => {
                self.push(Event::error(e));
                (
                    Level::Error,
                    format!("{job} failed after {duration_ms} ms"),
                    "failed",
                )
            }
        };
        self.push(
            Event::new(EventType::RunEnd, level, message)
                .details(json!({ "status": status, "duration_ms": duration_ms })),
        );
        let mut problems = Vec::new();
        let tasks = std::mem::take(&mut *lock(&self.inner.flushing));
        for task in tasks {
            // A background append that failed put its events back: the last flush retries.
            let _ = task.await;
        }
        if let Err(e) = self.flush().await {
            problems.push(format!(
                "the run's events could not be appended to {}: {}",
                self.inner.id.name,
                e.chain()
            ));
        }
        problems
    }

    async fn append(&self, events: &[Event]) -> Result<()> {
        let id = &self.inner.id;
        let batch = self.batch(events)?;
        let (table, _) = delta::open_or_create(id, &catalog::PIPELINE_EVENTS).await?;
        table
            .write(vec![batch])
            .with_commit_properties(
                CommitProperties::default()
                    .with_metadata([("runId".to_string(), json!(self.inner.run_id))]),
            )
            .await
            .map_err(id.err("append events"))?;
        Ok(())
    }

    fn batch(&self, events: &[Event]) -> Result<RecordBatch> {
        let n = events.len();
        let upstream = |e: &Event| {
            (!e.upstream.is_empty()).then(|| {
                let map: serde_json::Map<String, Value> = e
                    .upstream
                    .iter()
                    .map(|(t, v)| (t.clone(), json!(v)))
                    .collect();
                Value::Object(map).to_string()
            })
        };
        RecordBatch::try_new(
            catalog::PIPELINE_EVENTS.schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|_| uuid::Uuid::new_v4().to_string()),
                )),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(events.iter().map(|e| e.timestamp))
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec![self.inner.run_id.as_str(); n])),
                Arc::new(StringArray::from(vec![self.inner.job.as_str(); n])),
                Arc::new(StringArray::from_iter(
                    events.iter().map(|e| e.table.as_deref()),
                )),
                Arc::new(StringArray::from_iter_values(
                    events.iter().map(|e| e.event_type.name()),
                )),
                Arc::new(StringArray::from_iter_values(
                    events.iter().map(|e| e.level.name()),
                )),
                Arc::new(StringArray::from_iter_values(
                    events.iter().map(|e| e.message.as_str()),
                )),
                Arc::new(StringArray::from_iter(events.iter().map(upstream))),
                Arc::new(Int64Array::from_iter(
                    events.iter().map(|e| e.version_written.map(|v| v as i64)),
                )),
                Arc::new(StringArray::from_iter_values(
                    events.iter().map(|e| e.details.to_string()),
                )),
            ],
        )
        .map_err(|e| Error::Arrow {
            context: format!("table {}: events", self.inner.id.name),
            source: e,
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

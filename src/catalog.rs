//! Every table of the warehouse, described once: its name, Arrow schema, merge key, Delta
//! properties, description, the job that writes it and its place in listings; and the
//! application ids (`<consumer><-<upstream>`) by which a job records what it consumed.
//!
//! Layers create and merge tables from these descriptions, `inspect` reads them (describe,
//! diff, tables, restore, status) without knowing the layers, and tests name tables through
//! them. A table name written as a string literal anywhere else is a second copy of a fact.

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The database folder inside the warehouse, named as Spark names a database's folder.
pub const DATABASE: &str = "healthcare_dlh";

/// A table of the warehouse.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// The job (command) that writes it.
    pub writer: &'static str,
    /// The table's comment (Delta `description`).
    pub description: &'static str,
    /// The columns a MERGE matches rows on; empty for a table that is only appended to (or
    /// replaced whole), whose rows have no key.
    pub key: &'static [&'static str],
    /// Delta properties it is created with.
    pub properties: &'static [(&'static str, &'static str)],
    /// Columns whose values are nearly all distinct, written without a Parquet dictionary
    /// (one would only be built to be thrown away: measured in the issue 17 note).
    pub plain_columns: &'static [&'static str],
    pub(crate) schema: fn() -> SchemaRef,
}

impl Table {
    /// Its Arrow schema, in column order.
    pub fn schema(&self) -> SchemaRef {
        (self.schema)()
    }

    /// How its Parquet files are written: Snappy (as deltalake's default), a dictionary for
    /// every column but the plain ones.
    pub fn writer_properties(&self) -> WriterProperties {
        self.plain_columns
            .iter()
            .fold(
                WriterProperties::builder().set_compression(Compression::SNAPPY),
                |builder, column| {
                    builder.set_column_dictionary_enabled(ColumnPath::from(*column), false)
                },
            )
            .build()
    }
}

use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::schema::types::ColumnPath;

const APPEND_ONLY: &[(&str, &str)] = &[("delta.appendOnly", "true")];

pub const DIM_PATIENTS: Table = Table {
    name: "dim_patients",
    writer: "patients",
    description: "Patient dimension, loaded from healthcare/batch/patient_info.csv",
    key: &["mrn"],
    properties: &[],
    plain_columns: &[],
    schema: patients_schema,
};

pub const BRONZE: Table = Table {
    name: "fact_heartrate_bronze",
    writer: "bronze",
    description: "Raw heart-rate readings, as delivered, with lineage; appended by the bronze stream",
    key: &[],
    properties: APPEND_ONLY,
    plain_columns: &["heartrate", "time", "_position"],
    schema: bronze_schema,
};

pub const BRONZE_QUARANTINE: Table = Table {
    name: "fact_heartrate_bronze_quarantine",
    writer: "bronze",
    description: "Tracker files and elements the bronze stream could not read, with the reason",
    key: &[],
    properties: APPEND_ONLY,
    plain_columns: &[],
    schema: bronze_quarantine_schema,
};

pub const SILVER: Table = Table {
    name: "fact_heartrate_silver",
    writer: "silver",
    description: "Heart-rate readings, typed and joined with the patient's name",
    key: &["device_id", "mrn", "datetime"],
    // Gold reads silver's changes from its change data feed.
    properties: &[("delta.enableChangeDataFeed", "true")],
    plain_columns: &[],
    schema: silver_schema,
};

pub const SILVER_QUARANTINE: Table = Table {
    name: "fact_heartrate_silver_quarantine",
    writer: "silver",
    description: "Rows silver refused, with the reason",
    key: &[],
    properties: APPEND_ONLY,
    plain_columns: &[],
    schema: silver_quarantine_schema,
};

pub const SILVER_WAITING: Table = Table {
    name: "fact_heartrate_silver_waiting",
    writer: "silver",
    description: "Bronze rows whose patient is not in dim_patients yet; silver joins them later",
    key: &[],
    properties: &[],
    plain_columns: &[],
    schema: bronze_schema,
};

pub const GOLD: Table = Table {
    name: "fact_heartrate_gold",
    writer: "gold",
    description: "Per-patient heart-rate aggregates",
    key: &["mrn"],
    properties: &[],
    plain_columns: &[],
    schema: gold_schema,
};

pub const DAILY: Table = Table {
    name: "fact_heartrate_daily",
    writer: "gold",
    description: "Per-patient, per-UTC-day heart-rate aggregates",
    key: &["mrn", "date"],
    properties: &[],
    plain_columns: &[],
    schema: daily_schema,
};

pub const PIPELINE_EVENTS: Table = Table {
    name: "pipeline_events",
    writer: "every job",
    description: "The event log: each job run's start, progress, expectations, errors and end",
    key: &[],
    properties: APPEND_ONLY,
    plain_columns: &[],
    schema: events_schema,
};

/// The pipeline's tables in the order it writes them: listings follow this order, then any
/// other table by name.
pub const TABLES: [&Table; 9] = [
    &DIM_PATIENTS,
    &BRONZE,
    &BRONZE_QUARANTINE,
    &SILVER,
    &SILVER_QUARANTINE,
    &SILVER_WAITING,
    &GOLD,
    &DAILY,
    &PIPELINE_EVENTS,
];

/// The pipeline's table of that name.
pub fn find(name: &str) -> Option<&'static Table> {
    TABLES.iter().copied().find(|t| t.name == name)
}

/// Where a table of that name is listed: the pipeline's tables in [`TABLES`] order, then the
/// others by name.
pub fn listing_order(name: &str) -> (usize, String) {
    let rank = TABLES.iter().position(|t| t.name == name);
    (rank.unwrap_or(TABLES.len()), name.to_string())
}

// ---- Schemas ------------------------------------------------------------------------------

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn patients_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("mrn", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]))
}

/// The source columns of a tracker record, in the bronze table's order (all text, as
/// delivered).
pub const SOURCE_COLUMNS: [&str; 4] = ["device_id", "heartrate", "mrn", "time"];

/// The bronze column holding a row's delivery position within its batch.
pub const POSITION: &str = "_position";

fn bronze_schema() -> SchemaRef {
    let mut fields: Vec<Field> = SOURCE_COLUMNS
        .iter()
        .map(|name| Field::new(*name, DataType::Utf8, true))
        .collect();
    fields.extend([
        Field::new("_source_file", DataType::Utf8, false),
        Field::new("_batch_id", DataType::Int64, false),
        Field::new("_ingested_at", utc_micros(), false),
        Field::new("_rescued_data", DataType::Utf8, true),
        // The row's place in its micro-batch: the batch's files in plan order, each file's rows
        // in order, from 0. With `_batch_id`, the total delivery order that decides which
        // delivery of a reading is the last (silver never infers it from scan order).
        Field::new(POSITION, DataType::Int64, false),
    ]);
    Arc::new(Schema::new(fields))
}

fn bronze_quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source_file", DataType::Utf8, false),
        Field::new("batch_id", DataType::Int64, false),
        Field::new("line", DataType::Int64, true),
        Field::new("error", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
        Field::new("quarantined_at", utc_micros(), false),
    ]))
}

fn silver_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("device_id", DataType::Int32, false),
        Field::new("mrn", DataType::Int64, false),
        Field::new("datetime", utc_micros(), false),
        Field::new("date", DataType::Utf8, false),
        Field::new("time", DataType::Utf8, false),
        Field::new("heartrate", DataType::Float64, false),
        Field::new("patient_name", DataType::Utf8, false),
    ]))
}

/// The bronze row silver refused, and why.
fn silver_quarantine_schema() -> SchemaRef {
    let mut fields: Vec<Field> = bronze_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("error", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// `sum_heartrate`'s scale: the readings' 10 decimals.
pub const GOLD_SUM_SCALE: u32 = 10;
/// `sum_heartrate`'s type: a decimal sum is exact, so adding new readings to an old sum and
/// summing all readings again give the same value (a double sum depends on the order, and
/// `ceil` of the mean turns a last-bit difference into a whole beat per minute).
pub const GOLD_SUM_TYPE: DataType = DataType::Decimal128(38, GOLD_SUM_SCALE as i8);

fn gold_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("patient_name", DataType::Utf8, true),
        Field::new("avg_heartrate", DataType::Int64, true),
        Field::new("count", DataType::Int64, false),
        Field::new("mrn", DataType::Int64, false),
        Field::new("min_heartrate", DataType::Float64, true),
        Field::new("max_heartrate", DataType::Float64, true),
        Field::new("first_reading", utc_micros(), true),
        Field::new("last_reading", utc_micros(), true),
        // The exact sum behind `avg_heartrate` (to 10 decimals, as the readings are given):
        // new readings update it without a rescan, and any order of adding gives the same.
        Field::new("sum_heartrate", GOLD_SUM_TYPE, true),
    ]))
}

fn daily_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("mrn", DataType::Int64, false),
        Field::new("date", DataType::Date32, false),
        Field::new("avg_heartrate", DataType::Float64, true),
        Field::new("min_heartrate", DataType::Float64, true),
        Field::new("max_heartrate", DataType::Float64, true),
        Field::new("count", DataType::Int64, false),
    ]))
}

/// One row per event (modelled on Lakeflow's event log). `table_name`, not `table`: a column
/// named by a reserved word would need quoting in every query. `upstream_versions` (table ->
/// version consumed) and `details` are JSON text, which every reader can parse.
fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("timestamp", utc_micros(), false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("job", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, true),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("level", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
        Field::new("upstream_versions", DataType::Utf8, true),
        Field::new("version_written", DataType::Int64, true),
        Field::new("details", DataType::Utf8, false),
    ]))
}

// ---- Application ids ----------------------------------------------------------------------

/// What a consumer job records in its own table's commits (a Delta `txn` action): the version
/// of `upstream` it consumed. The app id is `<consumer><-<upstream>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppId {
    pub consumer: &'static str,
    pub upstream: &'static str,
}

impl AppId {
    /// The id as recorded.
    pub fn id(&self) -> String {
        app_id(self.consumer, self.upstream)
    }
}

/// Silver's position in bronze.
pub const SILVER_FROM_BRONZE: AppId = AppId {
    consumer: "silver",
    upstream: BRONZE.name,
};
/// The dimension version silver joined with.
pub const SILVER_FROM_PATIENTS: AppId = AppId {
    consumer: "silver",
    upstream: DIM_PATIENTS.name,
};
/// The version of silver's waiting table that goes with silver's own: a refresh reads the
/// waiting rows as of that version, so a refresh that died after replacing them (and before
/// silver's commit) loses none. A position in silver's own side table, not an upstream.
pub const SILVER_WAITING_VERSION: AppId = AppId {
    consumer: "silver",
    upstream: SILVER_WAITING.name,
};
/// Gold's (and daily's) position in silver.
pub const GOLD_FROM_SILVER: AppId = AppId {
    consumer: "gold",
    upstream: SILVER.name,
};

/// Every app id the pipeline records (a log's checkpoint keeps them after the commits that
/// recorded them are cleaned up, so they are looked up by name).
pub const APP_IDS: [AppId; 4] = [
    SILVER_FROM_BRONZE,
    SILVER_FROM_PATIENTS,
    SILVER_WAITING_VERSION,
    GOLD_FROM_SILVER,
];

const ARROW: &str = "<-";

/// The app id of `consumer`'s position in `upstream`.
pub fn app_id(consumer: &str, upstream: &str) -> String {
    format!("{consumer}{ARROW}{upstream}")
}

/// What an app id says, if it is a consumer's: `(consumer, table)`, and whether the table is an
/// upstream it consumes (not a side table the consumer writes itself, such as silver's waiting
/// rows).
pub fn parse_app_id(id: &str) -> Option<Consumed<'_>> {
    let (consumer, table) = id.split_once(ARROW)?;
    if consumer.is_empty() || table.is_empty() {
        return None;
    }
    let own = find(table).is_some_and(|t| t.writer == consumer);
    Some(Consumed {
        consumer,
        table,
        upstream: !own,
    })
}

/// A parsed `<consumer><-<table>` app id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumed<'a> {
    pub consumer: &'a str,
    pub table: &'a str,
    /// `table` is an upstream of the consumer (false: a side table it writes itself).
    pub upstream: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_are_built_and_parsed_by_one_rule() {
        for app in APP_IDS {
            let id = app.id();
            let parsed = parse_app_id(&id).expect("a consumer's id");
            assert_eq!(
                (parsed.consumer, parsed.table),
                (app.consumer, app.upstream)
            );
        }
        assert_eq!(SILVER_FROM_BRONZE.id(), "silver<-fact_heartrate_bronze");
        let upstream = |id: &str| parse_app_id(id).map(|c| c.upstream);
        assert_eq!(upstream(&SILVER_FROM_PATIENTS.id()), Some(true));
        assert_eq!(upstream(&GOLD_FROM_SILVER.id()), Some(true));
        // Silver's waiting rows are silver's own: a position, not something it consumes.
        assert_eq!(upstream(&SILVER_WAITING_VERSION.id()), Some(false));
        // A table the catalog does not know is an upstream of whoever names it.
        assert_eq!(upstream("report<-fact_heartrate_gold"), Some(true));
        assert_eq!(upstream("report<-x"), Some(true));
        for not_a_consumer in ["3f2a-stream-uuid", "<-x", "x<-", ""] {
            assert_eq!(parse_app_id(not_a_consumer), None, "{not_a_consumer}");
        }
    }

    #[test]
    fn every_table_is_listed_once_and_found_by_name() {
        for (rank, table) in TABLES.iter().enumerate() {
            assert_eq!(find(table.name).map(|t| t.name), Some(table.name));
            assert_eq!(listing_order(table.name).0, rank);
            for key in table.key {
                assert!(
                    table.schema().field_with_name(key).is_ok(),
                    "{}: key {key}",
                    table.name
                );
            }
        }
        let names: std::collections::BTreeSet<_> = TABLES.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), TABLES.len());
        assert_eq!(find("nope").map(|t| t.name), None);
        assert!(listing_order("a_user_table") > listing_order(DAILY.name));
    }
}

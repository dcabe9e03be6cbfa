//! How the inspect commands print what they found: an aligned text table for people (long values
//! cut short unless `--no-truncate`), one JSON object per line or CSV for programs. Every command
//! builds the same [`Rows`], so the three formats always agree.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use deltalake::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{
    DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType, UInt64Type,
};
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Output formats of the inspect commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// An aligned table.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
    /// CSV with a header line.
    Csv,
}

/// Values longer than this are cut short in text tables (unless `--no-truncate`).
pub const TRUNCATE_AT: usize = 40;

/// A result: named columns and rows of JSON values (null, booleans, numbers, strings;
/// timestamps are RFC 3339 UTC strings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    pub fn new(columns: &[&str]) -> Self {
        Self {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row; it must have one value per column.
    pub fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// The rows of Arrow batches, with the columns of `schema` (the batches may be empty).
    pub fn from_batches(
        schema: &deltalake::arrow::datatypes::Schema,
        batches: &[RecordBatch],
    ) -> Result<Self> {
        let mut rows = Self {
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
            rows: Vec::new(),
        };
        for batch in batches {
            let columns = batch
                .columns()
                .iter()
                .map(json_values)
                .collect::<Result<Vec<_>>>()?;
            for i in 0..batch.num_rows() {
                rows.rows
                    .push(columns.iter().map(|column| column[i].clone()).collect());
            }
        }
        Ok(rows)
    }

    /// Render in `format`; text values longer than [`TRUNCATE_AT`] are cut when `truncate`.
    pub fn render(&self, format: Format, truncate: bool) -> String {
        match format {
            Format::Text => self.text(truncate),
            Format::Json => self.json_lines(),
            Format::Csv => self.csv(),
        }
    }

    /// Print to stdout; a closed pipe (`| head`) is not an error.
    pub fn print(&self, format: Format, truncate: bool) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(self.render(format, truncate).as_bytes());
    }

    fn text(&self, truncate: bool) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| row.iter().map(|v| text_cell(v, truncate)).collect())
            .collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                cells
                    .iter()
                    .map(|row| row[i].chars().count())
                    .chain([self.columns[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let rule = format!(
            "+{}+\n",
            widths
                .iter()
                .map(|w| "-".repeat(w + 2))
                .collect::<Vec<_>>()
                .join("+")
        );
        let line = |values: &[String]| {
            let padded: Vec<String> = values
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!(" {v}{} ", " ".repeat(w - v.chars().count())))
                .collect();
            format!("|{}|\n", padded.join("|"))
        };
        let mut text = rule.clone();
        text.push_str(&line(&self.columns));
        text.push_str(&rule);
        for row in &cells {
            text.push_str(&line(row));
        }
        if !cells.is_empty() {
            text.push_str(&rule);
        }
        text
    }

    fn json_lines(&self) -> String {
        let mut text = String::new();
        for row in &self.rows {
            let object: Map<String, Value> =
                self.columns.iter().cloned().zip(row.clone()).collect();
            text.push_str(&Value::Object(object).to_string());
            text.push('\n');
        }
        text
    }

    fn csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer
            .write_record(&self.columns)
            .expect("writing to memory");
        for row in &self.rows {
            writer
                .write_record(row.iter().map(plain))
                .expect("writing to memory");
        }
        String::from_utf8(writer.into_inner().expect("writing to memory"))
            .expect("CSV of UTF-8 values")
    }
}

/// A value as plain text: strings without quotes, null as nothing, anything else as JSON.
pub fn plain(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as a text-table cell: on one line, `NULL` for null, cut short when `truncate`.
fn text_cell(value: &Value, truncate: bool) -> String {
    let text = match value {
        Value::Null => "NULL".to_string(),
        other => plain(other)
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace('\t', " "),
    };
    if truncate && text.chars().count() > TRUNCATE_AT {
        let mut cut: String = text.chars().take(TRUNCATE_AT - 3).collect();
        cut.push_str("...");
        cut
    } else {
        text
    }
}

/// An instant (milliseconds since the epoch) as RFC 3339 UTC, e.g. `2024-05-01T12:00:00.123Z`.
pub fn millis(ms: i64) -> Value {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(rfc3339)
        .map_or(Value::Null, Value::String)
}

/// An instant as RFC 3339 UTC, with as many fractional digits as it needs.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// One column as JSON values: numbers stay numbers, timestamps become RFC 3339 UTC strings,
/// anything else Arrow's display text.
fn json_values(column: &ArrayRef) -> Result<Vec<Value>> {
    let arrow_err = |e| Error::Arrow {
        context: format!("format a {} column", column.data_type()),
        source: e,
    };
    let values = match column.data_type() {
        DataType::Null => vec![Value::Null; column.len()],
        DataType::Boolean => {
            let a = column.as_boolean();
            each(a, |i| Value::Bool(a.value(i)))
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => {
            let a = cast(column, &DataType::Int64).map_err(arrow_err)?;
            let a = a.as_primitive::<Int64Type>();
            each(a, |i| Value::from(a.value(i)))
        }
        DataType::UInt64 => {
            let a = column.as_primitive::<UInt64Type>();
            each(a, |i| Value::from(a.value(i)))
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let a = cast(column, &DataType::Float64).map_err(arrow_err)?;
            let a = a.as_primitive::<Float64Type>();
            // NaN and infinities have no JSON number: keep their text.
            each(a, |i| {
                serde_json::Number::from_f64(a.value(i))
                    .map_or_else(|| Value::String(a.value(i).to_string()), Value::Number)
            })
        }
        DataType::Timestamp(_, _) => {
            // The stored value is an instant in UTC whatever the column's zone says.
            let a = cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))
                .map_err(arrow_err)?;
            let a = a.as_primitive::<TimestampMicrosecondType>();
            each(a, |i| {
                DateTime::<Utc>::from_timestamp_micros(a.value(i))
                    .map_or(Value::Null, |t| Value::String(rfc3339(t)))
            })
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            let a = cast(column, &DataType::Utf8).map_err(arrow_err)?;
            let a = a.as_string::<i32>();
            each(a, |i| Value::String(a.value(i).to_string()))
        }
        _ => {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())
                .map_err(arrow_err)?;
            each(column.as_ref(), |i| {
                Value::String(formatter.value(i).to_string())
            })
        }
    };
    Ok(values)
}

/// `value(i)` for every valid slot of `array`, null for the others.
fn each(array: &dyn Array, value: impl Fn(usize) -> Value) -> Vec<Value> {
    (0..array.len())
        .map(|i| {
            if array.is_valid(i) {
                value(i)
            } else {
                Value::Null
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Rows {
        let mut rows = Rows::new(&["id", "name", "note"]);
        rows.push(vec![json!(1), json!("Ada, \"the first\""), Value::Null]);
        rows.push(vec![json!(22), json!("x".repeat(50)), json!(1.5)]);
        rows
    }

    #[test]
    fn text_tables_align_and_truncate() {
        let text = sample().render(Format::Text, true);
        let expected = format!(
            "+----+------------------------------------------+------+\n\
             | id | name                                     | note |\n\
             +----+------------------------------------------+------+\n\
             | 1  | Ada, \"the first\"                         | NULL |\n\
             | 22 | {}... | 1.5  |\n\
             +----+------------------------------------------+------+\n",
            "x".repeat(37)
        );
        assert_eq!(text, expected);
        assert!(
            sample()
                .render(Format::Text, false)
                .contains(&"x".repeat(50))
        );
    }

    #[test]
    fn json_lines_and_csv_keep_every_value() {
        assert_eq!(
            sample().render(Format::Json, true),
            format!(
                "{{\"id\":1,\"name\":\"Ada, \\\"the first\\\"\",\"note\":null}}\n\
                 {{\"id\":22,\"name\":\"{}\",\"note\":1.5}}\n",
                "x".repeat(50)
            )
        );
        assert_eq!(
            sample().render(Format::Csv, true),
            format!(
                "id,name,note\n1,\"Ada, \"\"the first\"\"\",\n22,{},1.5\n",
                "x".repeat(50)
            )
        );
    }

    #[test]
    fn instants_are_rfc3339_utc() {
        assert_eq!(millis(1_700_000_000_123), json!("2023-11-14T22:13:20.123Z"));
        assert_eq!(millis(1_700_000_000_000), json!("2023-11-14T22:13:20Z"));
    }
}

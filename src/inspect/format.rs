//! How the inspect commands print what they found: an aligned text table for people (long values
//! cut short unless `--no-truncate`, and laid out within the terminal's width), one JSON object
//! per line or CSV for programs (never cut). Every command builds the same [`Rows`], so the three
//! formats always agree.

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

/// A text table fitted to a width shrinks no column below this many characters (or its own
/// width, if less): past that, its columns wrap into several tables, one under the other.
pub const MIN_COLUMN: usize = 6;

/// The width text tables should fit in: `COLUMNS` if it is set to a number, else the width of
/// the terminal stdout is, else `None` (a pipe or a file gets whole lines).
pub fn terminal_width() -> Option<usize> {
    let columns = std::env::var("COLUMNS").ok();
    columns
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
        .or_else(|| {
            terminal_size::terminal_size_of(std::io::stdout())
                .map(|(terminal_size::Width(w), _)| usize::from(w))
        })
}

/// A result: named columns and rows of JSON values (null, booleans, numbers, strings;
/// timestamps are RFC 3339 UTC strings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// How many leading columns tell rows apart (a diff's change and key; 0 means 1): a text
    /// table too wide for the terminal wraps into several, each repeating them.
    pub lead: usize,
}

impl Rows {
    pub fn new(columns: &[&str]) -> Self {
        Self {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
            lead: 0,
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
            lead: 0,
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
        self.render_within(format, truncate, None)
    }

    /// Render in `format`; when `truncate`, text values longer than [`TRUNCATE_AT`] are cut and
    /// a text table is laid out within `width` characters (see [`fit`] and [`blocks`]). JSON
    /// and CSV are never cut.
    pub fn render_within(&self, format: Format, truncate: bool, width: Option<usize>) -> String {
        match format {
            Format::Text => self.text(truncate, width.filter(|_| truncate)),
            Format::Json => self.json_lines(),
            Format::Csv => self.csv(),
        }
    }

    /// Print to stdout, a text table within `width` (a closed pipe ends the command quietly).
    pub fn print(&self, format: Format, truncate: bool, width: Option<usize>) {
        crate::output::stdout(self.render_within(format, truncate, width).as_bytes());
    }

    fn text(&self, truncate: bool, width: Option<usize>) -> String {
        let header: Vec<String> = self.columns.iter().map(|c| one_line(c)).collect();
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
                    .chain([header[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let Some(width) = width else {
            let all: Vec<usize> = (0..widths.len()).collect();
            return table(&header, &cells, &all, &widths);
        };
        let mut text = String::new();
        let lead = self.lead.max(1);
        for (n, block) in blocks(&header, &widths, lead, width).iter().enumerate() {
            if n > 0 {
                text.push('\n');
            }
            let natural: Vec<usize> = block.iter().map(|&i| widths[i]).collect();
            let fitted = fit(&natural, lead.min(block.len()), width);
            text.push_str(&table(&header, &cells, block, &fitted));
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

/// The characters a table line takes with columns of these widths: `| a | b |`.
fn line_width(widths: &[usize]) -> usize {
    widths.iter().map(|w| w + 3).sum::<usize>() + 1
}

/// The narrowest a column of natural width `w` is cut to.
fn floor(w: usize) -> usize {
    w.min(MIN_COLUMN)
}

/// Column widths within `width`: the widest column shrinks first, one character at a time, none
/// below its [`floor`], the `lead` columns (what tells rows apart) only once the others are at
/// theirs. The result is wider than `width` only if the floors are.
fn fit(natural: &[usize], lead: usize, width: usize) -> Vec<usize> {
    let mut widths = natural.to_vec();
    while line_width(&widths) > width {
        let widest = |from: usize| {
            (from..widths.len())
                .filter(|&i| widths[i] > floor(natural[i]))
                .max_by_key(|&i| (widths[i], std::cmp::Reverse(i)))
        };
        match widest(lead).or_else(|| widest(0)) {
            Some(i) => widths[i] -= 1,
            None => break,
        }
    }
    widths
}

/// The columns of each table. One table if its columns fit in `width` at their floors (then
/// [`fit`] cuts them); else the columns wrap, in order, each table after the first repeating the
/// `lead` columns (a commit's version, a diff's change and key) so that its rows can be told
/// apart, and holding as many as fit whole, or cut to half of what the lead columns leave: a
/// diff's `old_<c>` and the `new_<c>` after it stay side by side.
fn blocks(header: &[String], widths: &[usize], lead: usize, width: usize) -> Vec<Vec<usize>> {
    let floors: Vec<usize> = widths.iter().map(|&w| floor(w)).collect();
    let lead = lead.min(widths.len());
    if line_width(&floors) <= width || widths.len() <= lead {
        return vec![(0..widths.len()).collect()];
    }
    let free = width.saturating_sub(line_width(&widths[..lead]));
    let cap = (free / 2).saturating_sub(3).max(MIN_COLUMN);
    let packed: Vec<usize> = widths
        .iter()
        .enumerate()
        .map(|(i, &w)| if i < lead { w } else { w.min(cap) })
        .collect();
    let pair = |i: usize| {
        let old = header[i].strip_prefix("old_");
        let fits = || {
            let with: Vec<usize> = (0..lead).chain([i, i + 1]).map(|j| packed[j]).collect();
            line_width(&with) <= width
        };
        old.is_some() && header.get(i + 1).and_then(|h| h.strip_prefix("new_")) == old && fits()
    };
    let mut blocks: Vec<Vec<usize>> = Vec::new();
    let mut block: Vec<usize> = (0..lead).collect();
    let mut i = lead;
    while i < widths.len() {
        let unit: Vec<usize> = if pair(i) { vec![i, i + 1] } else { vec![i] };
        let with: Vec<usize> = block.iter().chain(&unit).map(|&j| packed[j]).collect();
        // A table holds at least one column of its own.
        if block.len() > lead && line_width(&with) > width {
            blocks.push(std::mem::replace(&mut block, (0..lead).collect()));
        }
        i += unit.len();
        block.extend(unit);
    }
    blocks.push(block);
    blocks
}

/// An aligned table of the `columns` of the header and cells, each cut to its width with `…`.
fn table(header: &[String], cells: &[Vec<String>], columns: &[usize], widths: &[usize]) -> String {
    let rule = format!(
        "+{}+\n",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let line = |values: &[String]| {
        let padded: Vec<String> = columns
            .iter()
            .zip(widths)
            .map(|(&i, &w)| {
                let v = cut(&values[i], w);
                format!(" {v}{} ", " ".repeat(w - v.chars().count()))
            })
            .collect();
        format!("|{}|\n", padded.join("|"))
    };
    let mut text = rule.clone();
    text.push_str(&line(header));
    text.push_str(&rule);
    for row in cells {
        text.push_str(&line(row));
    }
    if !cells.is_empty() {
        text.push_str(&rule);
    }
    text
}

/// `text` in at most `width` characters: cut with `…` if it is longer.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
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
        other => one_line(&plain(other)),
    };
    if truncate && text.chars().count() > TRUNCATE_AT {
        let mut cut: String = text.chars().take(TRUNCATE_AT - 3).collect();
        cut.push_str("...");
        cut
    } else {
        text
    }
}

/// Text on one line: line breaks shown as `\\n` and `\\r`, tabs as spaces.
fn one_line(text: &str) -> String {
    text.replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', " ")
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
    fn text_tables_fit_a_width_by_cutting_the_widest_columns() {
        let text = sample().render_within(Format::Text, true, Some(30));
        assert_eq!(
            text,
            "+----+----------------+------+\n\
             | id | name           | note |\n\
             +----+----------------+------+\n\
             | 1  | Ada, \"the fir… | NULL |\n\
             | 22 | xxxxxxxxxxxxx… | 1.5  |\n\
             +----+----------------+------+\n"
        );
        // Wide enough, or not cut at all: the table as it was.
        let whole = sample().render(Format::Text, true);
        assert_eq!(sample().render_within(Format::Text, true, Some(200)), whole);
        assert_eq!(
            sample().render_within(Format::Text, false, Some(30)),
            sample().render(Format::Text, false)
        );
        assert_eq!(
            sample().render_within(Format::Json, true, Some(30)),
            sample().render(Format::Json, true)
        );
    }

    #[test]
    fn too_many_columns_wrap_into_tables_that_repeat_the_lead() {
        let mut rows = Rows::new(&["change", "k", "old_a", "new_a", "old_b", "new_b"]);
        rows.lead = 2;
        rows.push(vec![
            json!("changed"),
            json!(7),
            json!("a".repeat(12)),
            json!("A".repeat(12)),
            json!(1),
            json!(2),
        ]);
        let text = rows.render_within(Format::Text, true, Some(34));
        let expected = "+---------+---+--------+---------+\n\
                        | change  | k | old_a  | new_a   |\n\
                        +---------+---+--------+---------+\n\
                        | changed | 7 | aaaaa… | AAAAAA… |\n\
                        +---------+---+--------+---------+\n\
                        \n\
                        +---------+---+-------+-------+\n\
                        | change  | k | old_b | new_b |\n\
                        +---------+---+-------+-------+\n\
                        | changed | 7 | 1     | 2     |\n\
                        +---------+---+-------+-------+\n";
        assert_eq!(text, expected);
        assert!(text.lines().all(|l| l.chars().count() <= 34), "{text}");
        // Too narrow for a pair: old_a and new_a wrap apart, each whole.
        let text = rows.render_within(Format::Text, true, Some(30));
        assert!(text.contains("| changed | 7 | aaaaaaaaaaaa |\n"), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 30), "{text}");
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

//! How the inspect commands print what they found: an aligned text table for people (long values
//! cut short unless `--no-truncate`, and laid out within the terminal's width), one JSON object
//! per line or CSV for programs (never cut). Every command builds the same [`Rows`], so the three
//! formats always agree.
//!
//! The rows of a query (`show`, `sql`) can be more than memory holds: they come as a
//! [`RowStream`], printed a record batch at a time in JSON and CSV, through the writer
//! [`Rows`] renders with (`Lines`), so both give the same bytes. A text table needs its
//! columns' widths before its first line: it holds the rows it shows (`show`'s limit).

use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use deltalake::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{
    DataType, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
    UInt64Type,
};
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::output;

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
    pub fn from_batches(schema: &Schema, batches: &[RecordBatch]) -> Result<Self> {
        let mut rows = Self {
            columns: column_names(schema),
            rows: Vec::new(),
            lead: 0,
        };
        for batch in batches {
            rows.rows.extend(batch_rows(batch)?);
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
            Format::Json | Format::Csv => self.lines(format),
        }
    }

    /// Print to `out` (stdout: [`output::results`]), a text table within `width`. A closed
    /// pipe (`| head`) ends the output quietly; any other failure to write is an error.
    pub fn print(
        &self,
        format: Format,
        truncate: bool,
        width: Option<usize>,
        mut out: impl Write,
    ) -> Result<()> {
        let text = self.render_within(format, truncate, width);
        output::delivered(out.write_all(text.as_bytes()).and_then(|()| out.flush()))?;
        Ok(())
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

    /// JSON lines or CSV, through the writer a [`RowStream`] prints with.
    fn lines(&self, format: Format) -> String {
        let mut lines = Lines::new(format, &self.columns, Vec::new()).expect("writing to memory");
        for row in &self.rows {
            lines.row(row).expect("writing to memory");
        }
        String::from_utf8(lines.finish().expect("writing to memory")).expect("UTF-8 values")
    }
}

/// The names of a schema's columns.
fn column_names(schema: &Schema) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// A batch's rows as JSON values.
fn batch_rows(batch: &RecordBatch) -> Result<Vec<Vec<Value>>> {
    let mut columns = batch
        .columns()
        .iter()
        .map(|column| json_values(column).map(Vec::into_iter))
        .collect::<Result<Vec<_>>>()?;
    Ok((0..batch.num_rows())
        .map(|_| {
            columns
                .iter_mut()
                .map(|column| column.next().expect("a value per row"))
                .collect()
        })
        .collect())
}

/// Rows written one at a time as JSON lines or CSV (its header first). [`Rows`] renders and a
/// [`RowStream`] prints through this one writer, so both give the same bytes.
enum Lines<W: Write> {
    /// One object per row. `keys` are the object's keys, as JSON text, each with the column it
    /// takes its value from: a name given to two columns (a join's `mrn`) is one key, where the
    /// first column stood, with the last column's value, as a JSON object built from the row
    /// (`serde_json::Map` keeps the order keys came in) had it.
    Json {
        keys: Vec<(String, usize)>,
        out: W,
    },
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> Lines<W> {
    /// A writer of JSON lines (any format but CSV) or of CSV, whose header it writes.
    fn new(format: Format, columns: &[String], out: W) -> io::Result<Self> {
        if format == Format::Csv {
            let mut writer = csv::Writer::from_writer(out);
            writer.write_record(columns).map_err(csv_io)?;
            return Ok(Self::Csv(Box::new(writer)));
        }
        let mut keys: Vec<(String, usize)> = Vec::with_capacity(columns.len());
        for (i, name) in columns.iter().enumerate() {
            let key = Value::String(name.clone()).to_string();
            match keys.iter_mut().find(|(k, _)| *k == key) {
                Some(seen) => seen.1 = i,
                None => keys.push((key, i)),
            }
        }
        Ok(Self::Json { keys, out })
    }

    /// One row: one value per column.
    fn row(&mut self, row: &[Value]) -> io::Result<()> {
        match self {
            Self::Json { keys, out } => {
                // `Value::Object(..).to_string()`'s bytes, without building the object.
                out.write_all(b"{")?;
                for (n, (key, i)) in keys.iter().enumerate() {
                    if n > 0 {
                        out.write_all(b",")?;
                    }
                    out.write_all(key.as_bytes())?;
                    out.write_all(b":")?;
                    serde_json::to_writer(&mut *out, &row[*i]).map_err(io::Error::from)?;
                }
                out.write_all(b"}\n")
            }
            Self::Csv(writer) => writer.write_record(row.iter().map(plain)).map_err(csv_io),
        }
    }

    /// Flush what is buffered; the writer back.
    fn finish(self) -> io::Result<W> {
        match self {
            Self::Json { mut out, .. } => {
                out.flush()?;
                Ok(out)
            }
            Self::Csv(writer) => {
                let mut out = (*writer).into_inner().map_err(|e| e.into_error())?;
                out.flush()?;
                Ok(out)
            }
        }
    }
}

/// A CSV writer's failure as the I/O error it is (a closed pipe stays one).
fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("CSV: {other:?}")),
    }
}

/// The rows of a query as they come: the record batches DataFusion produces, at most `limit`
/// rows of them printed. Printing reads a batch, writes it, and drops it.
pub struct RowStream {
    schema: SchemaRef,
    batches: BoxStream<'static, Result<RecordBatch>>,
    /// At most this many rows (`None`: all). One more may come, to tell that rows were left out.
    limit: Option<usize>,
}

/// What printing a [`RowStream`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Printed {
    /// Rows written (to `out`, or to a buffer on the way when the pipe closed).
    pub rows: usize,
    /// Whether the limit left rows out.
    pub more: bool,
    /// Whether the reader went away first (a closed pipe: `| head`).
    pub closed: bool,
}

impl RowStream {
    pub fn new(
        schema: SchemaRef,
        batches: BoxStream<'static, Result<RecordBatch>>,
        limit: Option<usize>,
    ) -> Self {
        Self {
            schema,
            batches,
            limit,
        }
    }

    /// Read the rows (as many as the limit lets), each batch cut to what is left of it, with
    /// `each(batch)` for each non-empty one; whether the limit left rows out.
    async fn read(&mut self, mut each: impl FnMut(RecordBatch) -> Result<bool>) -> Result<bool> {
        let mut left = self.limit;
        while let Some(batch) = self.batches.next().await {
            let batch = batch?;
            let take = left.map_or(batch.num_rows(), |left| left.min(batch.num_rows()));
            if take > 0 && !each(batch.slice(0, take))? {
                return Ok(false);
            }
            if take < batch.num_rows() {
                return Ok(true);
            }
            left = left.map(|left| left - take);
        }
        Ok(false)
    }

    /// The rows, as many as the limit lets, and whether it left rows out.
    pub async fn collect(mut self) -> Result<(Rows, bool)> {
        let mut rows = Rows {
            columns: column_names(&self.schema),
            ..Rows::default()
        };
        let more = self
            .read(|batch| {
                rows.rows.extend(batch_rows(&batch)?);
                Ok(true)
            })
            .await?;
        Ok((rows, more))
    }

    /// Print to `out` (stdout: [`output::results`]) in `format`, as [`Rows::print`] would print
    /// the same rows. JSON and CSV are written a batch at a time; a text table once its rows
    /// are read. A closed pipe stops the reading and ends the output quietly.
    pub async fn print(
        mut self,
        format: Format,
        truncate: bool,
        width: Option<usize>,
        mut out: impl Write,
    ) -> Result<Printed> {
        if format == Format::Text {
            let (rows, more) = self.collect().await?;
            let text = rows.render_within(format, truncate, width);
            let delivered =
                output::delivered(out.write_all(text.as_bytes()).and_then(|()| out.flush()))?;
            return Ok(Printed {
                rows: rows.rows.len(),
                more,
                closed: !delivered,
            });
        }
        let columns = column_names(&self.schema);
        let mut lines = match Lines::new(format, &columns, &mut out) {
            Ok(lines) => lines,
            Err(e) => return closed(e, 0),
        };
        let mut printed = 0;
        let mut failed = None;
        let more = self
            .read(|batch| {
                for row in batch_rows(&batch)? {
                    if let Err(e) = lines.row(&row) {
                        failed = Some(e);
                        return Ok(false);
                    }
                    printed += 1;
                }
                Ok(true)
            })
            .await?;
        if let Some(e) = failed.or_else(|| lines.finish().err()) {
            return closed(e, printed);
        }
        Ok(Printed {
            rows: printed,
            more,
            closed: false,
        })
    }
}

/// Printing stopped by a failed write: a closed pipe, or else the error it is.
fn closed(e: io::Error, rows: usize) -> Result<Printed> {
    output::delivered(Err(e))?;
    Ok(Printed {
        rows,
        more: false,
        closed: true,
    })
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use deltalake::arrow::array::{Int64Array, StringViewArray};
    use serde_json::json;

    use super::*;

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
    fn json_lines_are_the_objects_of_the_rows() {
        // A name given to two columns (a join's) is one key, as a JSON object has it.
        let mut rows = Rows::new(&["mrn", "na\"me", "mrn", "é\n"]);
        rows.push(vec![
            json!(1),
            json!("a\u{7f}\"b"),
            json!(2),
            json!([1.5, null]),
        ]);
        rows.push(vec![
            Value::Null,
            json!(true),
            Value::Null,
            json!({"k": "v"}),
        ]);
        let objects: String = rows
            .rows
            .iter()
            .map(|row| {
                let object: serde_json::Map<String, Value> =
                    rows.columns.iter().cloned().zip(row.clone()).collect();
                format!("{}\n", Value::Object(object))
            })
            .collect();
        assert_eq!(rows.render(Format::Json, true), objects);
        assert!(objects.starts_with("{\"mrn\":2,"), "{objects}");
    }

    /// A batch of ids and names, every third name null.
    fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
        let names: Vec<Option<String>> = ids
            .clone()
            .map(|i| (i % 3 != 0).then(|| format!("n{i}")))
            .collect();
        RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from_iter_values(ids)) as ArrayRef,
            ),
            (
                "name",
                Arc::new(StringViewArray::from_iter(names)) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    /// Batches of 4, 0 and 3 rows: ids 0 to 6.
    fn batches() -> Vec<RecordBatch> {
        vec![batch(0..4), batch(4..4), batch(4..7)]
    }

    /// A stream of `batches`, counting in `read` the batches read from it.
    fn stream(
        batches: Vec<RecordBatch>,
        limit: Option<usize>,
        read: Arc<AtomicUsize>,
    ) -> RowStream {
        let schema = batches[0].schema();
        let batches = futures::stream::iter(batches)
            .inspect(move |_| {
                read.fetch_add(1, Ordering::Relaxed);
            })
            .map(Ok)
            .boxed();
        RowStream::new(schema, batches, limit)
    }

    #[tokio::test]
    async fn a_stream_prints_the_bytes_its_rows_render() {
        let all = Rows::from_batches(&batches()[0].schema(), &batches()).unwrap();
        assert_eq!(all.rows.len(), 7);
        for format in [Format::Json, Format::Csv, Format::Text] {
            for limit in [None, Some(1), Some(4), Some(5), Some(7), Some(9)] {
                let mut expected = all.clone();
                expected.rows.truncate(limit.unwrap_or(usize::MAX));
                let mut out = Vec::new();
                let printed = stream(batches(), limit, Arc::default())
                    .print(format, true, None, &mut out)
                    .await
                    .unwrap();
                let case = format!("{format:?} {limit:?}");
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    expected.render(format, true),
                    "{case}"
                );
                let more = limit.is_some_and(|limit| limit < 7);
                let rows = expected.rows.len();
                assert_eq!(
                    printed,
                    Printed {
                        rows,
                        more,
                        closed: false
                    },
                    "{case}"
                );
            }
        }
    }

    /// Takes `room` bytes, then fails with `kind`.
    struct Pipe {
        room: usize,
        kind: io::ErrorKind,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(self.kind.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_closed_pipe_stops_the_reading_and_other_failures_are_errors() {
        // 50 batches of 1,000 rows, more than any buffer on the way holds.
        let many = || (0..50).map(|b| batch(b * 1000..(b + 1) * 1000)).collect();
        for format in [Format::Json, Format::Csv] {
            let read = Arc::new(AtomicUsize::new(0));
            let pipe = Pipe {
                room: 10,
                kind: io::ErrorKind::BrokenPipe,
            };
            let printed = stream(many(), None, read.clone())
                .print(format, true, None, pipe)
                .await
                .unwrap();
            assert!(printed.closed && !printed.more, "{format:?}: {printed:?}");
            // Rows in the writers' buffers count as written: a CSV writer holds 8 KiB.
            assert!(printed.rows < 2000, "{format:?}: {printed:?}");
            assert!(read.load(Ordering::Relaxed) <= 2, "{format:?}: {read:?}");

            let full = Pipe {
                room: 10,
                kind: io::ErrorKind::StorageFull,
            };
            let err = stream(many(), None, Arc::default())
                .print(format, true, None, full)
                .await
                .unwrap_err();
            assert!(
                err.to_string().contains("write the results to stdout"),
                "{err}"
            );
        }
    }

    #[test]
    fn instants_are_rfc3339_utc() {
        assert_eq!(millis(1_700_000_000_123), json!("2023-11-14T22:13:20.123Z"));
        assert_eq!(millis(1_700_000_000_000), json!("2023-11-14T22:13:20Z"));
    }
}

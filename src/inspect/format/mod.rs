//! How the inspect commands print what they found: an aligned text table for people (long values
//! cut short unless `--no-truncate`, and laid out within the terminal's width), one JSON object
//! per line or CSV for programs (never cut). Every command builds the same [`Rows`], so the three
//! formats always agree.
//!
//! The rows of a query (`show`, `sql`) can be more than memory holds: they come as a
//! [`RowStream`], printed a record batch at a time in JSON and CSV, through the writer
//! [`Rows`] renders with (`Lines`), so both give the same bytes. A text table needs its
//! columns' widths before its first line: it holds the rows it shows (`show`'s limit).
//!
//! One concern per file: [`text`] lays text tables out within a width, [`lines`] writes JSON
//! lines and CSV (and streams a query's batches through them), [`values`] turns Arrow columns
//! into the JSON values every format renders.

mod lines;
#[cfg(test)]
mod tests;
mod text;
mod values;

use std::io::Write;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::Schema;
use serde_json::Value;

use crate::error::Result;
use crate::output;

pub use lines::{Printed, RowStream};
pub use text::plain;
pub use values::{millis, rfc3339};

use lines::Lines;
use text::{blocks, fit, one_line, table, text_cell};
use values::json_values;

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
pub(super) fn column_names(schema: &Schema) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// A batch's rows as JSON values.
pub(super) fn batch_rows(batch: &RecordBatch) -> Result<Vec<Vec<Value>>> {
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

//! The tracker files' reader: JSON text straight into Arrow builders, without a `Value` tree.
//!
//! A file is either one JSON array of objects (the lab's format) or newline-delimited JSON (one
//! object per line). Values may be strings or numbers; a number is kept as the text it was
//! written with. Keys the bronze schema does not know are kept, as a JSON object, in
//! `_rescued_data`; missing keys are null.
//!
//! What cannot be used is never dropped: a file that is not readable as a whole (empty, invalid
//! UTF-8, not JSON, truncated, neither an array nor objects) is a [`FileError`], and an element
//! that cannot be a row (not an object, a key holding a list...) is a [`Reject`] with its line.
//!
//! Two scanners: [`fast`] reads the lab's shape in one pass; [`general`] validates any JSON
//! and cuts it into elements, for everything else. Both append through [`rows`], the builder
//! of bronze's columns.

mod fast;
mod general;
mod rows;
#[cfg(test)]
mod tests;

use deltalake::arrow::array::RecordBatch;

use fast::read_plain_array;
use general::{array_elements, validate};
use rows::RowBuilder;

/// Rows per Arrow batch handed to the sink: bounds memory by a batch, not by a file.
pub const BATCH_ROWS: usize = 16 * 1024;

/// How many characters of a bad element or file to keep as its excerpt.
const EXCERPT_CHARS: usize = 200;

/// Where the rows of one file come from, stamped on each of them.
#[derive(Debug, Clone)]
pub struct Lineage {
    pub source_file: String,
    pub batch_id: i64,
    /// Microseconds since the epoch, UTC.
    pub ingested_at: i64,
    /// The `_position` of the file's first row: the rows of the batch's earlier files.
    pub first_position: i64,
}

/// A file that cannot be read as a whole: none of its rows is used.
#[derive(Debug, Clone, PartialEq)]
pub struct FileError {
    pub line: Option<u64>,
    pub message: String,
    pub excerpt: String,
}

/// One element of a file that cannot be a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub line: u64,
    pub message: String,
    pub excerpt: String,
}

/// What reading one file gave.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FileOutcome {
    pub rows: usize,
    pub rejects: Vec<Reject>,
}

/// Read one tracker file's bytes, handing batches of at most [`BATCH_ROWS`] rows to `sink`.
/// On a [`FileError`] no batch has been handed over.
pub fn read_tracker(
    bytes: &[u8],
    lineage: &Lineage,
    sink: &mut dyn FnMut(RecordBatch),
) -> Result<FileOutcome, FileError> {
    read_tracker_with(bytes, lineage, sink, true)
}

/// [`read_tracker`]; `one_pass`: try [`read_plain_array`] first (off in tests, to compare).
fn read_tracker_with(
    bytes: &[u8],
    lineage: &Lineage,
    sink: &mut dyn FnMut(RecordBatch),
    one_pass: bool,
) -> Result<FileOutcome, FileError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        FileError {
            line: Some(line_of(valid, valid.len())),
            message: format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            excerpt: excerpt(&String::from_utf8_lossy(
                &bytes[e.valid_up_to().saturating_sub(40)..],
            )),
        }
    })?;
    let start = text.trim_start();
    let mut rows = RowBuilder::new(lineage);
    let mut outcome = FileOutcome::default();
    match start.as_bytes().first() {
        None => {
            return Err(FileError {
                line: None,
                message: "the file is empty".into(),
                excerpt: String::new(),
            });
        }
        Some(b'[') => {
            if one_pass && let Some((batches, rows)) = read_plain_array(text, lineage) {
                batches.into_iter().for_each(sink);
                return Ok(FileOutcome {
                    rows,
                    rejects: Vec::new(),
                });
            }
            validate(text)?;
            let mut lines = LineCounter::new(text);
            for (start, end) in array_elements(text.as_bytes()) {
                let line = lines.line_at(start);
                rows.push_element(&text[start..end], line, true, &mut outcome);
                rows.flush_if_full(sink);
            }
        }
        Some(b'{') => {
            for (index, line_text) in text.lines().enumerate() {
                let line_text = line_text.trim();
                if line_text.is_empty() {
                    continue;
                }
                rows.push_element(line_text, index as u64 + 1, false, &mut outcome);
                rows.flush_if_full(sink);
            }
        }
        Some(_) => {
            return Err(FileError {
                line: Some(1),
                message: "not JSON: expected an array `[...]` or one object per line".into(),
                excerpt: excerpt(start),
            });
        }
    }
    outcome.rows = rows.total;
    rows.flush(sink);
    Ok(outcome)
}

/// Turns byte offsets, met in increasing order, into 1-based line numbers.
pub(super) struct LineCounter<'a> {
    text: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    pub(super) fn line_at(&mut self, offset: usize) -> u64 {
        let offset = offset.min(self.text.len());
        self.line += self.text[self.offset..offset]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
        self.offset = offset;
        self.line
    }
}

pub(super) fn line_of(bytes: &[u8], offset: usize) -> u64 {
    1 + bytes[..offset].iter().filter(|b| **b == b'\n').count() as u64
}

pub(super) fn nth_line(text: &str, line: usize) -> &str {
    text.lines().nth(line.saturating_sub(1)).unwrap_or("")
}

pub(super) fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

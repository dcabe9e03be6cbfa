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

use std::borrow::Cow;
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::de::IgnoredAny;

/// The source columns of a tracker record, in the bronze table's order.
pub const SOURCE_COLUMNS: [&str; 4] = ["device_id", "heartrate", "mrn", "time"];

/// Rows per Arrow batch handed to the sink: bounds memory by a batch, not by a file.
pub const BATCH_ROWS: usize = 16 * 1024;

/// How many characters of a bad element or file to keep as its excerpt.
const EXCERPT_CHARS: usize = 200;

/// The Arrow schema of `fact_heartrate_bronze`.
pub fn bronze_schema() -> SchemaRef {
    let mut fields: Vec<Field> = SOURCE_COLUMNS
        .iter()
        .map(|name| Field::new(*name, DataType::Utf8, true))
        .collect();
    fields.extend([
        Field::new("_source_file", DataType::Utf8, false),
        Field::new("_batch_id", DataType::Int64, false),
        Field::new(
            "_ingested_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("_rescued_data", DataType::Utf8, true),
        // The row's place in its micro-batch: the batch's files in plan order, each file's rows
        // in order, from 0. With `_batch_id`, the total delivery order that decides which
        // delivery of a reading is the last (silver never infers it from scan order).
        Field::new(POSITION, DataType::Int64, false),
    ]);
    Arc::new(Schema::new(fields))
}

/// The bronze column holding a row's delivery position within its batch.
pub const POSITION: &str = "_position";

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

/// The lab's shape read in one pass, validating as it goes: an array of flat objects whose
/// values are strings without escapes, numbers or null. Anything else, valid or not (an escape,
/// a nested value, a syntax error...), gives `None`, and the general path (validate the whole
/// text, then cut it into elements) reads the file and says what is wrong: both paths give the
/// same rows for what this one accepts (tested on random and mutated files).
fn read_plain_array(text: &str, lineage: &Lineage) -> Option<(Vec<RecordBatch>, usize)> {
    let mut c = Cursor {
        b: text.as_bytes(),
        i: 0,
    };
    let mut rows = RowBuilder::new(lineage);
    let mut batches = Vec::new();
    c.ws();
    c.eat(b'[')?;
    c.ws();
    if c.peek() == Some(b']') {
        c.i += 1;
    } else {
        loop {
            plain_object(&mut c, text, &mut rows)?;
            rows.flush_if_full(&mut |b| batches.push(b));
            c.ws();
            match c.next()? {
                b',' => c.ws(),
                b']' => break,
                _ => return None,
            }
        }
    }
    c.ws();
    if c.i != text.len() {
        return None;
    }
    let total = rows.total;
    rows.flush(&mut |b| batches.push(b));
    Some((batches, total))
}

/// One flat object, appended as a row.
fn plain_object(c: &mut Cursor<'_>, text: &str, rows: &mut RowBuilder<'_>) -> Option<()> {
    c.eat(b'{')?;
    c.ws();
    let mut values: [Option<&str>; 4] = [None; 4];
    let mut seen = 0u8;
    let mut rescued: Vec<String> = Vec::new();
    if c.peek() == Some(b'}') {
        c.i += 1;
    } else {
        loop {
            let key_start = c.i;
            let key = c.plain_string(text)?;
            let key_raw = &text[key_start..c.i];
            c.ws();
            c.eat(b':')?;
            c.ws();
            let value_start = c.i;
            let value = match c.peek()? {
                b'"' => Some(c.plain_string(text)?),
                b'-' | b'0'..=b'9' => {
                    c.number()?;
                    Some(&text[value_start..c.i])
                }
                b'n' => {
                    c.literal(b"null")?;
                    None
                }
                _ => return None,
            };
            // A key given twice: the general path rejects the element, with its line.
            match SOURCE_COLUMNS.iter().position(|c| *c == key) {
                Some(index) if seen & (1 << index) != 0 => return None,
                Some(index) => {
                    seen |= 1 << index;
                    values[index] = value;
                }
                None if rescued
                    .iter()
                    .any(|r| r.starts_with(&format!("{key_raw}:"))) =>
                {
                    return None;
                }
                None => rescued.push(format!("{key_raw}:{}", &text[value_start..c.i])),
            }
            c.ws();
            match c.next()? {
                b',' => c.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    let rescued = (!rescued.is_empty()).then(|| format!("{{{}}}", rescued.join(",")));
    rows.push_row(values, rescued.as_deref());
    Some(())
}

/// A position in JSON text, for [`read_plain_array`].
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.i += 1;
        Some(byte)
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    /// A string without escapes or control characters: its content.
    fn plain_string<'t>(&mut self, text: &'t str) -> Option<&'t str> {
        self.eat(b'"')?;
        let start = self.i;
        let len = self.b[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        self.i = start + len;
        self.eat(b'"')?;
        Some(&text[start..start + len])
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    /// A number as JSON writes it: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            (self.digits() > 0).then_some(())?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            (self.digits() > 0).then_some(())?;
        }
        Some(())
    }
}

/// Check that the whole text is one valid JSON value, without building it.
fn validate(text: &str) -> Result<(), FileError> {
    serde_json::from_str::<IgnoredAny>(text)
        .map(drop)
        .map_err(|e| {
            let message = match e.classify() {
                serde_json::error::Category::Eof => format!("truncated JSON: {e}"),
                _ => format!("not valid JSON: {e}"),
            };
            FileError {
                line: Some(e.line() as u64),
                excerpt: excerpt(nth_line(text, e.line())),
                message,
            }
        })
}

/// Appends rows to the bronze columns and hands out full batches.
struct RowBuilder<'l> {
    lineage: &'l Lineage,
    columns: [StringBuilder; 4],
    rescued: StringBuilder,
    pending: usize,
    total: usize,
}

impl<'l> RowBuilder<'l> {
    fn new(lineage: &'l Lineage) -> Self {
        Self {
            lineage,
            columns: std::array::from_fn(|_| StringBuilder::new()),
            rescued: StringBuilder::new(),
            pending: 0,
            total: 0,
        }
    }

    /// Parse one element; append it as a row, or record why it cannot be one.
    fn push_element(&mut self, raw: &str, line: u64, validated: bool, outcome: &mut FileOutcome) {
        match parse_element(raw, validated) {
            Ok(element) => self.push_row(
                element.values.each_ref().map(|v| v.as_deref()),
                element.rescued_json().as_deref(),
            ),
            Err(message) => outcome.rejects.push(Reject {
                line,
                message,
                excerpt: excerpt(raw),
            }),
        }
    }

    fn push_row(&mut self, values: [Option<&str>; 4], rescued: Option<&str>) {
        for (builder, value) in self.columns.iter_mut().zip(values) {
            builder.append_option(value);
        }
        self.rescued.append_option(rescued);
        self.pending += 1;
        self.total += 1;
    }

    fn flush_if_full(&mut self, sink: &mut dyn FnMut(RecordBatch)) {
        if self.pending >= BATCH_ROWS {
            self.flush(sink);
        }
    }

    fn flush(&mut self, sink: &mut dyn FnMut(RecordBatch)) {
        if self.pending == 0 {
            return;
        }
        let n = self.pending;
        self.pending = 0;
        let mut columns: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        columns.push(Arc::new(StringArray::from(vec![
            self.lineage
                .source_file
                .as_str();
            n
        ])));
        columns.push(Arc::new(Int64Array::from(vec![self.lineage.batch_id; n])));
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(vec![self.lineage.ingested_at; n]).with_timezone("UTC"),
        ));
        columns.push(Arc::new(self.rescued.finish()));
        let first = self.lineage.first_position + (self.total - n) as i64;
        columns.push(Arc::new(Int64Array::from_iter_values(
            first..first + n as i64,
        )));
        sink(RecordBatch::try_new(bronze_schema(), columns).expect("columns match the schema"));
    }
}

/// One parsed element: the four source values as text, and any keys bronze does not know.
struct Element<'a> {
    values: [Option<Cow<'a, str>>; 4],
    /// `"key":value` pairs, JSON text, in the order they came.
    rescued: Vec<String>,
}

impl Element<'_> {
    fn rescued_json(&self) -> Option<String> {
        (!self.rescued.is_empty()).then(|| format!("{{{}}}", self.rescued.join(",")))
    }
}

/// One element (array item or NDJSON line) into an [`Element`], or the reason it cannot be one.
/// `validated`: the text is known to be valid JSON (an item of a validated array).
fn parse_element(raw: &str, validated: bool) -> Result<Element<'_>, String> {
    // serde_json says whether it is valid JSON; the scanner below then only cuts it into parts.
    if !validated {
        serde_json::from_str::<IgnoredAny>(raw).map_err(|e| format!("not valid JSON: {e}"))?;
    }
    let kind = match raw.as_bytes()[0] {
        b'{' => return parse_object(raw),
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number",
    };
    Err(format!("the element is {kind}, expected an object"))
}

/// The members of a valid JSON object: the source columns' values as text, the rest rescued.
fn parse_object(raw: &str) -> Result<Element<'_>, String> {
    let b = raw.as_bytes();
    let mut element = Element {
        values: [None, None, None, None],
        rescued: Vec::new(),
    };
    let mut keys: Vec<Cow<'_, str>> = Vec::new();
    let mut i = skip_ws(b, 1);
    while b[i] != b'}' {
        let key_end = string_end(b, i);
        let key_raw = &raw[i..key_end];
        let key = unescape(key_raw)?;
        // JSON leaves duplicate keys undefined; keeping either value would be a silent choice.
        if keys.contains(&key) {
            return Err(format!("the key {key:?} appears twice in the object"));
        }
        keys.push(key.clone());
        i = skip_ws(b, key_end) + 1; // past ':'
        i = skip_ws(b, i);
        let value_end = value_end(b, i);
        let value = &raw[i..value_end];
        match SOURCE_COLUMNS.iter().position(|c| *c == key) {
            Some(index) => {
                element.values[index] =
                    scalar_text(value).map_err(|reason| format!("{key} {reason}"))?;
            }
            None => element.rescued.push(format!("{key_raw}:{value}")),
        }
        i = skip_ws(b, value_end);
        if b[i] == b',' {
            i = skip_ws(b, i + 1);
        }
    }
    Ok(element)
}

/// The (start, end) byte ranges of the items of a valid top-level JSON array.
fn array_elements(b: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut i = skip_ws(b, skip_ws(b, 0) + 1); // past '['
    std::iter::from_fn(move || {
        if i >= b.len() || b[i] == b']' {
            return None;
        }
        let start = i;
        let end = value_end(b, i);
        i = skip_ws(b, end);
        if b[i] == b',' {
            i = skip_ws(b, i + 1);
        }
        Some((start, end))
    })
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\n' | b'\r' | b'\t') {
        i += 1;
    }
    i
}

/// The end of the JSON string starting at `i` (its opening quote), past the closing quote.
fn string_end(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while b[i] != b'"' {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

/// The end of the valid JSON value starting at `i`.
fn value_end(b: &[u8], mut i: usize) -> usize {
    match b[i] {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match b[i] {
                    b'"' => {
                        i = string_end(b, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            {
                i += 1;
            }
            i
        }
    }
}

/// A JSON string's content (`raw` includes the quotes).
/// Fails on what JSON validation lets through but a string cannot hold: a lone UTF-16
/// surrogate escape such as `"\ud800"`.
fn unescape(raw: &str) -> Result<Cow<'_, str>, String> {
    let inner = &raw[1..raw.len() - 1];
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw)
            .map(Cow::Owned)
            .map_err(|e| format!("string {raw} cannot be decoded: {e}"))
    } else {
        Ok(Cow::Borrowed(inner))
    }
}

/// A value as bronze keeps it: a string's content, a number's text, or null. `Err` says what
/// it holds instead.
fn scalar_text(raw: &str) -> Result<Option<Cow<'_, str>>, String> {
    match raw.as_bytes()[0] {
        b'"' => unescape(raw).map(Some),
        b'-' | b'0'..=b'9' => Ok(Some(Cow::Borrowed(raw))),
        b'n' => Ok(None),
        b't' | b'f' => Err("holds a boolean, expected a string or a number".into()),
        b'[' => Err("holds a list, expected a string or a number".into()),
        _ => Err("holds an object, expected a string or a number".into()),
    }
}

/// Turns byte offsets, met in increasing order, into 1-based line numbers.
struct LineCounter<'a> {
    text: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, offset: usize) -> u64 {
        let offset = offset.min(self.text.len());
        self.line += self.text[self.offset..offset]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
        self.offset = offset;
        self.line
    }
}

fn line_of(bytes: &[u8], offset: usize) -> u64 {
    1 + bytes[..offset].iter().filter(|b| **b == b'\n').count() as u64
}

fn nth_line(text: &str, line: usize) -> &str {
    text.lines().nth(line.saturating_sub(1)).unwrap_or("")
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::util::pretty::pretty_format_batches;

    fn read(text: &[u8]) -> (Result<FileOutcome, FileError>, Vec<RecordBatch>) {
        let lineage = Lineage {
            source_file: "01.json".into(),
            batch_id: 3,
            ingested_at: 0,
            first_position: 0,
        };
        let mut batches = Vec::new();
        let outcome = read_tracker(text, &lineage, &mut |b| batches.push(b));
        (outcome, batches)
    }

    fn rows(batches: &[RecordBatch]) -> String {
        let projected: Vec<RecordBatch> = batches
            .iter()
            .map(|b| b.project(&[0, 1, 2, 3, 7]).unwrap())
            .collect();
        pretty_format_batches(&projected).unwrap().to_string()
    }

    #[test]
    fn reads_the_lab_format() {
        let text = br#"[
    {
        "device_id": "23",
        "heartrate": "96.2296475916",
        "mrn": "40580129",
        "time": "1578301316.998366"
    }
]"#;
        let (outcome, batches) = read(text);
        assert_eq!(
            outcome.unwrap(),
            FileOutcome {
                rows: 1,
                rejects: vec![]
            }
        );
        assert_eq!(
            rows(&batches),
            "\
+-----------+---------------+----------+-------------------+---------------+
| device_id | heartrate     | mrn      | time              | _rescued_data |
+-----------+---------------+----------+-------------------+---------------+
| 23        | 96.2296475916 | 40580129 | 1578301316.998366 |               |
+-----------+---------------+----------+-------------------+---------------+"
        );
    }

    #[test]
    fn reads_lines_numbers_missing_and_extra_keys() {
        let text = "\u{feff}{\"device_id\": 7, \"heartrate\": 71.50, \"mrn\": \"1\", \"time\": 1.0}\n\n\
                    {\"mrn\": \"2\", \"x\": [1, 2], \"time\": \"3\", \"y\\\"\": null}\n";
        let (outcome, batches) = read(text.as_bytes());
        assert_eq!(outcome.unwrap().rows, 2);
        assert_eq!(
            rows(&batches),
            "\
+-----------+-----------+-----+------+-------------------------+
| device_id | heartrate | mrn | time | _rescued_data           |
+-----------+-----------+-----+------+-------------------------+
| 7         | 71.50     | 1   | 1.0  |                         |
|           |           | 2   | 3    | {\"x\":[1, 2],\"y\\\"\":null} |
+-----------+-----------+-----+------+-------------------------+"
        );
    }

    #[test]
    fn elements_that_are_not_rows_are_rejected_with_their_line() {
        let text = b"[\n  {\"mrn\": \"1\"},\n  42,\n  {\"mrn\": true},\n  {\"mrn\": \"2\"}\n]";
        let (outcome, batches) = read(text);
        let outcome = outcome.unwrap();
        assert_eq!(outcome.rows, 2);
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
        let rejects: Vec<(u64, &str)> = outcome
            .rejects
            .iter()
            .map(|r| (r.line, r.message.as_str()))
            .collect();
        assert_eq!(
            rejects,
            vec![
                (3, "the element is a number, expected an object"),
                (4, "mrn holds a boolean, expected a string or a number"),
            ]
        );
    }

    #[test]
    fn a_lone_surrogate_is_rejected_not_a_panic() {
        // Valid JSON to serde's validation, but no string can hold it.
        for text in [
            &br#"[{"mrn": "\ud800"}, {"mrn": "1"}]"#[..],
            br#"[{"\udc00": 1}, {"mrn": "1"}]"#,
        ] {
            let (outcome, _) = read(text);
            let outcome = outcome.unwrap();
            assert_eq!(outcome.rows, 1);
            assert_eq!(outcome.rejects.len(), 1);
            assert!(
                outcome.rejects[0].message.contains("cannot be decoded"),
                "{:?}",
                outcome.rejects
            );
        }
    }

    #[test]
    fn unreadable_files_are_file_errors() {
        let cases: [(&[u8], Option<u64>, &str); 5] = [
            (b"", None, "the file is empty"),
            (b"  \n", None, "the file is empty"),
            (b"[\n {\"mrn\": \"1\"},\n {\"mr", Some(3), "truncated JSON"),
            (b"hello", Some(1), "not JSON"),
            (
                b"[{\"mrn\": \"\xff\"}]",
                Some(1),
                "invalid UTF-8 at byte 10",
            ),
        ];
        for (text, line, message) in cases {
            let (outcome, batches) = read(text);
            let error = outcome.unwrap_err();
            assert_eq!(error.line, line, "{error:?}");
            assert!(error.message.starts_with(message), "{error:?}");
            assert!(batches.is_empty());
        }
    }

    #[test]
    fn an_empty_array_is_a_file_without_rows() {
        let (outcome, batches) = read(b"[]");
        assert_eq!(outcome.unwrap(), FileOutcome::default());
        assert!(batches.is_empty());
    }

    /// Both readers on the same bytes: the one-pass reader (when it takes the file) must give
    /// exactly what validating then cutting gives. Returns whether the one-pass reader took it.
    fn assert_paths_agree(text: &[u8]) -> bool {
        let lineage = Lineage {
            source_file: "x.json".into(),
            batch_id: 1,
            ingested_at: 5,
            first_position: 0,
        };
        let (mut fast, mut general) = (Vec::new(), Vec::new());
        let fast_outcome = read_tracker_with(text, &lineage, &mut |b| fast.push(b), true);
        let general_outcome = read_tracker_with(text, &lineage, &mut |b| general.push(b), false);
        let shown = String::from_utf8_lossy(text);
        assert_eq!(fast_outcome, general_outcome, "{shown}");
        assert_eq!(fast, general, "{shown}");
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| read_plain_array(t.strip_prefix('\u{feff}').unwrap_or(t), &lineage))
            .is_some()
    }

    /// A random tracker-like file, mostly valid, with the odd cases the one-pass reader must
    /// either read exactly or leave to the general path.
    fn random_file(rng: &mut impl rand::Rng) -> String {
        const KEYS: [&str; 9] = [
            "\"device_id\"",
            "\"heartrate\"",
            "\"mrn\"",
            "\"time\"",
            "\"extra\"",
            "\"mr\\u006e\"",
            "\"\"",
            "\"ünï\"",
            "\"a\\\"b\"",
        ];
        const VALUES: [&str; 24] = [
            "\"23\"",
            "\"96.2296475916\"",
            "\"1578301316.998366\"",
            "\"\"",
            "\"tab\\there\"",
            "\"\\ud800\"",
            "\"é ü\"",
            "12",
            "-0.5",
            "1e9",
            "2.5E-3",
            "0",
            "01",
            "1.",
            "-",
            "1e",
            "null",
            "nul",
            "true",
            "false",
            "[1, 2]",
            "{\"a\": 1}",
            "\"a\u{1}b\"",
            "NaN",
        ];
        const WS: [&str; 5] = ["", " ", "\n    ", "\r\n", "\t"];
        fn pick(options: &[&'static str], rng: &mut impl rand::Rng) -> &'static str {
            options[rng.random_range(0..options.len())]
        }
        let mut text = String::from(pick(&WS, rng));
        text.push('[');
        let elements = rng.random_range(0..6);
        for e in 0..elements {
            if e > 0 {
                text.push(',');
            }
            text.push_str(pick(&WS, rng));
            match rng.random_range(0..20) {
                0 => text.push_str(pick(&VALUES, rng)),
                _ => {
                    text.push('{');
                    let members = rng.random_range(0..6);
                    for m in 0..members {
                        if m > 0 {
                            text.push(',');
                        }
                        text.push_str(pick(&WS, rng));
                        // Mostly the lab's keys and plain values.
                        let key = if rng.random_bool(0.8) {
                            KEYS[m % 4]
                        } else {
                            pick(&KEYS, rng)
                        };
                        text.push_str(key);
                        text.push_str(pick(&WS, rng));
                        text.push(':');
                        text.push_str(pick(&WS, rng));
                        let value = if rng.random_bool(0.7) {
                            pick(&VALUES[..4], rng)
                        } else {
                            pick(&VALUES, rng)
                        };
                        text.push_str(value);
                    }
                    text.push_str(pick(&WS, rng));
                    text.push('}');
                }
            }
        }
        text.push_str(pick(&WS, rng));
        if rng.random_bool(0.95) {
            text.push(']');
        }
        text.push_str(pick(&WS, rng));
        text
    }

    #[test]
    fn the_one_pass_reader_agrees_with_the_general_one_on_random_files() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut taken = 0;
        for _ in 0..20_000 {
            taken += usize::from(assert_paths_agree(random_file(&mut rng).as_bytes()));
        }
        // Both kinds of file were met: read in one pass, and left to the general path.
        assert!((2_000..18_000).contains(&taken), "{taken}");
    }

    #[test]
    fn the_one_pass_reader_agrees_with_the_general_one_on_mutated_files() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let valid = r#"[
    {
        "device_id": "23",
        "heartrate": "96.2296475916",
        "mrn": "40580129",
        "time": 1578301316.998366
    },
    {"device_id": "24", "mrn": null, "extra": -1.5e3, "time": "1578301317"}
]"#;
        const BYTES: &[u8] = b"[]{}\":,\\ -.0123456789eEnulltruefalse\n\x01\xc3";
        let mut taken = 0;
        for _ in 0..20_000 {
            let mut text = valid.as_bytes().to_vec();
            for _ in 0..rng.random_range(1..=3) {
                let at = rng.random_range(0..text.len());
                let byte = BYTES[rng.random_range(0..BYTES.len())];
                match rng.random_range(0..3) {
                    0 => text[at] = byte,
                    1 => {
                        text.remove(at);
                    }
                    _ => text.insert(at, byte),
                }
            }
            taken += usize::from(assert_paths_agree(&text));
        }
        assert!(taken > 1_000, "{taken}");
    }

    #[test]
    fn large_files_come_in_bounded_batches() {
        let mut text = String::from("[");
        for i in 0..(BATCH_ROWS * 2 + 5) {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!("{{\"mrn\": \"{i}\"}}"));
        }
        text.push(']');
        let (outcome, batches) = read(text.as_bytes());
        assert_eq!(outcome.unwrap().rows, BATCH_ROWS * 2 + 5);
        let sizes: Vec<usize> = batches.iter().map(|b| b.num_rows()).collect();
        assert_eq!(sizes, vec![BATCH_ROWS, BATCH_ROWS, 5]);
    }
}

//! The patient dimension's CSV (`mrn,name`), read strictly: every problem stops the load with the
//! file and line, so a bad file never half-updates the dimension.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use deltalake::arrow::array::{Int64Array, RecordBatch, StringArray};

use crate::error::{Error, Result};

/// One row of the dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRow {
    pub mrn: i64,
    pub name: String,
}

/// Read and check the whole file. Rows come back ordered by mrn; a patient listed twice with the
/// same name is kept once, with two different names it is an error.
pub fn read_patients(path: &Path) -> Result<Vec<PatientRow>> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::SourceMissing {
                path: path.to_path_buf(),
                hint: " (run `medallion generate` or `make data` to create the lab data)".into(),
            }
        } else {
            Error::io("read", path)(e)
        }
    })?;
    parse_patients(path, &bytes)
}

/// Parse the bytes of a patients file; `path` only names it in errors.
pub fn parse_patients(path: &Path, bytes: &[u8]) -> Result<Vec<PatientRow>> {
    let err = |line: Option<u64>, message: String| Error::SourceParse {
        path: path.to_path_buf(),
        line,
        message,
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(err(
            Some(1),
            "the file is UTF-16 (it starts with a UTF-16 byte order mark): save it as UTF-8".into(),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(err(
            None,
            "the file is empty (expected a header `mrn,name`)".into(),
        ));
    }
    // The CSV reader takes a quote left open as running to the end of the file, swallowing
    // every later line into one name: refuse it, at the line where it opened.
    if let Some(line) = unclosed_quote(bytes) {
        return Err(err(
            Some(line),
            "a quoted field opened on this line is never closed (a `\"` without its closing \
             `\"`)"
                .into(),
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.records();
    let csv_err = |e: csv::Error| {
        let line = e.position().map(|p| p.line());
        err(line, e.to_string())
    };

    let header = records
        .next()
        .transpose()
        .map_err(csv_err)?
        .ok_or_else(|| {
            err(
                None,
                "the file is empty (expected a header `mrn,name`)".into(),
            )
        })?;
    let names: Vec<&str> = header.iter().map(str::trim).collect();
    if names != ["mrn", "name"] {
        return Err(err(
            Some(1),
            format!(
                "the header is `{}`, expected `mrn,name`",
                header.iter().collect::<Vec<_>>().join(",")
            ),
        ));
    }

    // mrn -> (name, line where first seen)
    let mut rows: BTreeMap<i64, (String, u64)> = BTreeMap::new();
    for record in records {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(|f| f.trim().is_empty()) {
            continue; // a blank line
        }
        if record.len() != 2 {
            return Err(err(
                Some(line),
                format!(
                    "expected 2 fields (mrn,name), found {}: quote a name that holds a comma",
                    record.len()
                ),
            ));
        }
        let mrn = parse_mrn(record[0].trim()).map_err(|message| err(Some(line), message))?;
        let name = record[1].trim();
        if name.is_empty() {
            return Err(err(Some(line), format!("patient {mrn} has no name")));
        }
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            return Err(err(
                Some(line),
                format!(
                    "the name of patient {mrn} holds a control character (U+{:04X}): {name:?}",
                    u32::from(c)
                ),
            ));
        }
        match rows.get(&mrn) {
            Some((first, first_line)) if first != name => {
                return Err(err(
                    Some(line),
                    format!(
                        "mrn {mrn} is listed again with another name: {name:?} here, \
                         {first:?} on line {first_line}"
                    ),
                ));
            }
            Some(_) => {}
            None => {
                rows.insert(mrn, (name.to_string(), line));
            }
        }
    }
    Ok(rows
        .into_iter()
        .map(|(mrn, (name, _))| PatientRow { mrn, name })
        .collect())
}

/// An mrn: a positive whole number, written in digits only. Silver refuses readings whose mrn
/// is not positive, so the dimension refuses such a patient too.
fn parse_mrn(text: &str) -> std::result::Result<i64, String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("mrn {text:?} is not a whole number"));
    }
    match text.parse::<i64>() {
        Ok(mrn) if mrn > 0 => Ok(mrn),
        Ok(mrn) => Err(format!(
            "mrn {mrn} is not positive (an mrn is a whole number above 0)"
        )),
        Err(_) => Err(format!("mrn {text} is too large for a 64-bit integer")),
    }
}

/// The line on which a quoted field opens and never closes, if one does. It follows the CSV
/// reader's own rules: a `"` opens a quoted field only at the start of a field, `""` inside one
/// is a quote, and the field ends at the next lone `"`.
fn unclosed_quote(bytes: &[u8]) -> Option<u64> {
    #[derive(Clone, Copy)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        /// After a `"` in a quoted field: its end, or the first half of `""`.
        QuoteInQuoted,
    }
    let mut state = State::FieldStart;
    let (mut line, mut opened) = (1u64, 1u64);
    for &b in bytes {
        state = match (state, b) {
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => State::Quoted,
            (State::FieldStart, b'"') => {
                opened = line;
                State::Quoted
            }
            (State::QuoteInQuoted, b'"') => State::Quoted,
            (_, b',' | b'\n' | b'\r') => State::FieldStart,
            _ => State::Unquoted,
        };
        if b == b'\n' {
            line += 1;
        }
    }
    matches!(state, State::Quoted).then_some(opened)
}

/// The rows as one Arrow batch in the `dim_patients` schema.
pub fn patients_batch(rows: &[PatientRow]) -> RecordBatch {
    RecordBatch::try_new(
        crate::catalog::DIM_PATIENTS.schema(),
        vec![
            Arc::new(rows.iter().map(|r| r.mrn).collect::<Int64Array>()),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.name.as_str()))
                    .collect::<StringArray>(),
            ),
        ],
    )
    .expect("columns match the schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<PatientRow>> {
        parse_patients(Path::new("p.csv"), text.as_bytes())
    }

    #[test]
    fn reads_quoted_names_and_skips_blank_lines() {
        let rows = parse("mrn,name\n20000002,\"Smith, J.\"\n\n10000001,Mary O'Brien\n").unwrap();
        assert_eq!(
            rows,
            vec![
                PatientRow {
                    mrn: 10000001,
                    name: "Mary O'Brien".into()
                },
                PatientRow {
                    mrn: 20000002,
                    name: "Smith, J.".into()
                },
            ]
        );
    }

    #[test]
    fn bad_input_names_the_line() {
        let cases = [
            ("", "p.csv: the file is empty"),
            ("mrn;name\n1,a\n", "p.csv:1: the header is `mrn;name`"),
            (
                "mrn,name\n1,a\nx1,b\n",
                "p.csv:3: mrn \"x1\" is not a whole number",
            ),
            ("mrn,name\n1,a\n2,\n", "p.csv:3: patient 2 has no name"),
            ("mrn,name\n1,a\n2\n", "p.csv:3: expected 2 fields"),
            (
                "mrn,name\n1,a\n1,b\n",
                "p.csv:3: mrn 1 is listed again with another name",
            ),
            ("mrn,name\n1,a\n0,b\n", "p.csv:3: mrn 0 is not positive"),
            ("mrn,name\n000,b\n", "p.csv:2: mrn 0 is not positive"),
            ("mrn,name\n-7,b\n", "p.csv:2: mrn -7 is not positive"),
            (
                "mrn,name\n99999999999999999999,b\n",
                "p.csv:2: mrn 99999999999999999999 is too large",
            ),
            (
                "mrn,name\n1,a\n2,\"Smith, J.\n3,c\n",
                "p.csv:3: a quoted field opened on this line is never closed",
            ),
            (
                "mrn,name\n1,\"a \"\"b\"\"\n2,c\n",
                "p.csv:2: a quoted field opened on this line is never closed",
            ),
            (
                "mrn,name\n1,\"a\nb\"\n",
                "p.csv:2: the name of patient 1 holds a control character (U+000A)",
            ),
            (
                "mrn,name\n1,a\n2,b\0c\n",
                "p.csv:3: the name of patient 2 holds a control character (U+0000)",
            ),
            ("\u{FEFF}mrn,name\n0,a\n", "p.csv:2: mrn 0 is not positive"),
        ];
        for (text, expected) in cases {
            let message = parse(text).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{text:?}: {message}");
        }
    }

    #[test]
    fn utf16_and_invalid_utf8_are_refused_with_the_line() {
        let utf16 = parse_patients(Path::new("p.csv"), b"\xFF\xFEm\0r\0n\0");
        let message = utf16.unwrap_err().to_string();
        assert!(
            message.starts_with("p.csv:1: the file is UTF-16"),
            "{message}"
        );
        let bad = parse_patients(Path::new("p.csv"), b"mrn,name\n1,a\n2,b\xff\n");
        let message = bad.unwrap_err().to_string();
        assert!(message.starts_with("p.csv:3: "), "{message}");
    }

    #[test]
    fn a_bom_crlf_quotes_and_quotes_inside_names_are_read() {
        let rows = parse(
            "\u{FEFF}mrn,name\r\n1,\"Smith, \"\"J\"\"\"\r\n2,O\"Brien\r\n3,\"\"\"Q\"\"\"\r\n",
        )
        .unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Smith, \"J\"", "O\"Brien", "\"Q\""]);
        // A quote closed on the last line, with no newline after it.
        assert_eq!(parse("mrn,name\n1,\"a\"").unwrap()[0].name, "a");
    }

    #[test]
    fn the_same_row_twice_is_kept_once() {
        assert_eq!(parse("mrn,name\n1,a\n1,a\n").unwrap().len(), 1);
    }
}

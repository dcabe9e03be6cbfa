//! The patient dimension's CSV (`mrn,name`), read strictly: every problem stops the load with the
//! file and line, so a bad file never half-updates the dimension.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use deltalake::arrow::array::{Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};

/// One row of the dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRow {
    pub mrn: i64,
    pub name: String,
}

/// The Arrow schema of `dim_patients`.
pub fn patients_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("mrn", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]))
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
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(err(
            None,
            "the file is empty (expected a header `mrn,name`)".into(),
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
        let mrn_text = record[0].trim();
        let mrn = parse_mrn(mrn_text).ok_or_else(|| {
            err(
                Some(line),
                format!("mrn {mrn_text:?} is not a whole number"),
            )
        })?;
        let name = record[1].trim();
        if name.is_empty() {
            return Err(err(Some(line), format!("patient {mrn} has no name")));
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

fn parse_mrn(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The rows as one Arrow batch in the `dim_patients` schema.
pub fn patients_batch(rows: &[PatientRow]) -> RecordBatch {
    RecordBatch::try_new(
        patients_schema(),
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
        ];
        for (text, expected) in cases {
            let message = parse(text).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{text:?}: {message}");
        }
    }

    #[test]
    fn the_same_row_twice_is_kept_once() {
        assert_eq!(parse("mrn,name\n1,a\n1,a\n").unwrap().len(), 1);
    }
}

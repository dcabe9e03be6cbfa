//! `medallion patients`: MERGE on mrn, no version when nothing changed, and bad CSVs that stop
//! with the file and line and write nothing.

use crate::common::Workspace;

const DIM: &str = "dim_patients";

fn ws_with_csv(text: &str) -> Workspace {
    let ws = Workspace::new();
    ws.write("healthcare/batch/patient_info.csv", text);
    ws
}

#[test]
fn load_insert_update_and_rerun_without_a_version() {
    let ws = ws_with_csv("mrn,name\n10000001,Ada Lovelace\n20000002,\"Smith, J.\"\n");
    let out = ws.run_ok(&["patients"]);
    assert!(out.contains("2 rows read, 2 inserted, 0 updated"), "{out}");
    let first = ws.version(DIM).unwrap();
    assert_eq!(
        ws.sorted_rows(DIM),
        [
            "+----------+--------------+",
            "| mrn      | name         |",
            "+----------+--------------+",
            "| 10000001 | Ada Lovelace |",
            "| 20000002 | Smith, J.    |",
            "+----------+--------------+",
        ]
    );

    // Nothing changed: no new version.
    let out = ws.run_ok(&["patients"]);
    assert!(out.contains("0 inserted, 0 updated, 2 unchanged"), "{out}");
    assert_eq!(ws.version(DIM), Some(first));

    // One renamed, one new: exactly one new version.
    ws.write(
        "healthcare/batch/patient_info.csv",
        "mrn,name\n10000001,Ada King\n20000002,\"Smith, J.\"\n30000003,Mary O'Brien\n",
    );
    let out = ws.run_ok(&["--json", "patients"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["inserted"], 1);
    assert_eq!(report["updated"], 1);
    assert_eq!(report["version_after"], first + 1);
    assert_eq!(ws.version(DIM), Some(first + 1));
    assert_eq!(
        ws.sorted_rows(DIM),
        [
            "+----------+--------------+",
            "| mrn      | name         |",
            "+----------+--------------+",
            "| 10000001 | Ada King     |",
            "| 20000002 | Smith, J.    |",
            "| 30000003 | Mary O'Brien |",
            "+----------+--------------+",
        ]
    );
}

#[test]
fn generated_patients_load_once() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--months", "1"]);
    let out = ws.run_ok(&["patients"]);
    assert!(out.contains("34 rows read, 34 inserted"), "{out}");
    let v = ws.version(DIM);
    ws.run_ok(&["patients"]);
    assert_eq!(ws.version(DIM), v);
}

#[test]
fn a_bad_csv_names_the_file_and_line_and_writes_nothing() {
    let cases = [
        (
            "mrn,name\n10000001,Ada\nabc,Bob\n",
            ":3: mrn \"abc\" is not a whole number",
        ),
        (
            "mrn,name\n10000001,Ada\n10000002,\n",
            ":3: patient 10000002 has no name",
        ),
        (
            "mrn,name\n10000001,Ada\n10000002\n",
            ":3: expected 2 fields",
        ),
        (
            "mrn,name\n10000001,Ada\n10000001,Bob\n",
            ":3: mrn 10000001 is listed again with another name",
        ),
        ("", ": the file is empty"),
        (
            "id,patient\n10000001,Ada\n",
            ":1: the header is `id,patient`, expected `mrn,name`",
        ),
    ];
    for (text, expected) in cases {
        // Against a fresh warehouse: no table is created.
        let ws = ws_with_csv(text);
        let err = ws.run_err(&["patients"], 1);
        let csv = ws.patients_csv().display().to_string();
        assert!(err.contains(&format!("{csv}{expected}")), "{text:?}: {err}");
        assert_eq!(ws.version(DIM), None, "{text:?} created a table");

        // Against a loaded table: the version does not move.
        let ws = ws_with_csv("mrn,name\n10000001,Ada\n");
        ws.run_ok(&["patients"]);
        let before = ws.version(DIM);
        ws.write("healthcare/batch/patient_info.csv", text);
        ws.run_err(&["patients"], 1);
        assert_eq!(ws.version(DIM), before, "{text:?} wrote a version");
    }
}

#[test]
fn a_missing_csv_says_how_to_make_one() {
    let ws = Workspace::new();
    let err = ws.run_err(&["patients"], 1);
    assert!(err.contains("patient_info.csv does not exist"), "{err}");
    assert!(err.contains("medallion generate"), "{err}");
    assert_eq!(ws.version(DIM), None);
}

/// Run `patients` on a fresh workspace holding `text` and expect it refused at `expected`
/// (`:LINE: message`), with no table made.
fn assert_refused(text: &str, expected: &str) {
    let ws = ws_with_csv(text);
    let err = ws.run_err(&["patients"], 1);
    let csv = ws.patients_csv().display().to_string();
    assert!(err.contains(&format!("{csv}{expected}")), "{text:?}: {err}");
    assert_eq!(ws.version(DIM), None, "{text:?} created a table");
}

#[test]
fn patients_refuses_mrn_zero() {
    // Silver refuses a reading whose mrn is not positive: the dimension refuses the patient.
    assert_refused(
        "mrn,name\n10000001,Ada\n0,Nobody\n",
        ":3: mrn 0 is not positive",
    );
    assert_refused("mrn,name\n00000000,Nobody\n", ":2: mrn 0 is not positive");
    assert_refused(
        "mrn,name\n-10000001,Ada\n",
        ":2: mrn -10000001 is not positive",
    );
}

#[test]
fn patients_refuses_an_unterminated_quote() {
    // Read leniently, the open quote would swallow the next line into the name.
    assert_refused(
        "mrn,name\n10000001,Ada\n10000002,\"Smith, J.\n10000003,Bob\n",
        ":3: a quoted field opened on this line is never closed",
    );
    assert_refused(
        "mrn,name\n10000001,\"Ada",
        ":2: a quoted field opened on this line is never closed",
    );
}

#[test]
fn patients_refuses_control_characters_in_a_name() {
    assert_refused(
        "mrn,name\n10000001,Ad\0a\n",
        ":2: the name of patient 10000001 holds a control character (U+0000)",
    );
    // A line break inside quotes is a control character in the name too.
    assert_refused(
        "mrn,name\n10000001,\"Ada\nLovelace\"\n",
        ":2: the name of patient 10000001 holds a control character (U+000A)",
    );
}

#[test]
fn patients_accepts_a_bom_crlf_and_doubled_quotes() {
    let ws = ws_with_csv("\u{FEFF}mrn,name\r\n10000001,Ada\r\n10000002,\"Smith, \"\"J.\"\"\"\r\n");
    ws.run_ok(&["patients"]);
    assert_eq!(
        ws.sorted_rows(DIM),
        [
            "+----------+-------------+",
            "| mrn      | name        |",
            "+----------+-------------+",
            "| 10000001 | Ada         |",
            "| 10000002 | Smith, \"J.\" |",
            "+----------+-------------+",
        ]
    );
}

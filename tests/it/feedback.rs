//! What a run tells people (issue 11 item 4): `pipeline` prints each layer's line as it ends,
//! then gold, then one verdict; nothing but warnings on a stderr that is not a terminal.

use crate::common::Workspace;

fn reading(rate: &str, time: i64) -> String {
    format!(r#"{{"device_id": "1", "heartrate": "{rate}", "mrn": "10000001", "time": "{time}"}}"#)
}

fn workspace(rates: &[&str]) -> Workspace {
    let ws = Workspace::new();
    ws.write(
        "healthcare/batch/patient_info.csv",
        "mrn,name\n10000001,Ada\n",
    );
    let rows: Vec<String> = rates
        .iter()
        .enumerate()
        .map(|(i, r)| reading(r, 1_600_000_000 + 900 * i as i64))
        .collect();
    ws.write(
        "healthcare/streaming/tracker/01.json",
        &format!("[\n{}\n]\n", rows.join(",\n")),
    );
    ws
}

fn is_clock(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 8
        && b[2] == b':'
        && b[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
}

#[test]
fn pipeline_prints_each_layer_as_it_ends_then_gold_then_pass() {
    let ws = workspace(&["70", "80"]);
    let out = ws.medallion().arg("pipeline").output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    for (line, layer) in lines
        .iter()
        .zip(["patients:", "bronze:", "silver:", "gold:"])
    {
        let (clock, rest) = line.split_once(' ').unwrap();
        assert!(is_clock(clock), "{line}");
        assert!(rest.starts_with(layer), "{line}");
    }
    assert!(
        lines[4].starts_with("+---"),
        "then the gold table: {stdout}"
    );
    assert!(lines[5].contains("patient_name"), "{stdout}");
    let last = lines.last().unwrap();
    assert!(last.starts_with("pipeline: PASS in "), "{last}");
    // stderr is not a terminal here: no progress bar, no note.
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn pipeline_warns_with_what_was_quarantined_and_what_waits() {
    let ws = workspace(&["70", "fast"]);
    // A reading of a patient not in the dimension waits.
    ws.write(
        "healthcare/streaming/tracker/02.json",
        r#"[{"device_id": "2", "heartrate": "75", "mrn": "20000002", "time": "1600000000"}]"#,
    );
    let out = ws.run_ok(&["pipeline"]);
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("pipeline: WARN, 1 rows quarantined (bronze 0, silver 1), 1 rows waiting for their patient"),
        "{last}"
    );
    // -q: nothing at all on stdout.
    assert_eq!(ws.run_ok(&["-q", "pipeline"]), "");
}

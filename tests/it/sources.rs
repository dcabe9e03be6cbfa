//! Several sources into one bronze table (`bronze --source NAME=FOLDER`): each its own stream id
//! and checkpoint, lineage that names it, and the last delivery of a reading winning across
//! sources as within one.

use crate::common::Workspace;

fn reading(device: &str, rate: &str, mrn: &str, time: &str) -> String {
    format!(
        r#"{{"device_id": "{device}", "heartrate": "{rate}", "mrn": "{mrn}", "time": "{time}"}}"#
    )
}

/// A workspace with one patient and two source folders, `a` and `b`.
fn two_sites() -> Workspace {
    let ws = Workspace::new();
    ws.write(
        "healthcare/batch/patient_info.csv",
        "mrn,name\n10000001,Ada Lovelace\n",
    );
    for site in ["a", "b"] {
        std::fs::create_dir_all(ws.dir.path().join(site)).unwrap();
    }
    ws
}

fn deliver(ws: &Workspace, site: &str, name: &str, readings: &[String]) {
    let path = ws.dir.path().join(site).join(name);
    std::fs::write(path, format!("[{}]", readings.join(","))).unwrap();
}

fn source(ws: &Workspace, site: &str) -> String {
    format!("--source={site}={}", ws.dir.path().join(site).display())
}

fn silver_rates(ws: &Workspace) -> Vec<String> {
    let out = ws.run_ok(&[
        "sql",
        "SELECT device_id, datetime, heartrate FROM fact_heartrate_silver ORDER BY device_id, datetime",
        "--format",
        "csv",
    ]);
    out.lines().skip(1).map(str::to_string).collect()
}

#[test]
fn a_later_re_delivery_from_another_source_wins() {
    let ws = two_sites();
    // Site a delivers three batches; its third holds reading R at 60.
    for (i, rate) in ["50", "55", "60"].iter().enumerate() {
        let other = format!("16015104{i}0");
        deliver(
            &ws,
            "a",
            &format!("0{i}.json"),
            &[
                reading("1", rate, "10000001", "1601510459"),
                reading("2", "70", "10000001", &other),
            ],
        );
        ws.run_settled(&["-q", "bronze", &source(&ws, "a")]);
    }
    ws.run_settled(&["-q", "patients"]);
    ws.run_settled(&["-q", "silver"]);
    assert!(
        silver_rates(&ws)[0].ends_with(",60.0"),
        "{:?}",
        silver_rates(&ws)
    );
    // Site b then re-delivers R at 99: its first batch, but a later delivery than a's third.
    deliver(
        &ws,
        "b",
        "00.json",
        &[reading("1", "99", "10000001", "1601510459")],
    );
    ws.run_settled(&["-q", "bronze", &source(&ws, "b")]);
    ws.run_settled(&["-q", "silver"]);
    assert!(
        silver_rates(&ws)[0].ends_with(",99.0"),
        "{:?}",
        silver_rates(&ws)
    );
    // And a again, later still.
    deliver(
        &ws,
        "a",
        "09.json",
        &[reading("1", "61", "10000001", "1601510459")],
    );
    ws.run_settled(&["-q", "bronze", &source(&ws, "a")]);
    ws.run_settled(&["-q", "silver"]);
    assert!(
        silver_rates(&ws)[0].ends_with(",61.0"),
        "{:?}",
        silver_rates(&ws)
    );
}

#[test]
fn each_source_has_its_own_checkpoint_stream_and_lineage() {
    let ws = two_sites();
    // The same file names in both sites are different files.
    for site in ["a", "b"] {
        deliver(
            &ws,
            site,
            "01.json",
            &[reading("1", "60", "10000001", "1601510459")],
        );
    }
    let report = ws.run_settled(&["--json", "bronze", &source(&ws, "a"), &source(&ws, "b")]);
    let report: serde_json::Value = serde_json::from_str(report.lines().last().unwrap()).unwrap();
    let streams = report["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{report}");
    assert_ne!(streams[0]["stream_id"], streams[1]["stream_id"]);
    assert_eq!(report["files"], 2);
    let checkpoints = ws
        .warehouse()
        .join("healthcare_dlh.db/fact_heartrate_bronze/_checkpoint");
    for site in ["a", "b"] {
        let plans = std::fs::read_dir(checkpoints.join(site).join("offsets")).unwrap();
        assert_eq!(plans.count(), 1, "{site}: its own checkpoint, one plan");
    }
    // Every commit names its source.
    let history = ws.run_ok(&["history", "fact_heartrate_bronze", "--format", "json"]);
    for site in ["a", "b"] {
        assert!(
            history.contains(&format!("\"sourceName\":\"{site}\"")),
            "{site}: {history}"
        );
    }
    // A source's lost checkpoint is rebuilt from its own files only: b's 01.json is not
    // taken for a's, and nothing is ingested twice.
    std::fs::remove_dir_all(checkpoints.join("a")).unwrap();
    deliver(
        &ws,
        "a",
        "02.json",
        &[reading("1", "62", "10000001", "1601510460")],
    );
    let out = ws.run_settled(&["--json", "bronze", &source(&ws, "a")]);
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(report["files"], 1, "only a's new file: {out}");
    let rows = ws.run_ok(&[
        "sql",
        "SELECT count(*) AS n FROM fact_heartrate_bronze",
        "--format",
        "csv",
    ]);
    assert_eq!(rows.lines().nth(1), Some("3"), "{rows}");
}

#[test]
fn sources_are_refused_before_anything_is_written_when_they_cannot_work() {
    let ws = two_sites();
    let same = ws.run_err(
        &[
            "bronze",
            &source(&ws, "a"),
            &format!("--source=a={}", ws.dir.path().join("b").display()),
        ],
        2,
    );
    assert!(same.contains("two sources are named \"a\""), "{same}");
    let every = ws.run_err(
        &[
            "bronze",
            "--trigger",
            "every=1s",
            &source(&ws, "a"),
            &source(&ws, "b"),
        ],
        2,
    );
    assert!(every.contains("one source per process"), "{every}");
    let missing = ws.run_err(&["bronze", "--source=c=/nonexistent/folder"], 1);
    assert!(missing.contains("/nonexistent/folder"), "{missing}");
    let bad = ws.run_err(&["bronze", "--source=offsets=/tmp"], 2);
    assert!(bad.contains("offsets"), "{bad}");
    assert!(!ws.warehouse().exists(), "nothing was written");
}

fn bronze_count(ws: &Workspace) -> String {
    let out = ws.run_ok(&[
        "sql",
        "SELECT count(*) AS n FROM fact_heartrate_bronze",
        "--format",
        "csv",
    ]);
    out.lines().nth(1).unwrap_or_default().to_string()
}

#[test]
fn a_plain_bronze_after_a_named_source_takes_its_own_files_of_the_same_names() {
    let ws = two_sites();
    deliver(
        &ws,
        "a",
        "01.json",
        &[reading("1", "60", "10000001", "1601510459")],
    );
    ws.run_settled(&["-q", "bronze", &source(&ws, "a")]);
    // The default source's first run, on a table another source filled: its own 01.json is
    // not taken for site a's.
    std::fs::create_dir_all(ws.tracker()).unwrap();
    ws.write(
        "healthcare/streaming/tracker/01.json",
        &format!("[{}]", reading("2", "61", "10000001", "1601510459")),
    );
    let out = ws.run_settled(&["--json", "bronze"]);
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(report["files"], 1, "{out}");
    assert_eq!(
        report["warnings"],
        serde_json::json!([]),
        "nothing was missing: {out}"
    );
    assert_eq!(bronze_count(&ws), "2");
}

#[test]
fn a_source_inside_another_sources_folder_loses_nothing() {
    let ws = two_sites();
    let outer = ws.dir.path().join("a");
    std::fs::create_dir_all(outer.join("sub")).unwrap();
    std::fs::write(
        outer.join("sub/01.json"),
        format!("[{}]", reading("1", "60", "10000001", "1601510459")),
    )
    .unwrap();
    deliver(
        &ws,
        "a",
        "01.json",
        &[reading("3", "62", "10000001", "1601510459")],
    );
    ws.run_settled(&[
        "-q",
        "bronze",
        &format!("--source=inner={}", outer.join("sub").display()),
    ]);
    let out = ws.run_settled(&[
        "--json",
        "bronze",
        &format!("--source=outer={}", outer.display()),
    ]);
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(report["files"], 1, "{out}");
    assert_eq!(bronze_count(&ws), "2");
}

#[test]
fn one_folder_under_two_source_names_is_refused() {
    let ws = two_sites();
    deliver(
        &ws,
        "a",
        "01.json",
        &[reading("1", "60", "10000001", "1601510459")],
    );
    let a = ws.dir.path().join("a");
    let both = ws.run_err(
        &[
            "bronze",
            &format!("--source=x={}", a.display()),
            &format!("--source=y={}", a.display()),
        ],
        2,
    );
    assert!(both.contains("one folder"), "{both}");
    ws.run_settled(&["-q", "bronze", &format!("--source=x={}", a.display())]);
    let again = ws.run_err(&["bronze", &format!("--source=y={}", a.display())], 2);
    assert!(again.contains("already read by source x"), "{again}");
    assert_eq!(bronze_count(&ws), "1");
}

#[test]
fn status_counts_what_each_named_source_has_left_to_ingest() {
    let ws = two_sites();
    deliver(
        &ws,
        "a",
        "01.json",
        &[reading("1", "60", "10000001", "1601510459")],
    );
    ws.run_settled(&["-q", "bronze", &source(&ws, "a")]);
    deliver(
        &ws,
        "a",
        "02.json",
        &[reading("1", "61", "10000001", "1601510460")],
    );
    deliver(
        &ws,
        "a",
        "03.json",
        &[reading("1", "62", "10000001", "1601510461")],
    );
    let out = ws.run_ok(&["--json", "status"]);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bronze = &status["tables"][1];
    assert_eq!(bronze["files_to_ingest"], 2, "{out}");
    assert_eq!(bronze["consumed"]["source a"], 0, "{out}");
    let text = ws.run_ok(&["status"]);
    assert!(text.contains("source a: 2 files to ingest"), "{text}");
}

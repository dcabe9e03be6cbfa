//! Safety rails (issue 11): commands that used to do the wrong thing without a word. A restore
//! takes a consumer's consumed positions back with its rows; a `--data` that names nothing is
//! an error before any table is made; a bronze stream stays bound to its source folder; and
//! `status` says what each layer still has to do and what does not add up.

use medallion::testing::Warehouse;
use medallion::testing::{self as delta, TableId};
use serde_json::Value;

use crate::common::{Workspace, runtime};

const DIM: &str = "dim_patients";
const BRONZE: &str = "fact_heartrate_bronze";
const SILVER: &str = "fact_heartrate_silver";
const GOLD: &str = "fact_heartrate_gold";
const DAILY: &str = "fact_heartrate_daily";

/// Gold's exact columns (its float sum may differ in the last bits by the order it was added).
const GOLD_SQL: &str = "SELECT mrn, patient_name, avg_heartrate, count, min_heartrate, \
                        max_heartrate, first_reading, last_reading FROM fact_heartrate_gold \
                        ORDER BY mrn";
const DAILY_SQL: &str = "SELECT mrn, date, round(avg_heartrate, 6) AS avg, min_heartrate, \
                         max_heartrate, count FROM fact_heartrate_daily ORDER BY mrn, date";
const SILVER_SQL: &str = "SELECT * FROM fact_heartrate_silver ORDER BY device_id, mrn, datetime";

/// A warehouse computed in one run from the same source files as `ws`.
fn one_shot(ws: &Workspace) -> Workspace {
    let fresh = Workspace::new();
    copy_dir(&ws.data(), &fresh.data());
    fresh.run_ok(&["-q", "pipeline"]);
    fresh
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn sql(ws: &Workspace, query: &str) -> String {
    ws.run_ok(&["sql", query, "--format", "csv"])
}

fn one_number(ws: &Workspace, query: &str) -> i64 {
    sql(ws, query).lines().nth(1).unwrap().parse().unwrap()
}

/// The version `table` recorded for `app_id`, as any Delta reader sees it.
fn consumed(ws: &Workspace, table: &str, app_id: &str) -> Option<i64> {
    let id = TableId::new(&Warehouse::local(&ws.warehouse()).unwrap(), table);
    runtime().block_on(async {
        let t = delta::open(&id).await.unwrap().expect("the table exists");
        delta::app_version(&id, &t, app_id).await.unwrap()
    })
}

/// `describe`'s "Consumed" lines.
fn described_positions(ws: &Workspace, table: &str) -> Vec<String> {
    ws.run_ok(&["describe", table, "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|row| row["col_name"] == "Consumed")
        .map(|row| row["data_type"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn regression_restoring_gold_then_refreshing_loses_no_reading() {
    let ws = Workspace::two_runs();
    assert_eq!(consumed(&ws, GOLD, "gold<-fact_heartrate_silver"), Some(2));
    let out = ws.run_ok(&["restore", GOLD, "--version", "1"]);
    assert!(
        out.contains("consumed positions taken back: fact_heartrate_silver v1 (was v2)"),
        "{out}"
    );
    // The restore commit carries gold's v1 position: rows and position went back together.
    assert_eq!(consumed(&ws, GOLD, "gold<-fact_heartrate_silver"), Some(1));
    assert_eq!(described_positions(&ws, GOLD), ["fact_heartrate_silver v1"]);
    // Daily, its sibling, was not restored and keeps its own position.
    assert_eq!(consumed(&ws, DAILY, "gold<-fact_heartrate_silver"), Some(2));

    ws.run_ok(&["generate", "--append"]);
    ws.run_ok(&["-q", "pipeline"]);
    let silver_rows = one_number(&ws, "SELECT count(*) FROM fact_heartrate_silver");
    let gold_count = one_number(&ws, "SELECT sum(count) FROM fact_heartrate_gold");
    assert_eq!(
        gold_count, silver_rows,
        "gold's counts add up to silver's rows"
    );
    let fresh = one_shot(&ws);
    assert_eq!(sql(&ws, GOLD_SQL), sql(&fresh, GOLD_SQL));
    assert_eq!(sql(&ws, DAILY_SQL), sql(&fresh, DAILY_SQL));
}

#[test]
fn regression_restoring_silver_then_refreshing_loses_no_reading() {
    let ws = Workspace::two_runs();
    assert_eq!(
        consumed(&ws, SILVER, "silver<-fact_heartrate_bronze"),
        Some(2)
    );
    // Gold consumed silver v2: a restore of silver v1 needs --force.
    ws.run_err(&["restore", SILVER, "--version", "1"], 1);
    ws.run_ok(&["restore", SILVER, "--version", "1", "--force"]);
    assert_eq!(
        consumed(&ws, SILVER, "silver<-fact_heartrate_bronze"),
        Some(1)
    );
    assert_eq!(consumed(&ws, SILVER, "silver<-dim_patients"), Some(1));
    let positions = described_positions(&ws, SILVER);
    assert!(
        positions.contains(&"fact_heartrate_bronze v1".to_string()),
        "{positions:?}"
    );

    ws.run_ok(&["-q", "pipeline"]);
    let fresh = one_shot(&ws);
    assert_eq!(sql(&ws, SILVER_SQL), sql(&fresh, SILVER_SQL));
    let silver_rows = one_number(&ws, "SELECT count(*) FROM fact_heartrate_silver");
    let gold_count = one_number(&ws, "SELECT sum(count) FROM fact_heartrate_gold");
    assert_eq!(gold_count, silver_rows);
    assert_eq!(sql(&ws, GOLD_SQL), sql(&fresh, GOLD_SQL));
}

#[test]
fn restoring_a_version_that_consumed_nothing_is_refused() {
    let ws = Workspace::two_runs();
    // Gold's v0 is its creation: it had consumed nothing, and a position cannot be removed.
    let err = ws.run_err(&["restore", GOLD, "--version", "0"], 1);
    assert!(
        err.contains("v0 had consumed nothing of fact_heartrate_silver"),
        "{err}"
    );
    assert_eq!(ws.version(GOLD), Some(2), "nothing was committed");
}

/// The patient that has readings in the first month (the only one wearing a monitor).
fn patient_with_readings(ws: &Workspace) -> i64 {
    one_number(ws, "SELECT min(mrn) FROM fact_heartrate_gold")
}

fn rename_in_csv(ws: &Workspace, mrn: i64, name: &str) {
    let csv = std::fs::read_to_string(ws.patients_csv()).unwrap();
    let renamed: Vec<String> = csv
        .lines()
        .map(|line| {
            if line.starts_with(&format!("{mrn},")) {
                format!("{mrn},{name}")
            } else {
                line.to_string()
            }
        })
        .collect();
    std::fs::write(ws.patients_csv(), renamed.join("\n") + "\n").unwrap();
}

#[test]
fn restoring_dim_patients_gives_silver_and_gold_its_names_back() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "12", "--months", "1"]);
    ws.run_ok(&["-q", "pipeline"]);
    let original = Workspace::new();
    copy_dir(&ws.data(), &original.data());
    let mrn = patient_with_readings(&ws);
    rename_in_csv(&ws, mrn, "Renamed Patient");
    ws.run_ok(&["-q", "pipeline"]);
    let names =
        format!("SELECT DISTINCT patient_name FROM fact_heartrate_silver WHERE mrn = {mrn}");
    assert_eq!(sql(&ws, &names), "patient_name\nRenamed Patient\n");

    // dim_patients consumes nothing: its restore has no position to take back. Silver, which
    // consumed its v2, sees a new dimension version and checks every name again.
    ws.run_ok(&["restore", DIM, "--version", "1", "--force"]);
    ws.run_ok(&["-q", "silver"]);
    ws.run_ok(&["-q", "gold"]);
    let fresh = Workspace::new();
    copy_dir(&original.data(), &fresh.data());
    fresh.run_ok(&["-q", "pipeline"]);
    assert_eq!(sql(&ws, &names), sql(&fresh, &names));
    assert_eq!(sql(&ws, SILVER_SQL), sql(&fresh, SILVER_SQL));
    assert_eq!(sql(&ws, GOLD_SQL), sql(&fresh, GOLD_SQL));
    assert_eq!(consumed(&ws, SILVER, "silver<-dim_patients"), Some(3));
    assert!(ws.version(BRONZE).is_some());
}

/// `medallion --warehouse <ws's> --data <data> ARGS`.
fn with_data(ws: &Workspace, data: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_medallion"))
        .env_remove("MEDALLION_WAREHOUSE")
        .env_remove("MEDALLION_DATA")
        .arg("--warehouse")
        .arg(ws.warehouse())
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("medallion runs")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn regression_a_typo_in_data_is_an_error_before_any_table_is_made() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "3", "--months", "1"]);
    let typo = ws.dir.path().join("dta");
    for args in [
        vec!["bronze"],
        vec!["pipeline"],
        vec!["bronze", "--trigger", "every=1s"],
    ] {
        let out = with_data(&ws, &typo, &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        let tracker = typo.join("healthcare/streaming/tracker");
        assert!(
            err.contains(&format!(
                "source folder {} does not exist",
                tracker.display()
            )),
            "{args:?}: {err}"
        );
        assert!(err.contains("medallion generate"), "{err}");
        assert!(!ws.warehouse().exists(), "{args:?}: nothing was created");
    }
    // A data folder without a tracker folder says so.
    std::fs::create_dir_all(typo.join("healthcare/batch")).unwrap();
    let err = stderr(&with_data(&ws, &typo, &["bronze"]));
    assert!(
        err.contains("holds no healthcare/streaming/tracker/"),
        "{err}"
    );
    assert!(!ws.warehouse().exists());

    // An existing, empty tracker folder is a source with nothing new yet.
    std::fs::create_dir_all(typo.join("healthcare/streaming/tracker")).unwrap();
    let out = with_data(&ws, &typo, &["bronze"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 files, 0 rows"),
        "{:?}",
        out
    );
}

fn bound_source(ws: &Workspace) -> Option<String> {
    let metadata = ws
        .warehouse()
        .join("healthcare_dlh.db")
        .join(BRONZE)
        .join("_checkpoint/metadata");
    let value: Value = serde_json::from_slice(&std::fs::read(metadata).unwrap()).unwrap();
    value["source"].as_str().map(str::to_string)
}

#[test]
fn regression_a_stream_pointed_at_another_folder_is_refused() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "6", "--months", "1"]);
    ws.run_ok(&["-q", "bronze"]);
    let tracker = std::fs::canonicalize(ws.tracker()).unwrap();
    assert_eq!(
        bound_source(&ws).as_deref(),
        Some(tracker.to_str().unwrap())
    );
    let bronze_rows = one_number(&ws, "SELECT count(*) FROM fact_heartrate_bronze");

    // Another data folder: January (a name the stream has seen) and February.
    let other = ws.dir.path().join("other");
    let out = with_data(
        &ws,
        &other,
        &[
            "generate",
            "--patients",
            "6",
            "--months",
            "2",
            "--seed",
            "7",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let other_tracker = std::fs::canonicalize(other.join("healthcare/streaming/tracker")).unwrap();
    let version = ws.version(BRONZE);
    for args in [vec!["bronze"], vec!["pipeline"]] {
        let out = with_data(&ws, &other, &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for needle in [
            format!("reads source folder {}", tracker.display()),
            format!("but --data gives {}", other_tracker.display()),
            "--source-moved".to_string(),
        ] {
            assert!(err.contains(&needle), "{needle}: {err}");
        }
        assert_eq!(ws.version(BRONZE), version, "{args:?}: nothing ingested");
    }

    // Moved on purpose: the new folder is recorded; January's name was seen, February is new.
    let out = with_data(&ws, &other, &["bronze", "--source-moved"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("source moved from"), "{err}");
    assert_eq!(
        bound_source(&ws).as_deref(),
        Some(other_tracker.to_str().unwrap())
    );
    let files = sql(
        &ws,
        "SELECT DISTINCT _source_file FROM fact_heartrate_bronze ORDER BY 1",
    );
    assert!(
        files.contains("other/healthcare/streaming/tracker/02.json"),
        "{files}"
    );
    assert!(
        !files.contains("other/healthcare/streaming/tracker/01.json"),
        "{files}"
    );
    assert!(one_number(&ws, "SELECT count(*) FROM fact_heartrate_bronze") > bronze_rows);
    // Now the first folder is the other one.
    ws.run_err(&["bronze"], 2);
}

#[test]
fn a_checkpoint_without_a_source_adopts_the_current_folder() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "3", "--months", "1"]);
    ws.run_ok(&["-q", "bronze"]);
    let metadata = ws
        .warehouse()
        .join("healthcare_dlh.db")
        .join(BRONZE)
        .join("_checkpoint/metadata");
    let mut value: Value = serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    value.as_object_mut().unwrap().remove("source");
    std::fs::write(&metadata, serde_json::to_vec(&value).unwrap()).unwrap();

    let out = ws.medallion().arg("bronze").output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("recorded no source folder"), "{err}");
    let tracker = std::fs::canonicalize(ws.tracker()).unwrap();
    assert_eq!(
        bound_source(&ws).as_deref(),
        Some(tracker.to_str().unwrap())
    );
}

/// `status --json`, and whether it exited 0.
fn status(ws: &Workspace) -> (Value, bool) {
    let out = ws.medallion().args(["--json", "status"]).output().unwrap();
    let code = out.status.code();
    assert!(matches!(code, Some(0 | 1)), "{}", stderr(&out));
    let value = serde_json::from_slice(&out.stdout).unwrap();
    (value, code == Some(0))
}

fn table<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == name)
        .unwrap()
}

#[test]
fn status_says_what_each_layer_has_left_to_do() {
    let ws = Workspace::new();
    // A fresh warehouse: nothing made, nothing wrong; every tracker file is to ingest.
    ws.run_ok(&["generate", "--patients", "12", "--months", "1"]);
    let (fresh, ok) = status(&ws);
    assert!(ok && fresh["consistent"] == true, "{fresh}");
    assert_eq!(table(&fresh, BRONZE)["version"], Value::Null);
    assert_eq!(table(&fresh, BRONZE)["files_to_ingest"], 1);
    assert!(!ws.warehouse().exists(), "status creates nothing");

    // After the pipeline: nothing to do.
    ws.run_ok(&["-q", "pipeline"]);
    let (done, ok) = status(&ws);
    assert!(ok, "{done}");
    assert_eq!(table(&done, BRONZE)["files_to_ingest"], 0);
    assert_eq!(table(&done, BRONZE)["bytes_to_ingest"], 0);
    for name in [SILVER, GOLD, DAILY] {
        assert_eq!(
            table(&done, name).get("versions_to_consume"),
            None,
            "{done}"
        );
    }
    assert_eq!(table(&done, SILVER)["consumed"][BRONZE], 1);
    assert_eq!(table(&done, GOLD)["consumed"][SILVER], 1);
    assert_eq!(table(&done, SILVER)["quarantined"], 0);
    assert_eq!(table(&done, SILVER)["waiting"], 0);
    let text = ws.run_ok(&["status"]);
    assert!(text.contains("| layer "), "{text}");
    assert!(text.contains("consistent: "), "{text}");

    // A new month: one file to ingest, with its bytes.
    ws.run_ok(&["generate", "--append"]);
    let (appended, ok) = status(&ws);
    assert!(ok);
    let size = std::fs::metadata(ws.tracker().join("02.json"))
        .unwrap()
        .len();
    assert_eq!(table(&appended, BRONZE)["files_to_ingest"], 1);
    assert_eq!(table(&appended, BRONZE)["bytes_to_ingest"], size);
    assert!(
        ws.run_ok(&["status"])
            .contains(&format!("1 file to ingest ({size} bytes)"))
    );

    // Bronze only: silver has bronze's new version to consume; gold has nothing new yet.
    ws.run_ok(&["-q", "bronze"]);
    let (bronzed, ok) = status(&ws);
    assert!(ok);
    assert_eq!(table(&bronzed, SILVER)["versions_to_consume"][BRONZE], 1);
    assert_eq!(table(&bronzed, GOLD).get("versions_to_consume"), None);
    ws.run_ok(&["-q", "silver"]);
    let (silvered, _) = status(&ws);
    assert_eq!(table(&silvered, GOLD)["versions_to_consume"][SILVER], 1);
    assert_eq!(table(&silvered, DAILY)["versions_to_consume"][SILVER], 1);
}

#[test]
fn status_finds_positions_its_upstream_does_not_hold() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "12", "--months", "2"]);
    ws.run_ok(&["-q", "pipeline"]);
    // A forced restore of bronze takes back files silver has read: silver's rows stay.
    ws.run_ok(&["-q", "restore", BRONZE, "--version", "1", "--force"]);
    let (restored, ok) = status(&ws);
    assert!(!ok, "{restored}");
    let found = restored["inconsistencies"].to_string();
    assert!(
        found.contains("fact_heartrate_silver holds rows of fact_heartrate_bronze after v1"),
        "{found}"
    );
    let err = ws.run_err(&["status"], 1);
    assert!(err.contains("1 inconsistencies found"), "{err}");
    // Nobody reading the report does not make the warehouse consistent: still exit 1.
    let mut child = ws
        .medallion()
        .arg("status")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("1 inconsistencies found"), "{err}");

    // Bronze replaced by a shorter table: silver consumed a version beyond bronze's latest.
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "12", "--months", "2"]);
    ws.run_ok(&["-q", "pipeline"]);
    std::fs::remove_dir_all(ws.warehouse().join("healthcare_dlh.db").join(BRONZE)).unwrap();
    ws.run_ok(&["-q", "bronze", "--max-files-per-trigger", "0"]);
    let (replaced, ok) = status(&ws);
    assert!(!ok);
    let found = replaced["inconsistencies"].to_string();
    assert!(
        found.contains(
            "fact_heartrate_silver consumed fact_heartrate_bronze up to v2, beyond its latest \
             version v1"
        ),
        "{found}"
    );

    // A checkpoint bound to another folder.
    let other = ws.dir.path().join("other");
    std::fs::create_dir_all(other.join("healthcare/streaming/tracker")).unwrap();
    let out = with_data(&ws, &other, &["--json", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let found = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(found.contains("reads source folder"), "{found}");
}

#[test]
fn regression_status_with_rows_waiting_for_their_patient_is_consistent() {
    // Silver's position in its own waiting table is not an upstream: status took it for one
    // it could not find, and called every warehouse with a waiting row inconsistent; restore
    // refused a silver version from before the first waiting row.
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "12", "--months", "1"]);
    ws.run_ok(&["-q", "pipeline"]);
    ws.write(
        "healthcare/streaming/tracker/99.json",
        r#"[{"device_id": "39", "heartrate": "70", "mrn": "99999999", "time": "1600000000"}]"#,
    );
    ws.run_settled(&["-q", "pipeline"]);
    let (report, ok) = status(&ws);
    assert!(ok && report["consistent"] == true, "{report}");
    assert_eq!(table(&report, SILVER)["waiting"], 1, "{report}");
    let out = ws.run_ok(&["restore", SILVER, "--version", "1", "--force"]);
    assert!(
        out.contains("restore: fact_heartrate_silver v1 restored"),
        "{out}"
    );
    // The next refresh reads the reading again from bronze: it still waits, once.
    ws.run_ok(&["-q", "pipeline"]);
    let (report, _) = status(&ws);
    assert_eq!(table(&report, SILVER)["waiting"], 1, "{report}");
}

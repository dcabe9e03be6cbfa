//! Safety rails (issue 11): commands that used to do the wrong thing without a word. A restore
//! takes a consumer's consumed positions back with its rows; a `--data` that names nothing is
//! an error before any table is made; a bronze stream stays bound to its source folder; and
//! `status` says what each layer still has to do and what does not add up.

use medallion::delta::{self, TableId};
use medallion::warehouse::Warehouse;
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

/// 12 patients, January through the pipeline, then February appended and refreshed.
fn two_runs() -> Workspace {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "12", "--months", "1"]);
    ws.run_ok(&["-q", "pipeline"]);
    ws.run_ok(&["generate", "--append"]);
    ws.run_ok(&["-q", "pipeline"]);
    ws
}

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
    let ws = two_runs();
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
    let ws = two_runs();
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
    let ws = two_runs();
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

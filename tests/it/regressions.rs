//! Regression tests for the defects an adversarial run found (issue 10): each is named after
//! the bug it pins and fails without its fix.

use std::collections::BTreeMap;

use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Float64Type, Int64Type};
use medallion::failpoint::points;

use crate::common::Workspace;

const SILVER: &str = "fact_heartrate_silver";
const SILVER_QUARANTINE: &str = "fact_heartrate_silver_quarantine";
const BRONZE_QUARANTINE: &str = "fact_heartrate_bronze_quarantine";
const GOLD: &str = "fact_heartrate_gold";

const ADA: &str = "10000001";
const BOB: &str = "20000002";

fn reading(device: u32, rate: &str, mrn: &str, time: i64) -> String {
    format!(
        r#"{{"device_id": "{device}", "heartrate": "{rate}", "mrn": "{mrn}", "time": "{time}"}}"#
    )
}

fn array(rows: &[String]) -> String {
    format!("[\n{}\n]\n", rows.join(",\n"))
}

/// `n` readings of one device, 900 s apart from `start`, each with heart rate `rate(i)`.
fn readings(n: usize, mrn: &str, start: i64, rate: impl Fn(usize) -> String) -> Vec<String> {
    (0..n)
        .map(|i| reading(7, &rate(i), mrn, start + 900 * i as i64))
        .collect()
}

/// Silver's heart rate per reading time (epoch seconds) of one patient.
fn silver_rates(ws: &Workspace, mrn: i64) -> BTreeMap<i64, f64> {
    let mut rates = BTreeMap::new();
    for batch in ws.rows(SILVER) {
        let mrns = cast(batch.column_by_name("mrn").unwrap(), &DataType::Int64).unwrap();
        let times = cast(batch.column_by_name("datetime").unwrap(), &DataType::Int64).unwrap();
        let heart = batch.column_by_name("heartrate").unwrap();
        let (mrns, times) = (
            mrns.as_primitive::<Int64Type>(),
            times.as_primitive::<Int64Type>(),
        );
        let heart = heart.as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            if mrns.value(i) == mrn {
                let previous = rates.insert(times.value(i) / 1_000_000, heart.value(i));
                assert!(previous.is_none(), "one row per reading");
            }
        }
    }
    rates
}

/// Gold's (count, avg_heartrate, sum_heartrate) per mrn.
fn gold(ws: &Workspace) -> BTreeMap<i64, (i64, Option<i64>, Option<f64>)> {
    let mut rows = BTreeMap::new();
    for batch in ws.rows(GOLD) {
        let col =
            |name: &str, to: &DataType| cast(batch.column_by_name(name).unwrap(), to).unwrap();
        let (mrn, count, avg) = (
            col("mrn", &DataType::Int64),
            col("count", &DataType::Int64),
            col("avg_heartrate", &DataType::Int64),
        );
        let sum = col("sum_heartrate", &DataType::Float64);
        let (mrn, count, avg) = (
            mrn.as_primitive::<Int64Type>(),
            count.as_primitive::<Int64Type>(),
            avg.as_primitive::<Int64Type>(),
        );
        let sum = sum.as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            rows.insert(
                mrn.value(i),
                (
                    count.value(i),
                    avg.is_valid(i).then(|| avg.value(i)),
                    sum.is_valid(i).then(|| sum.value(i)),
                ),
            );
        }
    }
    rows
}

fn patients(ws: &Workspace, rows: &[(&str, &str)]) {
    let mut text = "mrn,name\n".to_string();
    for (mrn, name) in rows {
        text.push_str(&format!("{mrn},{name}\n"));
    }
    ws.write("healthcare/batch/patient_info.csv", &text);
}

const START: i64 = 1_600_000_000;

#[test]
fn regression_the_last_delivery_wins_for_readings_that_waited_for_their_patient() {
    // Bob's 20,000 readings arrive before Bob, then again with other values (a later file);
    // both deliveries wait. When Bob arrives every reading must hold the second value.
    let ws = Workspace::new();
    patients(&ws, &[(ADA, "Ada")]);
    let n = 20_000;
    ws.write(
        "healthcare/streaming/tracker/01.json",
        &array(&readings(n, BOB, START, |i| format!("{}.5", 60 + i % 30))),
    );
    ws.run_ok(&["pipeline"]);
    ws.write(
        "healthcare/streaming/tracker/02.json",
        &array(&readings(n, BOB, START, |i| format!("{}.25", 100 + i % 30))),
    );
    let out = ws.run_ok(&["pipeline"]);
    // Only the last delivery of each reading waits (the waiting table does not grow with
    // re-deliveries).
    assert!(out.contains(&format!("{n} waiting")), "{out}");
    let waiting: usize = ws
        .rows("fact_heartrate_silver_waiting")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(waiting, n);
    patients(&ws, &[(ADA, "Ada"), (BOB, "Bob")]);
    ws.run_ok(&["pipeline"]);
    let rates = silver_rates(&ws, BOB.parse().unwrap());
    assert_eq!(rates.len(), n);
    let stale: Vec<_> = rates
        .iter()
        .enumerate()
        .filter(|(i, (_, rate))| **rate != (100 + i % 30) as f64 + 0.25)
        .collect();
    assert!(
        stale.is_empty(),
        "{} stale readings, e.g. {:?}",
        stale.len(),
        &stale[..1]
    );
    assert_eq!(gold(&ws)[&BOB.parse::<i64>().unwrap()].0, n as i64);
}

#[test]
fn regression_the_last_delivery_wins_inside_one_large_file_across_a_batch_boundary() {
    // Silver already holds the readings (so the second file goes through the MERGE); then one
    // file holds every reading twice, 10,000 rows apart, so each pair straddles row 8,192.
    let ws = Workspace::new();
    patients(&ws, &[(ADA, "Ada")]);
    let n = 10_000;
    ws.write(
        "healthcare/streaming/tracker/01.json",
        &array(&readings(n, ADA, START, |_| "50".into())),
    );
    ws.run_ok(&["pipeline"]);
    let mut rows = readings(n, ADA, START, |i| format!("{}.5", 60 + i % 20));
    rows.extend(readings(n, ADA, START, |i| format!("{}.75", 80 + i % 20)));
    ws.write("healthcare/streaming/tracker/02.json", &array(&rows));
    let out = ws.run_ok(&["pipeline"]);
    assert!(out.contains(&format!("{n} updated")), "{out}");
    let rates = silver_rates(&ws, ADA.parse().unwrap());
    assert_eq!(rates.len(), n);
    let stale = rates
        .values()
        .enumerate()
        .filter(|(i, rate)| **rate != (80 + i % 20) as f64 + 0.75)
        .count();
    assert_eq!(stale, 0, "readings that kept the earlier copy of the file");
}

#[test]
fn regression_an_absurd_heartrate_is_quarantined_and_gold_keeps_refreshing() {
    let ws = Workspace::new();
    patients(&ws, &[(ADA, "Ada"), (BOB, "Bob")]);
    ws.write(
        "healthcare/streaming/tracker/01.json",
        &array(&[
            reading(1, "70", ADA, START),
            reading(1, "1e300", ADA, START + 900),
            reading(1, "1e308", ADA, START + 1800),
            reading(1, "-1e308", ADA, START + 2700),
            reading(1, "1000.0001", ADA, START + 3600),
            reading(2, "1000", BOB, START),
            reading(2, "-1000", BOB, START + 900),
            reading(2, "-0.0", BOB, START + 1800),
        ]),
    );
    let out = ws.run_ok(&["pipeline"]);
    assert!(out.contains("4 quarantined"), "{out}");
    let quarantine = crate::common::sorted_lines(&ws.rows(SILVER_QUARANTINE)).join("\n");
    for value in ["1e300", "1e308", "-1e308", "1000.0001"] {
        assert!(
            quarantine.contains(&format!(
                "heartrate \"{value}\" is outside the plausible range"
            )),
            "{value}: {quarantine}"
        );
    }
    // A re-delivery and a rename make gold recompute both patients: it must not fail.
    ws.write(
        "healthcare/streaming/tracker/02.json",
        &array(&[
            reading(1, "80", ADA, START),
            reading(2, "999.5", BOB, START),
        ]),
    );
    patients(&ws, &[(ADA, "Ada L."), (BOB, "Bob")]);
    ws.run_ok(&["pipeline"]);
    let rows = gold(&ws);
    assert_eq!(
        rows[&ADA.parse::<i64>().unwrap()],
        (1, Some(80), Some(80.0))
    );
    // (999.5 - 1000 + 0) / 3 = -0.1666…, rounded up: 0.
    assert_eq!(rows[&BOB.parse::<i64>().unwrap()], (3, Some(0), Some(-0.5)));
    let bob = silver_rates(&ws, BOB.parse().unwrap());
    let zero = bob[&(START + 1800)];
    assert!(
        zero == 0.0 && zero.is_sign_positive(),
        "-0.0 is stored as 0: {zero}"
    );
}

#[test]
fn regression_both_gold_paths_compute_the_same_row() {
    // One warehouse gets three deliveries: new readings (gold combines them with its old row),
    // then a re-delivery with another value (gold recomputes the patient). Others get the same
    // readings at once: each refresh must give what a one-shot computation gives.
    let a: Vec<String> = readings(50, ADA, START, |i| format!("{}.1", 995 - i));
    let b: Vec<String> = readings(50, ADA, START + 900 * 50, |i| format!("-{}.3", 990 - i));
    let c = vec![reading(7, "-999.9", ADA, START)];
    let once = |files: &[&[String]]| {
        let ws = Workspace::new();
        patients(&ws, &[(ADA, "Ada")]);
        let all: Vec<String> = files.iter().flat_map(|f| f.iter().cloned()).collect();
        ws.write("healthcare/streaming/tracker/01.json", &array(&all));
        ws.run_ok(&["pipeline"]);
        gold(&ws)[&ADA.parse::<i64>().unwrap()]
    };
    let ws = Workspace::new();
    patients(&ws, &[(ADA, "Ada")]);
    ws.write("healthcare/streaming/tracker/01.json", &array(&a));
    ws.run_ok(&["pipeline"]);
    for (file, rows, path, expected) in [
        ("02.json", &b, "(1 from new readings only)", once(&[&a, &b])),
        (
            "03.json",
            &c,
            "(0 from new readings only)",
            once(&[&a, &b, &c]),
        ),
    ] {
        ws.write(
            &format!("healthcare/streaming/tracker/{file}"),
            &array(rows),
        );
        let out = ws.run_ok(&["pipeline"]);
        assert!(
            out.contains(&format!("1 patients refreshed {path}")),
            "{out}"
        );
        let (count, avg, sum) = gold(&ws)[&ADA.parse::<i64>().unwrap()];
        assert_eq!((count, avg), (expected.0, expected.1), "{file}");
        assert!((sum.unwrap() - expected.2.unwrap()).abs() < 1e-6, "{file}");
    }
    // And the one-shot numbers are the plain mean, rounded up.
    let (count, avg, _) = once(&[&a, &b, &c]);
    let exact: f64 = -999.9
        + (1..50).map(|i| 995.1 - i as f64).sum::<f64>()
        + (0..50).map(|i| -(990.3 - i as f64)).sum::<f64>();
    assert_eq!((count, avg), (100, Some((exact / 100.0).ceil() as i64)));
}

/// The newest commit file of a table's log.
fn newest_commit(ws: &Workspace, table: &str) -> std::path::PathBuf {
    let log = ws
        .warehouse()
        .join("healthcare_dlh.db")
        .join(table)
        .join("_delta_log");
    let mut commits: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    commits.sort();
    commits.pop().unwrap()
}

#[test]
fn regression_a_torn_newest_commit_stops_the_job_naming_the_file() {
    let ws = Workspace::new();
    patients(&ws, &[(ADA, "Ada")]);
    ws.write(
        "healthcare/streaming/tracker/01.json",
        &array(&readings(101, ADA, START, |_| "70".into())),
    );
    ws.run_ok(&["pipeline"]);
    ws.write(
        "healthcare/streaming/tracker/02.json",
        &array(&readings(1, ADA, START + 900 * 200, |_| "71".into())),
    );
    ws.run_ok(&["bronze"]);
    let torn = newest_commit(&ws, SILVER);
    std::fs::write(&torn, b"").unwrap();
    let gold_before = gold(&ws);
    for job in ["silver", "gold", "pipeline"] {
        let err = ws.run_err(&[job], 1);
        assert!(
            err.contains(&torn.display().to_string()) && err.contains("empty (0 bytes)"),
            "{job}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // Nothing was "repaired" and nothing counted twice.
    assert_eq!(std::fs::metadata(&torn).unwrap().len(), 0);
    assert_eq!(gold(&ws), gold_before);
    assert_eq!(gold_before[&ADA.parse::<i64>().unwrap()].0, 101);

    // Garbage instead of nothing: named with its line.
    std::fs::write(&torn, b"{\"commitInfo\":{}}\n{\"add\":").unwrap();
    let err = ws.run_err(&["silver"], 1);
    assert!(err.contains(&format!("{}:2", torn.display())), "{err}");
}

#[test]
fn regression_a_first_delivery_without_silver_rows_does_not_block_gold() {
    let cases: [(&str, Option<String>); 4] = [
        ("no tracker file yet", None),
        ("an empty array", Some("[]".into())),
        (
            "only bad rows",
            Some(array(&[reading(1, "fast", ADA, START)])),
        ),
        (
            "only unknown patients",
            Some(array(&[reading(1, "70", BOB, START)])),
        ),
    ];
    for (label, first) in cases {
        let ws = Workspace::new();
        patients(&ws, &[(ADA, "Ada")]);
        std::fs::create_dir_all(ws.tracker()).unwrap();
        if let Some(text) = first {
            ws.write("healthcare/streaming/tracker/01.json", &text);
        }
        for _ in 0..2 {
            ws.run_ok(&["pipeline"]);
        }
        assert!(gold(&ws).is_empty(), "{label}");
        ws.write(
            "healthcare/streaming/tracker/02.json",
            &array(&[
                reading(1, "70", ADA, START + 900),
                reading(1, "81", ADA, START + 1800),
            ]),
        );
        ws.run_ok(&["pipeline"]);
        assert_eq!(
            gold(&ws)[&ADA.parse::<i64>().unwrap()],
            (2, Some(76), Some(151.0)),
            "{label}"
        );
    }
}

#[test]
fn regression_a_duplicate_key_rejects_the_element_with_its_line() {
    let ws = Workspace::new();
    patients(&ws, &[(ADA, "Ada")]);
    ws.write(
        "healthcare/streaming/tracker/01.json",
        &format!(
            "[\n{},\n{}\n]\n",
            reading(1, "70", ADA, START),
            r#"{"device_id": "1", "heartrate": "71", "heartrate": "99", "mrn": "10000001", "time": "1600000900"}"#
        ),
    );
    let out = ws.medallion().arg("pipeline").output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("01.json:3"), "{stderr}");
    let quarantine = crate::common::sorted_lines(&ws.rows(BRONZE_QUARANTINE)).join("\n");
    assert!(
        quarantine.contains("the key \"heartrate\" appears twice"),
        "{quarantine}"
    );
    assert_eq!(silver_rates(&ws, ADA.parse().unwrap()).len(), 1);
}

#[test]
fn regression_a_one_reading_redelivery_rewrites_only_its_month() {
    // Three months of readings, then one of them delivered again with another value: silver's
    // MERGE must rewrite February's rows only, not the whole table (before, silver was one
    // file, rewritten whole by any re-delivery).
    let ws = Workspace::new();
    patients(&ws, &[(ADA, "Ada")]);
    let start = 1_577_836_800; // 2020-01-01T00:00:00Z
    let n = 96 * 91; // every 900 s from January to March
    ws.write(
        "healthcare/streaming/tracker/01.json",
        &array(&readings(n, ADA, start, |i| format!("{}", 60 + i % 40))),
    );
    ws.run_ok(&["pipeline"]);
    let february = start + 900 * 96 * 40;
    ws.write(
        "healthcare/streaming/tracker/02.json",
        &array(&[reading(7, "123.5", ADA, february)]),
    );
    let out = ws.run_ok(&["pipeline"]);
    assert!(out.contains("0 inserted, 1 updated"), "{out}");
    let newest = newest_commit(&ws, SILVER);
    let actions: Vec<serde_json::Value> = std::fs::read_to_string(&newest)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let removed = actions.iter().filter(|a| a.get("remove").is_some()).count();
    let rewritten: u64 = actions
        .iter()
        .filter_map(|a| a.get("add"))
        .map(|add| {
            let stats: serde_json::Value =
                serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
            stats["numRecords"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(removed, 1, "{newest:?}");
    assert_eq!(rewritten, 96 * 29, "February 2020's rows, no more");
    let live = ws.rows(SILVER).iter().map(|b| b.num_rows()).sum::<usize>();
    assert_eq!(live, n);
    assert_eq!(silver_rates(&ws, ADA.parse().unwrap())[&february], 123.5);
}

#[test]
fn regression_a_merge_of_a_redelivery_and_a_new_month_keeps_files_to_one_month() {
    // Each refresh brings a new month and a re-delivery of an old reading: one MERGE of both
    // wrote one file spanning the months between, rewritten whole by every later refresh.
    let ws = Workspace::new();
    patients(&ws, &[(ADA, "Ada")]);
    let start = 1_577_836_800; // 2020-01-01T00:00:00Z
    let month = 96 * 30;
    ws.write(
        "healthcare/streaming/tracker/00.json",
        &array(&readings(month * 3, ADA, start, |i| {
            format!("{}", 60 + i % 40)
        })),
    );
    ws.run_ok(&["pipeline"]);
    for round in 1..=3i64 {
        let later = start + 900 * (month as i64) * (2 + round);
        let mut rows = readings(month, ADA, later, |_| "70".into());
        rows.push(reading(
            7,
            &format!("{}.5", 100 + round),
            ADA,
            start + 900 * round,
        ));
        ws.write(
            &format!("healthcare/streaming/tracker/{round:02}.json"),
            &array(&rows),
        );
        ws.run_ok(&["pipeline"]);
        assert!(
            ws.assert_silver_files_keep_to_one_month(false) > 0,
            "round {round}"
        );
        let rates = silver_rates(&ws, ADA.parse().unwrap());
        assert_eq!(rates[&(start + 900 * round)], 100.0 + round as f64 + 0.5);
        assert_eq!(rates.len(), month * (3 + round as usize));
    }
}

#[test]
fn regression_gold_paths_agree_when_the_mean_is_a_whole_number() {
    // 0.1 + 0.2 + 2.7 = 3 exactly, but as doubles added in this order 3.0000000000000004:
    // ceil of the mean gave 2 when gold combined the later readings with its row, 1 when it
    // recomputed them all.
    let combined = Workspace::new();
    let at_once = Workspace::new();
    for ws in [&combined, &at_once] {
        patients(ws, &[(ADA, "Ada")]);
    }
    let first = [reading(1, "0.1", ADA, START)];
    let later = [
        reading(1, "0.2", ADA, START + 900),
        reading(1, "2.7", ADA, START + 1800),
    ];
    combined.write("healthcare/streaming/tracker/01.json", &array(&first));
    combined.run_ok(&["pipeline"]);
    combined.write("healthcare/streaming/tracker/02.json", &array(&later));
    let out = combined.run_ok(&["pipeline"]);
    assert!(out.contains("(1 from new readings only)"), "{out}");
    let all: Vec<String> = first.iter().chain(&later).cloned().collect();
    at_once.write("healthcare/streaming/tracker/01.json", &array(&all));
    at_once.run_ok(&["pipeline"]);
    let mrn = ADA.parse::<i64>().unwrap();
    assert_eq!(gold(&combined)[&mrn], (3, Some(1), Some(3.0)));
    assert_eq!(gold(&at_once)[&mrn], (3, Some(1), Some(3.0)));
}

#[test]
fn regression_a_damaged_checkpoint_is_named() {
    // Bronze writes a Delta checkpoint at v100: tear it, then point `_last_checkpoint` nowhere.
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "3", "--months", "101"]);
    ws.run_settled(&["-q", "bronze"]);
    let log = ws
        .warehouse()
        .join("healthcare_dlh.db/fact_heartrate_bronze/_delta_log");
    let checkpoint = log.join("00000000000000000100.checkpoint.parquet");
    let whole = std::fs::read(&checkpoint).unwrap();
    std::fs::write(&checkpoint, &whole[..whole.len() / 2]).unwrap();
    for args in [
        &["tables"][..],
        &["-q", "bronze"],
        &["history", "fact_heartrate_bronze"],
    ] {
        let err = ws.run_err(args, 1);
        assert!(
            err.contains(&checkpoint.display().to_string())
                && err.contains("not a whole Parquet file"),
            "{args:?}: {err}"
        );
    }
    std::fs::write(&checkpoint, &whole).unwrap();
    let pointer = log.join("_last_checkpoint");
    let kept = std::fs::read(&pointer).unwrap();
    std::fs::write(&pointer, br#"{"version":107,"size":3}"#).unwrap();
    let err = ws.run_err(&["-q", "bronze"], 1);
    assert!(
        err.contains("_last_checkpoint") && err.contains("checkpoint of v107"),
        "{err}"
    );
    std::fs::write(&pointer, kept).unwrap();
    ws.run_ok(&["-q", "bronze"]);
}

#[test]
fn regression_a_crash_between_silver_writes_then_a_rerun_doubles_nothing() {
    // A refresh with a re-delivery (MERGEd) and a new month (appended) writes two commits and
    // records what it consumed only in the last: killed between them, the rerun reads the
    // slice again; its MERGE changes nothing, and the month is appended once.
    let ws = Workspace::new();
    patients(&ws, &[(ADA, "Ada")]);
    let start = 1_577_836_800; // 2020-01-01T00:00:00Z
    let month = 96 * 31;
    ws.write(
        "healthcare/streaming/tracker/01.json",
        &array(&readings(month, ADA, start, |_| "60".into())),
    );
    ws.run_ok(&["pipeline"]);
    let mut rows = readings(month, ADA, start + 900 * month as i64, |_| "70".into());
    rows.push(reading(7, "99.5", ADA, start + 900));
    ws.write("healthcare/streaming/tracker/02.json", &array(&rows));
    let before = ws.version(SILVER);
    let out = ws
        .medallion()
        .arg("pipeline")
        .env("MEDALLION_FAILPOINT", points::SILVER_BETWEEN_WRITES)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the failpoint was reached");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("failpoint {}", points::SILVER_BETWEEN_WRITES)),
        "the kill landed between the two writes"
    );
    assert_eq!(
        ws.version(SILVER),
        before.map(|v| v + 1),
        "the MERGE landed, the append did not"
    );
    ws.run_ok(&["pipeline"]);
    let rates = silver_rates(&ws, ADA.parse().unwrap());
    assert_eq!(rates.len(), 2 * month, "no reading twice, none lost");
    assert_eq!(rates[&(start + 900)], 99.5);
    let mrn = ADA.parse::<i64>().unwrap();
    assert_eq!(gold(&ws)[&mrn].0, 2 * month as i64);
}

#[test]
fn regression_a_closed_stdout_pipe_ends_output_without_a_panic() {
    // `medallion --json bronze | head -1` and `pipeline | head -1`: the reader goes away after
    // one line; the command ends quietly (exit 0, no panic, as ripgrep does): the stream after
    // the batch whose record found the pipe closed (a rerun finishes the rest exactly once),
    // the pipeline once its layers are done (its lines are lost, not its work).
    for args in [&["--json", "bronze"][..], &["pipeline"]] {
        let ws = Workspace::new();
        patients(&ws, &[(ADA, "Ada")]);
        // Enough batches that records are still being written after the reader has gone.
        for i in 0..20 {
            ws.write(
                &format!("healthcare/streaming/tracker/{i:02}.json"),
                &array(&readings(200, ADA, START + 900 * 200 * i, |_| "70".into())),
            );
        }
        let (first, out) = ws.read_first_line_then_close(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!first.is_empty(), "{args:?}");
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(!stderr.contains("panick"), "{args:?}: {stderr}");
        assert!(stderr.trim().is_empty(), "{args:?}: {stderr}");
        if args == ["pipeline"] {
            // Nobody reads the layers' lines any more, but the pipeline's work is not lost
            // for it: every layer ran.
            assert_eq!(ws.version("fact_heartrate_bronze"), Some(20), "{args:?}");
            assert!(ws.version("fact_heartrate_gold").is_some(), "{args:?}");
        } else {
            // The stream stopped after the batch whose record found the pipe closed, as on
            // SIGTERM: the batches read ahead were discarded, not left as orphans.
            let stopped_at = ws.version("fact_heartrate_bronze").unwrap_or(0);
            assert!(
                stopped_at < 20,
                "{args:?}: the closed pipe stopped it, at v{stopped_at}"
            );
            assert_eq!(
                crate::hostile_env::unnamed_files(&ws.warehouse()),
                Vec::<String>::new(),
                "{args:?}"
            );
            ws.run_ok(args);
            assert_eq!(ws.version("fact_heartrate_bronze"), Some(20), "{args:?}");
        }
        let rows: usize = ws
            .rows("fact_heartrate_bronze")
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 20 * 200, "{args:?}: every row once");
    }
}

#[test]
fn regression_two_silvers_on_a_slice_with_a_merge_and_an_append_double_nothing() {
    // The slice is written as a MERGE then an append, and only the append carries what was
    // consumed: two refreshes at once must not both append it. Five rounds, each a race.
    let start = 1_577_836_800; // 2020-01-01T00:00:00Z
    let month = 96 * 31;
    for round in 0..5 {
        let ws = Workspace::new();
        patients(&ws, &[(ADA, "Ada")]);
        ws.write(
            "healthcare/streaming/tracker/01.json",
            &array(&readings(month, ADA, start, |_| "60".into())),
        );
        ws.run_ok(&["pipeline"]);
        let mut rows = readings(month, ADA, start + 900 * month as i64, |_| "70".into());
        rows.push(reading(7, "99.5", ADA, start + 900));
        ws.write("healthcare/streaming/tracker/02.json", &array(&rows));
        ws.run_settled(&["-q", "bronze"]);
        let racers: Vec<_> = (0..2)
            .map(|_| ws.medallion().arg("silver").spawn().unwrap())
            .collect();
        let codes: Vec<Option<i32>> = racers
            .into_iter()
            .map(|mut c| c.wait().unwrap().code())
            .collect();
        assert!(
            codes.iter().all(|c| matches!(c, Some(0 | 3))) && codes.contains(&Some(0)),
            "round {round}: {codes:?}"
        );
        ws.run_ok(&["-q", "silver"]);
        let rates = silver_rates(&ws, ADA.parse().unwrap());
        assert_eq!(rates.len(), 2 * month, "round {round}: {codes:?}");
        assert_eq!(rates[&(start + 900)], 99.5, "round {round}");
    }
}

#[test]
fn regression_tables_failed_while_a_table_was_being_created() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "3", "--months", "2"]);
    ws.run_settled(&["-q", "pipeline"]);
    // A table whose folder and `_delta_log` exist, with no commit yet (a job creating it).
    let creating = ws
        .warehouse()
        .join("healthcare_dlh.db/new_table/_delta_log");
    std::fs::create_dir_all(&creating).unwrap();
    let out = ws.run_ok(&["tables"]);
    assert!(
        out.contains("fact_heartrate_gold") && !out.contains("new_table"),
        "{out}"
    );
    let err = ws.run_err(&["show", "new_table"], 1);
    assert!(err.contains("holds no commit yet"), "{err}");
    assert!(!err.contains("the tables are"), "{err}");
}

#[test]
fn regression_runs_starting_at_once_said_the_checkpoint_was_made_by_an_earlier_medallion() {
    // A new checkpoint's metadata named its source only after its creation: a run starting
    // in between read no source and warned of a checkpoint "made by an earlier medallion".
    for round in 0..6 {
        let ws = Workspace::new();
        ws.run_ok(&["generate", "--patients", "2", "--months", "2"]);
        let runs: Vec<_> = (0..4)
            .map(|_| {
                ws.medallion()
                    .env(crate::common::SETTLE, "0")
                    .args(["bronze"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for run in runs {
            let out = run.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !stderr.contains("made by an earlier medallion"),
                "round {round}: {stderr}"
            );
        }
    }
}

//! `medallion bronze`: exactly once through crashes, kills and races; incremental; bad input
//! kept in quarantine with its reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use deltalake::arrow::array::{Array, RecordBatch};
use medallion::failpoint::points;

use crate::common::{
    KillClock, SETTLE, Workspace, kill_rounds, killed, last_planned, recovered_batches, spawn_held,
    unfinished_batch, wait_until_paused, write_tracker,
};

const BRONZE: &str = "fact_heartrate_bronze";
const QUARANTINE: &str = "fact_heartrate_bronze_quarantine";

type Row = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The progress records of `--json bronze`'s output (one per batch, before the report).
fn progress_records(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|record| record.get("batchId").is_some())
        .collect()
}

/// Every source row, read by the test on its own: (file, device_id, heartrate, mrn, time).
fn source_rows(ws: &Workspace) -> Vec<Row> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(ws.tracker()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.starts_with('.') || name.ends_with(".tmp") {
            continue;
        }
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&path).unwrap())
        else {
            continue;
        };
        for e in value.as_array().into_iter().flatten() {
            let get = |k: &str| e.get(k).and_then(|v| v.as_str()).map(str::to_string);
            rows.push((
                name.clone(),
                get("device_id"),
                get("heartrate"),
                get("mrn"),
                get("time"),
            ));
        }
    }
    rows.sort();
    rows
}

/// Every bronze row as the same tuple.
fn bronze_rows(ws: &Workspace) -> Vec<Row> {
    let mut rows = Vec::new();
    for batch in ws.rows(BRONZE) {
        let col = |name: &str| medallion::testing::strings(&batch, name).unwrap();
        let (file, dev, hr, mrn, time) = (
            col("_source_file"),
            col("device_id"),
            col("heartrate"),
            col("mrn"),
            col("time"),
        );
        let opt = |a: &deltalake::arrow::array::StringArray, i: usize| {
            (!a.is_null(i)).then(|| a.value(i).to_string())
        };
        for i in 0..batch.num_rows() {
            let name = Path::new(file.value(i))
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            rows.push((name, opt(&dev, i), opt(&hr, i), opt(&mrn, i), opt(&time, i)));
        }
    }
    rows.sort();
    rows
}

fn assert_exactly_once(ws: &Workspace) {
    let (source, bronze) = (source_rows(ws), bronze_rows(ws));
    assert_eq!(source.len(), bronze.len(), "row counts differ");
    assert!(
        source == bronze,
        "bronze does not hold each source row exactly once"
    );
}

fn count_column(batches: &[RecordBatch], name: &str) -> BTreeMap<i64, usize> {
    let mut counts = BTreeMap::new();
    for b in batches {
        let col = medallion::testing::int64s(b, name).unwrap();
        for v in col.iter().flatten() {
            *counts.entry(v).or_default() += 1;
        }
    }
    counts
}

#[test]
fn ingests_each_file_once_one_commit_per_batch_and_only_new_files_later() {
    let ws = Workspace::new();
    for i in 1..=4 {
        write_tracker(&ws, &format!("{i:02}.json"), 10 + i);
    }
    let out = ws.run_ok(&["bronze"]);
    assert!(
        out.contains("bronze: 4 batches, 4 files, 50 rows, 0 quarantined"),
        "{out}"
    );
    assert_exactly_once(&ws);
    // Version 0 creates the table; one commit per batch.
    assert_eq!(ws.version(BRONZE), Some(4));
    let batches = count_column(&ws.rows(BRONZE), "_batch_id");
    assert_eq!(batches.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 3]);

    // Nothing new: no version.
    let out = ws.run_ok(&["bronze"]);
    assert!(out.contains("0 batches"), "{out}");
    assert_eq!(ws.version(BRONZE), Some(4));

    // A new file: only it.
    write_tracker(&ws, "05.json", 7);
    let out = ws.run_ok(&["bronze", "--max-files-per-trigger", "0"]);
    assert!(out.contains("1 batches, 1 files, 7 rows"), "{out}");
    assert_eq!(ws.version(BRONZE), Some(5));
    assert_exactly_once(&ws);

    // Progress records, one per batch, with Spark's names.
    let progress = std::fs::read_to_string(
        ws.warehouse()
            .join("healthcare_dlh.db/fact_heartrate_bronze/_checkpoint/progress.jsonl"),
    )
    .unwrap();
    let records: Vec<serde_json::Value> = progress
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 5);
    assert_eq!(records[4]["batchId"], 4);
    assert_eq!(records[4]["numInputRows"], 7);
    assert_eq!(records[4]["sink"]["numOutputRows"], 7);
    assert_eq!(records[4]["sources"][0]["files"][0], "05.json");
    for key in [
        "id",
        "runId",
        "name",
        "timestamp",
        "inputRowsPerSecond",
        "processedRowsPerSecond",
    ] {
        assert!(records[4].get(key).is_some(), "{key} missing");
    }
    assert!(records[4]["durationMs"]["triggerExecution"].is_u64());
}

#[test]
fn unbounded_batches_take_every_file_in_one_commit() {
    let ws = Workspace::new();
    for i in 1..=6 {
        write_tracker(&ws, &format!("{i:02}.json"), 3);
    }
    let out = ws.run_ok(&["--json", "bronze", "--max-files-per-trigger", "0"]);
    let records = progress_records(&out);
    assert_eq!(records.len(), 1, "{out}");
    assert_eq!(records[0]["numInputRows"], 18);
    assert_eq!(ws.version(BRONZE), Some(1));
    assert_exactly_once(&ws);
}

#[test]
fn trigger_once_runs_one_batch() {
    let ws = Workspace::new();
    for i in 1..=3 {
        write_tracker(&ws, &format!("{i:02}.json"), 2);
    }
    ws.run_ok(&["bronze", "--trigger", "once"]);
    assert_eq!(ws.version(BRONZE), Some(1));
    ws.run_ok(&["bronze"]);
    assert_eq!(ws.version(BRONZE), Some(3));
    assert_exactly_once(&ws);
}

#[test]
fn every_failpoint_then_a_rerun_gives_exactly_once() {
    for point in [
        points::PLAN_BEFORE_RENAME,
        points::AFTER_PLAN,
        points::BEFORE_COMMIT,
        points::BETWEEN_COMMITS,
        points::AFTER_COMMIT,
    ] {
        let ws = Workspace::new();
        for i in 1..=3 {
            write_tracker(&ws, &format!("{i:02}.json"), 5);
        }
        // A bad file in the first batch, so the quarantine commit is crossed too.
        std::fs::write(ws.tracker().join("00.json"), "[{\"mrn\": \"1\"}, 7]").unwrap();
        let out = ws
            .medallion()
            .env("MEDALLION_FAILPOINT", point)
            .args(["bronze"])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{point}: the failpoint did not stop the run"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("failpoint {point}")));

        let out = ws.run_ok(&["--json", "bronze"]);
        let records = progress_records(&out);
        let batches: Vec<i64> = records
            .iter()
            .map(|r| r["batchId"].as_i64().unwrap())
            .collect();
        assert_eq!(batches, [0, 1, 2, 3], "{point}: batches after the restart");

        // The files' rows exactly once; the bad element once in quarantine.
        let mut source = source_rows(&ws);
        source.retain(|r| r.0 != "00.json");
        let mut bronze = bronze_rows(&ws);
        let from_bad: Vec<Row> = bronze.extract_if(.., |r| r.0 == "00.json").collect();
        assert_eq!(from_bad.len(), 1, "{point}");
        assert_eq!(source, bronze, "{point}");
        let quarantined = count_column(&ws.rows(QUARANTINE), "batch_id");
        assert_eq!(
            quarantined.values().sum::<usize>(),
            1,
            "{point}: {quarantined:?}"
        );
        // One bronze commit per batch: v0 creates the table.
        assert_eq!(ws.version(BRONZE), Some(4), "{point}");
    }
}

#[test]
fn random_kills_lose_nothing_and_duplicate_nothing() {
    // `make soak` runs 500 rounds. Each round delivers new files, so every run has batches to
    // do, and kills it at a random moment.
    let ws = Workspace::new();
    let rounds = kill_rounds(30);
    let mut clock = KillClock::new(20261128);
    let (mut live, mut interrupted, mut in_recovery) = (0, 0, 0);
    let mut unfinished = BTreeSet::new();
    // Under load (the whole suite beside it) fewer kills land inside a batch: up to twice as
    // many rounds again are run until a quarter of the planned number did (7 of 30 once did
    // within 30 rounds while the suite ran; 14 to 17 alone).
    let most = rounds * 3;
    let mut round = 0;
    while round < rounds || (interrupted * 4 < rounds && round < most) {
        round += 1;
        let round = round - 1;
        for f in 0..12 {
            write_tracker(&ws, &format!("{round:03}-{f}.json"), 25);
        }
        let before = unfinished_batch(&ws);
        let planned = last_planned(&ws);
        let mut cmd = ws.medallion();
        // Auto-compaction every 40 files: kills land in compactions too.
        cmd.env(SETTLE, "0")
            .args(["-q", "bronze", "--auto-compact", "40"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // One round in four: a kill anywhere in the run (its start-up, the recovery of what the
        // last kill left); the others: once it has planned a batch of its own, in its batches.
        let out = if round % 4 == 0 {
            clock.run(&mut cmd)
        } else {
            // Its work is over once it planned a batch and has none unfinished (its event log
            // and a compaction may follow).
            clock.run_during(
                &mut cmd,
                || last_planned(&ws) > planned,
                || last_planned(&ws) > planned && unfinished_batch(&ws).is_none(),
            )
        };
        if !killed(&out.status) {
            // Done before the kill: it must have succeeded.
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        }
        live += 1;
        let after = unfinished_batch(&ws);
        // A batch this run planned and did not finish (not one an earlier run left, which
        // this one may not have reached).
        if after.is_some() && after != before {
            interrupted += 1;
        } else if before.is_some() && after == before {
            // Killed again before it had finished what the last kill left.
            in_recovery += 1;
        }
        unfinished.extend(after);
    }
    let (planned_rounds, rounds) = (rounds, round);
    eprintln!(
        "random_kills: {rounds} rounds ({planned_rounds} planned), {live} kills landed on a live \
         process, {interrupted} interrupted a batch of their run, {in_recovery} the recovery of \
         an earlier one"
    );
    ws.run_settled(&["bronze"]);
    assert_exactly_once(&ws);
    let batches = count_column(&ws.rows(BRONZE), "_batch_id");
    let version = ws.version(BRONZE).unwrap();
    let history = ws.run_ok(&["history", BRONZE, "--limit", "0"]);
    let compactions = history.matches("OPTIMIZE").count() as u64;
    eprintln!("random_kills: {compactions} auto-compactions committed among the kills");
    assert_eq!(
        batches.len() as u64 + compactions,
        version,
        "one commit per batch and the compactions, nothing else"
    );
    // Every batch a kill left unfinished was finished by a later run, which said so.
    assert_eq!(recovered_batches(&ws), unfinished);
    // A run's start-up (process, table, checkpoint) takes most of its time, more as the table
    // grows: kills anywhere in the run (one round in four) land there, or in the recovery of
    // the last kill's batch; kills timed from the run's first plan (the other rounds) land in
    // its batches. Measured on this 2-core machine, 30 rounds, three runs: 28 live, 17 to 20
    // interrupted a batch of their run, 4 or 5 the recovery of an earlier one (`make soak`:
    // the closing note of issue 12). Once runs ended with the event log's append, a window
    // learnt from the process's exit fell to 7 to 11 interrupted; learnt from the end of the
    // batches (`run_during`), 13 and 18 (issue 16's note). Half live and a quarter interrupted fail a test whose
    // kills mostly hit finished runs or start-ups, as fixed delays did (0 of 20 live).
    assert!(
        live * 2 >= rounds,
        "{live} of {rounds} kills found a live process"
    );
    assert!(
        interrupted * 4 >= planned_rounds,
        "{interrupted} of {rounds} kills interrupted a batch"
    );
}

#[test]
fn two_streams_at_once_ingest_each_row_once() {
    // Stream A is held just before it writes its first commit (batch 0, as version 1) while
    // stream B, on the same checkpoint, finishes A's planned batch and all the others. Let go,
    // A finds version 1 taken by its own stream id and loses: nothing of it is committed.
    let ws = Workspace::new();
    for i in 0..20 {
        write_tracker(&ws, &format!("{i:02}.json"), 3);
    }
    let release = ws.dir.path().join("release-a");
    let mut cmd = ws.medallion();
    cmd.env(SETTLE, "0").arg("bronze");
    let mut a = spawn_held(cmd, points::APPEND_BEFORE_WRITE, &release);
    let a_stderr = wait_until_paused(&mut a);
    let b = ws.run_settled(&["bronze"]);
    assert!(
        b.contains("bronze: 20 batches (1 finished after an interrupted run), 20 files, 60 rows"),
        "{b}"
    );
    std::fs::write(&release, "").unwrap();
    let status = a.wait().unwrap();
    let err = a_stderr.join().unwrap();
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(
        err.contains("another `bronze` of stream") && err.contains("batch 0 as version 1 first"),
        "{err}"
    );
    assert_eq!(ws.version(BRONZE), Some(20), "A committed nothing");
    // ... and left nothing: the Parquet of the batch it lost was deleted.
    assert_eq!(
        crate::hostile_env::unnamed_files(&ws.warehouse()),
        Vec::<String>::new()
    );
    let out = ws.run_settled(&["bronze"]);
    assert!(out.contains("bronze: 0 batches"), "{out}");
    assert_exactly_once(&ws);
}

#[test]
fn a_lost_checkpoint_does_not_reingest() {
    let ws = Workspace::new();
    for i in 1..=3 {
        write_tracker(&ws, &format!("{i:02}.json"), 4);
    }
    ws.run_ok(&["bronze"]);
    let version = ws.version(BRONZE);
    std::fs::remove_dir_all(
        ws.warehouse()
            .join("healthcare_dlh.db/fact_heartrate_bronze/_checkpoint"),
    )
    .unwrap();
    let out = ws.medallion().arg("bronze").output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("checkpoint") && err.contains("rebuilt"),
        "{err}"
    );
    assert_eq!(ws.version(BRONZE), version, "nothing re-ingested");

    write_tracker(&ws, "04.json", 2);
    ws.run_ok(&["bronze"]);
    assert_exactly_once(&ws);
    let batches = count_column(&ws.rows(BRONZE), "_batch_id");
    assert_eq!(
        batches.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "batch ids go on"
    );
}

#[test]
fn a_file_under_a_temporary_name_waits_for_its_rename() {
    let ws = Workspace::new();
    write_tracker(&ws, "01.json", 3);
    write_tracker(&ws, "02.json", 3);
    let tmp = ws.tracker().join("02.json.tmp");
    std::fs::rename(ws.tracker().join("02.json"), &tmp).unwrap();
    ws.run_ok(&["bronze"]);
    assert_eq!(bronze_rows(&ws).len(), 3);
    std::fs::rename(&tmp, ws.tracker().join("02.json")).unwrap();
    ws.run_ok(&["bronze"]);
    ws.run_ok(&["bronze"]);
    assert_exactly_once(&ws);
}

#[test]
fn a_file_still_being_written_when_listed_is_taken_whole_by_a_later_run() {
    // Bronze lists a young file, and before its second look the writer appends the rest: the
    // file moved between the looks, so this run leaves it; the next takes it, whole.
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.tracker()).unwrap();
    let path = ws.tracker().join("01.json");
    let rows: Vec<String> = (0..4)
        .map(|i| format!(r#"{{"device_id": "1", "heartrate": "7{i}", "mrn": "1", "time": "{i}"}}"#))
        .collect();
    std::fs::write(&path, format!("[\n{},\n", rows[..2].join(",\n"))).unwrap();
    let release = ws.dir.path().join("release");
    let mut cmd = ws.medallion();
    cmd.arg("bronze");
    let mut child = spawn_held(cmd, points::BETWEEN_LOOKS, &release);
    let stderr = wait_until_paused(&mut child);
    {
        use std::io::Write;
        let mut file = std::fs::File::options().append(true).open(&path).unwrap();
        write!(file, "{}\n]", rows[2..].join(",\n")).unwrap();
    }
    std::fs::write(&release, "").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr.join().unwrap();
    assert!(out.status.success(), "{err}");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("bronze: 0 batches, 0 files"), "{report}");
    assert!(!err.contains("warning"), "{err}");

    let out = ws.run_ok(&["bronze"]);
    assert!(
        out.contains("bronze: 1 batches, 1 files, 4 rows, 0 quarantined"),
        "{out}"
    );
    assert_exactly_once(&ws);
}

#[test]
fn the_settle_time_is_medallion_settle_ms_or_2_s() {
    // A file younger than the settle time is looked at twice: the failpoint between the two
    // looks stops the run exactly when bronze took a file for young.
    let ws = Workspace::new();
    let aged = |name: &str, age: Duration| {
        write_tracker(&ws, name, 2);
        std::fs::File::options()
            .write(true)
            .open(ws.tracker().join(name))
            .unwrap()
            .set_modified(std::time::SystemTime::now() - age)
            .unwrap();
    };
    let bronze = |settle: Option<&str>| {
        let mut cmd = ws.medallion();
        cmd.env("MEDALLION_FAILPOINT", points::BETWEEN_LOOKS)
            .args(["-q", "bronze"]);
        if let Some(ms) = settle {
            cmd.env(SETTLE, ms);
        }
        let out = cmd.output().unwrap();
        let looked_twice = String::from_utf8_lossy(&out.stderr)
            .contains(&format!("failpoint {}: aborting", points::BETWEEN_LOOKS));
        assert_eq!(out.status.success(), !looked_twice, "{out:?}");
        looked_twice
    };
    let minute = Duration::from_secs(60);
    aged("01.json", minute);
    assert!(!bronze(None), "a minute is past the default 2 s");
    aged("02.json", minute);
    assert!(bronze(Some("600000")), "a minute is not past 10 minutes");
    assert!(!bronze(Some("30000")), "a minute is past 30 s");
    aged("03.json", Duration::ZERO);
    assert!(bronze(None), "a file written now is young");
    assert!(
        !bronze(Some("0")),
        "nothing is young when files settle at once"
    );
    assert_exactly_once(&ws);
}

#[test]
fn a_replaced_table_is_refused_not_silently_skipped() {
    let ws = Workspace::new();
    write_tracker(&ws, "01.json", 3);
    ws.run_ok(&["bronze"]);
    let table = ws
        .warehouse()
        .join("healthcare_dlh.db/fact_heartrate_bronze");
    std::fs::remove_dir_all(table.join("_delta_log")).unwrap();
    let err = ws.run_err(&["bronze"], 1);
    assert!(err.contains("Remove the checkpoint folder"), "{err}");
}

/// Each kind of bad (or unusual) input gets its documented outcome, and nothing is lost: rows in
/// bronze + rows quarantined = rows in the source.
#[test]
fn bad_input_is_quarantined_with_its_reason_and_counts_add_up() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.tracker()).unwrap();
    let good =
        r#"{"device_id": "1", "heartrate": "70.5", "mrn": "10000001", "time": "1578000000.5"}"#;
    let files: Vec<(&str, Vec<u8>)> =
        vec![
        ("truncated.json", format!("[\n{good},\n{{\"device_id\": \"2\", \"hea").into_bytes()),
        ("empty_array.json", b"[]".to_vec()),
        ("empty.json", Vec::new()),
        ("not_json.json", b"hello, world".to_vec()),
        ("invalid_utf8.json", b"[{\"mrn\": \"1\xff\"}]".to_vec()),
        ("bom.json", [b"\xEF\xBB\xBF".as_slice(), format!("[{good}, {good}]").as_bytes()].concat()),
        ("number_element.json", format!("[\n{good},\n42,\n{good}\n]").into_bytes()),
        ("missing_keys.json", br#"[{"mrn": "10000009"}]"#.to_vec()),
        ("extra_keys.json", br#"[{"mrn": "1", "battery": "80%", "fw": {"v": 2}}]"#.to_vec()),
        (
            "numbers.json",
            br#"[{"device_id": 3, "heartrate": 71.50, "mrn": 10000003, "time": 1578000000.25}]"#
                .to_vec(),
        ),
        ("lines.ndjson", format!("{good}\n\n{good}\n[1]\n").into_bytes()),
    ];
    for (name, bytes) in &files {
        std::fs::write(ws.tracker().join(name), bytes).unwrap();
    }
    let out = ws
        .medallion()
        .args(["bronze", "--max-files-per-trigger", "0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in [
        "truncated.json",
        "empty.json",
        "not_json.json",
        "invalid_utf8.json",
    ] {
        assert!(stderr.contains(name), "no warning names {name}: {stderr}");
    }
    assert!(
        stderr.contains("number_element.json:3: the element is a number"),
        "{stderr}"
    );

    // What bronze holds, per file.
    let mut per_file: BTreeMap<String, usize> = BTreeMap::new();
    for row in bronze_rows(&ws) {
        *per_file.entry(row.0).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = [
        ("bom.json", 2),
        ("extra_keys.json", 1),
        ("lines.ndjson", 2),
        ("missing_keys.json", 1),
        ("number_element.json", 2),
        ("numbers.json", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(per_file, expected);

    // Numbers keep their text; unknown keys are rescued; missing keys are null.
    let rows = bronze_rows(&ws);
    assert!(rows.contains(&(
        "numbers.json".into(),
        Some("3".into()),
        Some("71.50".into()),
        Some("10000003".into()),
        Some("1578000000.25".into())
    )));
    assert!(rows.contains(&(
        "missing_keys.json".into(),
        None,
        None,
        Some("10000009".into()),
        None
    )));
    let rescued: Vec<String> = ws
        .rows(BRONZE)
        .iter()
        .flat_map(|b| {
            let c = medallion::testing::strings(b, "_rescued_data").unwrap();
            c.iter().flatten().map(str::to_string).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(rescued, [r#"{"battery":"80%","fw":{"v": 2}}"#]);

    // What quarantine holds: (file, line, error prefix).
    let mut quarantined = Vec::new();
    for b in ws.rows(QUARANTINE) {
        let file = medallion::testing::strings(&b, "source_file").unwrap();
        let line = medallion::testing::int64s(&b, "line").unwrap();
        let error = medallion::testing::strings(&b, "error").unwrap();
        for i in 0..b.num_rows() {
            let name = Path::new(file.value(i))
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let line = (!line.is_null(i)).then(|| line.value(i));
            let words: String = error
                .value(i)
                .split(':')
                .take(2)
                .collect::<Vec<_>>()
                .join(":");
            quarantined.push((name, line, words));
        }
    }
    quarantined.sort();
    let q = |f: &str, l: Option<i64>, e: &str| (f.to_string(), l, e.to_string());
    assert_eq!(
        quarantined,
        [
            q("empty.json", None, "file not ingested: the file is empty"),
            q(
                "invalid_utf8.json",
                Some(1),
                "file not ingested: invalid UTF-8 at byte 11"
            ),
            q(
                "lines.ndjson",
                Some(4),
                "the element is an array, expected an object"
            ),
            q("not_json.json", Some(1), "file not ingested: not JSON"),
            q(
                "number_element.json",
                Some(3),
                "the element is a number, expected an object"
            ),
            q(
                "truncated.json",
                Some(3),
                "file not ingested: truncated JSON"
            ),
        ]
    );
    // Counts add up: the 11 elements of the readable files are 9 bronze rows and 2 rejected
    // elements; each of the 4 unreadable files is one quarantine row holding the reason.
    let file_level = quarantined
        .iter()
        .filter(|q| q.2.starts_with("file not ingested"))
        .count();
    assert_eq!(
        (rows.len(), quarantined.len() - file_level, file_level),
        (9, 2, 4)
    );
}

#[test]
fn bad_files_fail_stops_before_the_commit() {
    let ws = Workspace::new();
    write_tracker(&ws, "01.json", 3);
    ws.run_ok(&["bronze"]);
    std::fs::write(ws.tracker().join("02.json"), "[{\"mrn\": \"1\"},").unwrap();
    let err = ws.run_err(&["bronze", "--bad-files", "fail"], 1);
    assert!(
        err.contains("02.json:1: file not ingested: truncated JSON"),
        "{err}"
    );
    assert_eq!(ws.version(BRONZE), Some(1));
    assert_eq!(ws.version(QUARANTINE), None);
    // Fixed, the file goes in on the next run.
    std::fs::write(ws.tracker().join("02.json"), "[{\"mrn\": \"1\"}]").unwrap();
    ws.run_ok(&["bronze", "--bad-files", "fail"]);
    assert_eq!(ws.version(BRONZE), Some(2));
    assert_eq!(bronze_rows(&ws).len(), 4);
}

/// Parquet files in the table's folder (committed or not).
fn parquet_files(ws: &Workspace) -> usize {
    std::fs::read_dir(ws.warehouse().join("healthcare_dlh.db").join(BRONZE))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".parquet")
        })
        .count()
}

#[test]
fn a_stopped_stream_leaves_no_file_written_ahead_of_its_commit() {
    // Batches are read and written ahead of their commits: when the stream stops on a bad
    // file, the files written for the batches after it must not stay behind.
    let ws = Workspace::new();
    write_tracker(&ws, "01.json", 3);
    ws.run_ok(&["bronze"]);
    assert_eq!(parquet_files(&ws), 1);
    std::fs::write(ws.tracker().join("02.json"), "[{\"mrn\": \"1\"},").unwrap();
    for name in ["03.json", "04.json", "05.json", "06.json"] {
        std::thread::sleep(Duration::from_millis(20)); // distinct mtimes: oldest first
        write_tracker(&ws, name, 2000);
    }
    let out = ws
        .medallion()
        .env(SETTLE, "0")
        .args(["bronze", "--bad-files", "fail"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(ws.version(BRONZE), Some(1));
    assert_eq!(parquet_files(&ws), 1);
    // The same with the default (quarantine): every batch commits its one file.
    ws.run_ok(&["bronze"]);
    assert_eq!(ws.version(BRONZE), Some(6));
    assert_eq!(parquet_files(&ws), 5); // 02.json has no rows: no file
    assert_exactly_once(&ws);
}

#[test]
fn bad_files_fail_leaves_no_parquet_of_the_refused_batch() {
    // The batch has a good row (written as Parquet ahead of the commit) and a bad element.
    let ws = Workspace::new();
    write_tracker(&ws, "01.json", 3);
    ws.run_ok(&["bronze"]);
    std::fs::write(ws.tracker().join("02.json"), "[{\"mrn\": \"1\"}, 42]").unwrap();
    let out = ws
        .medallion()
        .env(SETTLE, "0")
        .args(["bronze", "--bad-files", "fail"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("02.json:1"), "{err}");
    assert_eq!(ws.version(BRONZE), Some(1));
    assert_eq!(parquet_files(&ws), 1);
}

#[test]
fn the_stream_writes_a_delta_checkpoint_every_100_versions() {
    let ws = Workspace::new();
    for i in 0..101 {
        write_tracker(&ws, &format!("{i:03}.json"), 1);
    }
    ws.run_settled(&["bronze", "--auto-compact", "0"]);
    assert_eq!(ws.version(BRONZE), Some(101));
    let log = ws
        .warehouse()
        .join("healthcare_dlh.db")
        .join(BRONZE)
        .join("_delta_log");
    // Written in the background while the stream went on; the run waited for it.
    assert!(
        log.join("00000000000000000100.checkpoint.parquet")
            .is_file()
    );
    let last: serde_json::Value =
        serde_json::from_slice(&std::fs::read(log.join("_last_checkpoint")).unwrap()).unwrap();
    assert_eq!(last["version"], 100);
    assert_exactly_once(&ws);
}

#[test]
fn a_50_mb_file_is_ingested_whole() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.tracker()).unwrap();
    let row = r#"    {
        "device_id": "12",
        "heartrate": "81.2296475916",
        "mrn": "40580129",
        "time": "1578301316.998366"
    }"#;
    let n = 50 * 1024 * 1024 / (row.len() + 2) + 1;
    let mut text = String::with_capacity(n * (row.len() + 2) + 4);
    text.push_str("[\n");
    for i in 0..n {
        if i > 0 {
            text.push_str(",\n");
        }
        text.push_str(row);
    }
    text.push_str("\n]");
    assert!(text.len() >= 50 * 1024 * 1024);
    std::fs::write(ws.tracker().join("big.json"), text).unwrap();
    let out = ws.run_ok(&["--json", "bronze"]);
    let record: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(record["numInputRows"], n as u64);
    let rows: usize = ws.rows(BRONZE).iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, n);
}

#[test]
fn every_trigger_runs_until_sigterm_and_exits_cleanly() {
    let ws = Workspace::new();
    write_tracker(&ws, "01.json", 2);
    let child = ws
        .medallion()
        .args(["--json", "bronze", "--trigger", "every=100ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let wait_rows = |n: usize| {
        while ws.version(BRONZE).is_none() || bronze_rows(&ws).len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "the stream did not ingest"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_rows(2);
    write_tracker(&ws, "02.json", 3);
    wait_rows(5);
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two progress records, then the report.
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    assert_exactly_once(&ws);
}

#[test]
fn regression_a_checkpoint_with_an_id_but_no_plans_is_rebuilt_not_reingested() {
    // A run killed while rebuilding a lost checkpoint leaves `metadata` and nothing else.
    let ws = Workspace::new();
    for i in 1..=3 {
        write_tracker(&ws, &format!("{i:02}.json"), 4);
    }
    ws.run_ok(&["bronze"]);
    let version = ws.version(BRONZE);
    let checkpoint = ws
        .warehouse()
        .join("healthcare_dlh.db/fact_heartrate_bronze/_checkpoint");
    for sub in ["offsets", "commits"] {
        std::fs::remove_dir_all(checkpoint.join(sub)).unwrap();
    }
    ws.run_ok(&["bronze"]);
    assert_eq!(ws.version(BRONZE), version, "nothing re-ingested");
    assert_exactly_once(&ws);
}

#[test]
fn regression_a_file_only_in_quarantine_is_not_taken_as_ingested_on_rebuild() {
    // Killed between the quarantine commit and the bronze commit, then the checkpoint is lost:
    // the file's good rows must still reach bronze.
    let ws = Workspace::new();
    write_tracker(&ws, "01.json", 3);
    ws.run_ok(&["bronze"]);
    std::fs::write(
        ws.tracker().join("02.json"),
        "[{\"mrn\": \"7\"}, 42, {\"mrn\": \"8\"}]",
    )
    .unwrap();
    let out = ws
        .medallion()
        .env("MEDALLION_FAILPOINT", points::BETWEEN_COMMITS)
        .arg("bronze")
        .output()
        .unwrap();
    assert!(!out.status.success());
    std::fs::remove_dir_all(
        ws.warehouse()
            .join("healthcare_dlh.db/fact_heartrate_bronze/_checkpoint"),
    )
    .unwrap();
    ws.run_ok(&["bronze"]);
    let rows = bronze_rows(&ws);
    let from_02: Vec<_> = rows.iter().filter(|r| r.0 == "02.json").collect();
    assert_eq!(from_02.len(), 2, "{rows:?}");
    assert_eq!(rows.len(), 5);
}

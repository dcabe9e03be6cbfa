//! Streams that run for months: compaction (`optimize`, auto-compaction), `vacuum`, `maintain`,
//! progress records Spark's own reader takes, and what stays flat as a table ages.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::common::{SETTLE, Workspace, folder_bytes, table_lines};

const BRONZE: &str = "fact_heartrate_bronze";
const SILVER: &str = "fact_heartrate_silver";
const GOLD: &str = "fact_heartrate_gold";
const DAILY: &str = "fact_heartrate_daily";
const DERIVED: [&str; 3] = [SILVER, GOLD, DAILY];

/// The Python of the venv `make test` builds (deltalake, polars, pyspark), or `None` (said
/// loudly) on a machine without python3.
pub fn venv_python() -> Option<PathBuf> {
    let python = match std::env::var_os("MEDALLION_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    };
    if python.exists() {
        return Some(python);
    }
    let any = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !any {
        eprintln!("\n*** PYTHON READER CHECKS SKIPPED: no python3 on this machine ***\n");
        return None;
    }
    panic!(
        "no venv python at {}: run the tests with `make test` (it builds .venv), or set \
         MEDALLION_PYTHON",
        python.display()
    );
}

fn table_dir(ws: &Workspace, table: &str) -> PathBuf {
    ws.warehouse().join("healthcare_dlh.db").join(table)
}

/// Two tables' CSV lines are the same rows: text equal, numbers equal to 1e-9 relative (a
/// sum's last bit depends on the order partitions finish in).
fn assert_same_rows(a: &[String], b: &[String], table: &str) {
    assert_eq!(a.len(), b.len(), "{table}: row counts differ");
    for (x, y) in a.iter().zip(b) {
        let (xs, ys): (Vec<&str>, Vec<&str>) = (x.split(',').collect(), y.split(',').collect());
        let same = xs.len() == ys.len()
            && xs.iter().zip(&ys).all(|(p, q)| {
                p == q
                    || matches!((p.parse::<f64>(), q.parse::<f64>()),
                        (Ok(p), Ok(q)) if (p - q).abs() <= 1e-9 * (1.0 + p.abs().max(q.abs())))
            });
        assert!(same, "{table}: {x} != {y}");
    }
}

/// A table's line of `tables --format json`.
fn listed(mut cmd: Command, table: &str) -> serde_json::Value {
    let out = cmd.args(["--json", "tables"]).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|t| t["table"] == table)
        .expect("the table is listed")
}

fn bronze_row_count(ws: &Workspace) -> usize {
    ws.rows(BRONZE).iter().map(|b| b.num_rows()).sum()
}

/// The data files of a table's folder (not `_delta_log`, `_checkpoint`).
fn data_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    names.sort();
    names
}

/// Make a file look `days` old.
fn age(path: &Path, days: u64) {
    let then = SystemTime::now() - Duration::from_secs(days * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(then)
        .unwrap();
}

/// Every `add` of a commit file, as (path, dataChange).
fn adds_of(dir: &Path, version: u64) -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(dir.join(format!("_delta_log/{version:020}.json"))).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("add").cloned())
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_string(),
                a["dataChange"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn optimize_during_a_running_stream_changes_no_row_and_gives_gold_no_version() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "5", "--months", "3"]);
    ws.run_ok(&["patients"]);
    // A stream that keeps watching, auto-compacting every 4 files, while months arrive and
    // `optimize` runs beside it.
    let stream = ws
        .medallion()
        .env(SETTLE, "0")
        .args(["bronze", "--trigger", "every=50ms", "--auto-compact", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    // The stream creates bronze: optimize needs the table (on a loaded machine this takes a while).
    while ws.version(BRONZE).is_none() {
        assert!(
            Instant::now() < deadline,
            "the stream did not create bronze"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut compacted = 0;
    for _ in 0..8 {
        ws.run_ok(&["generate", "--append"]);
        let out = ws
            .medallion()
            .args(["--json", "optimize", BRONZE, "--target-size", "64MB"])
            .output()
            .unwrap();
        // A compaction that lost a race to a commit it could not be rebased on says so (3);
        // the stream never loses.
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if !report["version_after"].is_null() {
                compacted += 1;
                let version = report["version_after"].as_u64().unwrap();
                let adds = adds_of(&table_dir(&ws, BRONZE), version);
                assert!(
                    !adds.is_empty() && adds.iter().all(|(_, change)| !change),
                    "{adds:?}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    // Wait for the stream to take the last month, then stop it.
    let months = std::fs::read_dir(ws.tracker()).unwrap().count();
    loop {
        let status = ws.run_ok(&["--json", "status"]);
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        let bronze = status["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == BRONZE)
            .unwrap()
            .clone();
        if bronze["files_to_ingest"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stream did not take {months} files"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill")
        .args(["-TERM", &stream.id().to_string()])
        .status()
        .unwrap();
    let out = stream.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(compacted >= 1, "no optimize compacted anything");

    ws.run_ok(&["silver"]);
    ws.run_ok(&["gold"]);
    // A compaction of silver: gold and daily see no change and get no version.
    let (gold_v, daily_v) = (ws.version(GOLD), ws.version(DAILY));
    let out = ws.run_ok(&["optimize", SILVER]);
    assert!(out.contains("compacted into"), "{out}");
    let gold = ws.run_ok(&["gold"]);
    assert_eq!(
        (ws.version(GOLD), ws.version(DAILY)),
        (gold_v, daily_v),
        "{gold}"
    );
    let silver_v = ws.version(SILVER);
    ws.run_ok(&["optimize", BRONZE]);
    ws.run_ok(&["silver"]);
    assert_eq!(
        ws.version(SILVER),
        silver_v,
        "silver wrote a version for a compaction"
    );
    let status = ws.run_ok(&["status"]);
    assert!(!status.contains("to consume"), "{status}");

    // Exactly what one pipeline over the same files computes, and every row once.
    let fresh = ws.dir.path().join("fresh");
    let at = || ws.medallion_at(fresh.as_os_str());
    let out = at()
        .env(SETTLE, "0")
        .args(["-q", "pipeline"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for table in DERIVED {
        assert_eq!(
            table_lines(ws.medallion(), table),
            table_lines(at(), table),
            "{table}"
        );
    }
    let one_shot = listed(at(), BRONZE)["rows"].as_u64().unwrap() as usize;
    assert_eq!(bronze_row_count(&ws), one_shot);
}

#[test]
fn auto_compaction_of_a_stream_run_one_batch_per_process_keeps_the_files_few() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "6", "--months", "12"]);
    for _ in 0..12 {
        let out = ws
            .medallion()
            .env(SETTLE, "0")
            .args(["bronze", "--trigger", "once", "--auto-compact", "5"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let files = data_files(&table_dir(&ws, BRONZE));
    let live = listed(ws.medallion(), BRONZE);
    // 12 one-file batches; whenever 5 small files are live (the compacted one counts: it is
    // still small) the next batch compacts them: after the 5th and the 9th, 4 files left.
    assert_eq!(live["files"], 4, "{live}");
    assert!(
        files.len() >= 12,
        "the compacted files stay until vacuum: {files:?}"
    );
    let history = ws.run_ok(&["history", BRONZE, "--limit", "0"]);
    assert_eq!(history.matches("OPTIMIZE").count(), 2, "{history}");
    ws.run_ok(&["patients"]);
    ws.run_ok(&["silver"]);
    let rows: usize = ws.rows(SILVER).iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, bronze_row_count(&ws));
}

#[test]
fn vacuum_removes_the_orphans_of_killed_batches_and_keeps_every_retained_version_readable() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "4", "--months", "4"]);
    // Two batches killed after their Parquet was written, before their commit: orphans.
    for _ in 0..2 {
        let out = ws
            .medallion()
            .env(SETTLE, "0")
            .env("MEDALLION_FAILPOINT", "bronze-before-commit")
            .args(["bronze", "--auto-compact", "0"])
            .output()
            .unwrap();
        assert!(!out.status.success());
    }
    let dir = table_dir(&ws, BRONZE);
    let orphans = data_files(&dir);
    assert!(!orphans.is_empty(), "the killed batches left no Parquet");
    ws.run_settled(&["-q", "pipeline"]);
    ws.run_ok(&["optimize", BRONZE]);
    let latest = ws.version(BRONZE).unwrap();
    // The orphans are old; the files the compaction removed were removed just now.
    for name in &orphans {
        age(&dir.join(name), 8);
    }

    let before = folder_bytes(&dir);
    let dry = ws.run_ok(&["vacuum", BRONZE, "--dry-run"]);
    assert!(
        dry.contains(&format!("would delete {} files", orphans.len())),
        "{dry}"
    );
    for name in &orphans {
        assert!(dry.contains(name) && dry.contains("orphan"), "{dry}");
    }
    assert_eq!(folder_bytes(&dir), before, "--dry-run deleted something");
    let json: serde_json::Value =
        serde_json::from_str(&ws.run_ok(&["--json", "vacuum", BRONZE, "--dry-run"])).unwrap();
    assert!(
        json["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["bytes"].as_u64() > Some(0))
    );

    let done = ws.run_ok(&["vacuum", BRONZE]);
    assert!(
        done.contains(&format!("deleted {} files", orphans.len())),
        "{done}"
    );
    let left = data_files(&dir);
    assert!(orphans.iter().all(|o| !left.contains(o)), "{left:?}");
    assert!(dir.join("_checkpoint/metadata").exists() && dir.join("_delta_log").exists());

    // Every version is still readable, by medallion and by Python's Delta readers.
    for version in 0..=latest {
        ws.run_ok(&[
            "show",
            BRONZE,
            "--version",
            &version.to_string(),
            "--limit",
            "1",
        ]);
    }
    let Some(python) = venv_python() else { return };
    let script = format!(
        "import deltalake, polars\n\
         for v in range({}):\n\
         \x20   a = deltalake.DeltaTable({:?}, version=v).to_pyarrow_table().num_rows\n\
         \x20   b = polars.read_delta({:?}, version=v).height\n\
         \x20   assert a == b, (v, a, b)\n\
         print('read', {})\n",
        latest + 1,
        dir.display().to_string(),
        dir.display().to_string(),
        latest + 1
    );
    let out = Command::new(python).args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn vacuum_under_seven_days_is_refused_without_force_and_deletes_nothing() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "6", "--months", "3"]);
    ws.run_settled(&["-q", "pipeline"]);
    ws.run_ok(&["optimize", BRONZE]);
    let dir = table_dir(&ws, BRONZE);
    let before = folder_bytes(&dir);
    let err = ws.run_err(&["vacuum", BRONZE, "--retain", "24h"], 1);
    assert!(
        err.contains("under Delta's 7 days")
            && err.contains("time travel")
            && err.contains("--force"),
        "{err}"
    );
    assert_eq!(folder_bytes(&dir), before);
    let err = ws.run_err(&["vacuum", BRONZE, "--retain", "soon"], 2);
    assert!(err.contains("not a duration"), "{err}");

    // Forced: the compacted files go, the latest version reads, an older one fails clearly.
    let out = ws.run_ok(&["vacuum", BRONZE, "--retain", "0h", "--force"]);
    assert!(
        out.contains("deleted 3 files") && out.contains("3 removed"),
        "{out}"
    );
    ws.run_ok(&["show", BRONZE, "--limit", "1"]);
    let err = ws.run_err(&["show", BRONZE, "--version", "1"], 1);
    assert!(
        err.contains("missing") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn optimize_where_selects_files_by_statistics_and_refuses_what_it_cannot() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "6", "--months", "4"]);
    ws.run_settled(&["-q", "pipeline"]);
    // Bronze's files are one month each; `_batch_id < 2` holds in the first two only.
    let out = ws.run_ok(&["--json", "optimize", BRONZE, "--where", "_batch_id < 2"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["files_removed"], 2, "{report}");
    assert_eq!(report["files_after"], 3, "{report}");
    for (filter, says) in [
        (
            "_batch_id < 2 OR _batch_id > 3",
            "is not one of the comparisons",
        ),
        ("nope = 1", "has no column"),
    ] {
        let err = ws.run_err(&["optimize", BRONZE, "--where", filter], 2);
        assert!(err.contains(says), "{err}");
    }
    let err = ws.run_err(&["optimize", BRONZE, "--target-size", "big"], 2);
    assert!(err.contains("not a size"), "{err}");
    // A date as the help's example writes it (the statistics' comparison wants RFC 3339).
    let out = ws.run_ok(&[
        "--json",
        "optimize",
        SILVER,
        "--where",
        "datetime < '2020-03-01'",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["files_removed"].as_u64().is_some(), "{report}");
    let err = ws.run_err(&["optimize", SILVER, "--where", "datetime < 'soon'"], 2);
    assert!(err.contains("write a timestamp as"), "{err}");
    // Nothing left to pack: no commit.
    let version = ws.version(BRONZE);
    let out = ws.run_ok(&["optimize", BRONZE, "--target-size", "1KB"]);
    assert!(out.contains("nothing to compact"), "{out}");
    assert_eq!(ws.version(BRONZE), version);
}

#[test]
fn optimize_copies_row_groups_of_one_schema_and_rewrite_decodes_them_both_keeping_every_row() {
    for (flags, copied) in [(&[][..], true), (&["--rewrite"][..], false)] {
        let ws = Workspace::new();
        ws.run_ok(&["generate", "--patients", "6", "--months", "5"]);
        ws.run_settled(&["-q", "bronze", "--auto-compact", "0"]);
        let before = ws.sorted_rows(BRONZE);
        let mut args = vec!["--json", "optimize", BRONZE];
        args.extend_from_slice(flags);
        let report: serde_json::Value = serde_json::from_str(&ws.run_ok(&args)).unwrap();
        assert_eq!(report["files_removed"], 5, "{report}");
        assert_eq!(report["files_after"], 1, "{report}");
        let spliced = if copied { 5 } else { 0 };
        assert_eq!(report["files_spliced"], spliced, "{flags:?}: {report}");
        // The same rows, each once.
        assert_eq!(ws.sorted_rows(BRONZE), before, "{flags:?}");
        // The new file's statistics cover all of them: rows, and the batches 0 to 4.
        let version = ws.version(BRONZE).unwrap();
        let commit = ws.warehouse().join(format!(
            "healthcare_dlh.db/{BRONZE}/_delta_log/{version:020}.json"
        ));
        let text = std::fs::read_to_string(commit).unwrap();
        let add = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|a| a.get("add").cloned())
            .expect("the compaction's add");
        let stats: serde_json::Value =
            serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
        let rows: usize = ws.rows(BRONZE).iter().map(|b| b.num_rows()).sum();
        assert_eq!(stats["numRecords"], rows as u64, "{stats}");
        assert_eq!(stats["minValues"]["_batch_id"], 0, "{stats}");
        assert_eq!(stats["maxValues"]["_batch_id"], 4, "{stats}");
        assert_eq!(
            stats["nullCount"]["_rescued_data"], stats["numRecords"],
            "{stats}"
        );
    }
}

#[test]
fn maintain_optimizes_vacuums_and_checkpoints_every_table() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "6", "--months", "6"]);
    ws.run_settled(&["-q", "pipeline"]);
    let out = ws.run_ok(&["maintain"]);
    for table in [BRONZE, SILVER, GOLD, DAILY, "dim_patients"] {
        assert!(out.contains(&format!("checkpoint: {table} v")), "{out}");
    }
    assert!(
        out.contains("optimize: fact_heartrate_bronze v7: 6 small files"),
        "{out}"
    );
    let dir = table_dir(&ws, BRONZE);
    assert!(dir.join("_delta_log/_last_checkpoint").exists());
    // Run again: nothing more to compact, nothing to vacuum (the removed files are recent).
    let again = ws.run_ok(&["maintain"]);
    assert!(again.contains("nothing to compact"), "{again}");
    ws.run_ok(&["show", BRONZE, "--version", "1", "--limit", "1"]);
}

#[test]
fn every_progress_record_parses_with_pyspark_streaming_query_progress() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "3", "--months", "5"]);
    // A bad file (quarantined), a batch of two files, a batch finished after a kill.
    ws.write(
        "healthcare/streaming/tracker/00bad.json",
        "[{\"device_id\": ",
    );
    let out = ws
        .medallion()
        .env(SETTLE, "0")
        .env("MEDALLION_FAILPOINT", "bronze-after-commit")
        .args(["bronze", "--max-files-per-trigger", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = ws
        .medallion()
        .env(SETTLE, "0")
        .args(["--json", "bronze", "--max-files-per-trigger", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("batchId").is_some())
        .collect();
    // 6 files, two per batch: the backlog after each batch of this run's listing.
    let outstanding: Vec<&str> = records
        .iter()
        .map(|r| {
            r["sources"][0]["metrics"]["numFilesOutstanding"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(outstanding, ["0", "2", "0"], "{stdout}");
    assert!(records.iter().any(|r| r["recovered"] == true));
    let progress = table_dir(&ws, BRONZE).join("_checkpoint/progress.jsonl");
    let Some(python) = venv_python() else { return };
    let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/progress_check.py");
    let out = Command::new(python)
        .arg(check)
        .arg(&progress)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("3 records parsed") && said.contains("0 failed"),
        "{said}"
    );
}

/// Rows of a table as (rows, distinct keys) by its key columns.
fn rows_and_keys(ws: &Workspace, table: &str) -> (usize, usize) {
    let out = ws.run_ok(&[
        "sql",
        &format!(
            "SELECT count(*) AS n, count(DISTINCT (device_id, mrn, datetime)) AS k FROM {table}"
        ),
        "--format",
        "csv",
    ]);
    let line = out.lines().nth(1).unwrap().to_string();
    let (n, k) = line.split_once(',').unwrap();
    (n.parse().unwrap(), k.parse().unwrap())
}

#[test]
fn regression_two_compactions_of_one_file_at_once_never_double_its_rows() {
    // deltalake 1.1.3's conflict checker ignores dataChange=false removes: two OPTIMIZEs of the
    // same files both committed, and every row was in the table twice.
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "6", "--months", "4"]);
    ws.run_settled(&["-q", "pipeline"]);
    let before = bronze_row_count(&ws);
    let release = ws.dir.path().join("release");
    let mut held = crate::common::spawn_held(
        {
            let mut cmd = ws.medallion();
            cmd.args(["optimize", BRONZE]);
            cmd
        },
        medallion::failpoint::points::OPTIMIZE_BEFORE_COMMIT,
        &release,
    );
    let stderr = crate::common::wait_until_paused(&mut held);
    ws.run_ok(&["optimize", BRONZE]);
    std::fs::write(&release, "").unwrap();
    let status = held.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("while this compaction was packing it"),
        "{stderr}"
    );
    assert_eq!(bronze_row_count(&ws), before);
    // The loser's files were deleted, not left for vacuum.
    let live = listed(ws.medallion(), BRONZE)["files"].as_u64().unwrap() as usize;
    let on_disk = data_files(&table_dir(&ws, BRONZE)).len();
    assert_eq!(
        on_disk,
        4 + live,
        "4 compacted files + the live ones, no loser's file"
    );
}

#[test]
fn a_merge_racing_a_compaction_of_its_files_loses_and_its_rerun_is_exact() {
    // A MERGE that read files a compaction then replaced must not commit on top of it (the
    // compaction's copy of the old rows would stay beside the MERGE's new ones): it loses,
    // names the compaction, and the rerun lets the last delivery win.
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "6", "--months", "3"]);
    ws.run_settled(&["-q", "pipeline"]);
    let (rows, keys) = rows_and_keys(&ws, SILVER);
    assert_eq!(rows, keys);
    // A re-delivery of the first month with other rates: silver MERGEs it (updates).
    let first = std::fs::read_to_string(ws.tracker().join("01.json")).unwrap();
    let mut readings: Vec<serde_json::Value> = serde_json::from_str(&first).unwrap();
    for r in &mut readings {
        r["heartrate"] = serde_json::json!("61.5");
    }
    ws.write(
        "healthcare/streaming/tracker/99.json",
        &serde_json::to_string(&readings).unwrap(),
    );
    ws.run_settled(&["bronze"]);
    let release = ws.dir.path().join("release");
    let mut held = crate::common::spawn_held(
        {
            let mut cmd = ws.medallion();
            cmd.arg("silver");
            cmd
        },
        medallion::failpoint::points::SILVER_BEFORE_COMMIT,
        &release,
    );
    let stderr = crate::common::wait_until_paused(&mut held);
    let out = ws.run_ok(&["optimize", SILVER]);
    assert!(out.contains("compacted into"), "{out}");
    std::fs::write(&release, "").unwrap();
    let status = held.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("another `optimize` committed version"),
        "{stderr}"
    );
    ws.run_ok(&["silver"]);
    let (rows, keys) = rows_and_keys(&ws, SILVER);
    assert_eq!(rows, keys, "a reading is in silver twice");
    let redelivered = ws.run_ok(&[
        "sql",
        &format!("SELECT count(*) FROM {SILVER} WHERE heartrate = 61.5"),
        "--format",
        "csv",
    ]);
    assert_eq!(
        redelivered.lines().nth(1).unwrap(),
        readings.len().to_string(),
        "the last delivery did not win everywhere"
    );
}

/// Make every commit file of a table's log look `days` old (as after a month of streaming).
fn age_log(ws: &Workspace, table: &str, days: u64) {
    for entry in std::fs::read_dir(table_dir(ws, table).join("_delta_log")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            age(&path, days);
        }
    }
}

#[test]
fn an_expired_bronze_log_makes_silver_refuse_and_full_refresh_rebuilds_it_as_a_fresh_pipeline() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "6", "--months", "3"]);
    ws.run_settled(&["-q", "pipeline"]);
    // Bronze goes on without silver for a month: its commits expire and are cleaned up.
    for _ in 0..3 {
        ws.run_ok(&["generate", "--append"]);
    }
    ws.run_settled(&["bronze"]);
    age_log(&ws, BRONZE, 31);
    let out = ws.run_ok(&["maintain"]);
    let cleaned: u64 = out
        .lines()
        .find(|l| l.starts_with(&format!("checkpoint: {BRONZE} v")))
        .and_then(|l| l.split("; ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap();
    assert!(cleaned >= 3, "{out}");
    let silver_v = ws.version(SILVER);
    let err = ws.run_err(&["silver"], 1);
    assert!(
        err.contains("no longer in the log") && err.contains("--full-refresh"),
        "{err}"
    );
    assert_eq!(ws.version(SILVER), silver_v, "silver wrote something");

    let out = ws.run_ok(&["silver", "--full-refresh"]);
    assert!(out.contains("rebuilt from all of bronze"), "{out}");
    assert_eq!(
        ws.version(SILVER),
        silver_v.map(|v| v + 1),
        "one new version"
    );
    ws.run_ok(&["gold"]);
    // The old version is still there for time travel.
    ws.run_ok(&[
        "show",
        SILVER,
        "--version",
        &silver_v.unwrap().to_string(),
        "--limit",
        "1",
    ]);

    let fresh = ws.dir.path().join("fresh");
    let at = || ws.medallion_at(fresh.as_os_str());
    let out = at()
        .env(SETTLE, "0")
        .args(["-q", "pipeline"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for table in DERIVED {
        assert_same_rows(
            &table_lines(ws.medallion(), table),
            &table_lines(at(), table),
            table,
        );
    }
    // And incremental refreshes go on from the rebuilt position.
    ws.run_ok(&["generate", "--append"]);
    ws.run_settled(&["bronze"]);
    ws.run_ok(&["silver"]);
    ws.run_ok(&["gold"]);
    let out = at()
        .env(SETTLE, "0")
        .args(["-q", "pipeline"])
        .output()
        .unwrap();
    assert!(out.status.success());
    for table in DERIVED {
        assert_same_rows(
            &table_lines(ws.medallion(), table),
            &table_lines(at(), table),
            table,
        );
    }
}

#[test]
fn full_refresh_of_gold_recomputes_every_patient_as_one_new_version() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "6", "--months", "3"]);
    ws.run_settled(&["-q", "pipeline"]);
    let before = (ws.version(GOLD), ws.version(DAILY));
    let (gold, daily) = (
        table_lines(ws.medallion(), GOLD),
        table_lines(ws.medallion(), DAILY),
    );
    let out = ws.run_ok(&["--json", "gold", "--full-refresh"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["patients"], gold.len() as u64 - 1, "{report}");
    assert_eq!(
        (ws.version(GOLD), ws.version(DAILY)),
        (before.0.map(|v| v + 1), before.1.map(|v| v + 1))
    );
    assert_same_rows(&table_lines(ws.medallion(), GOLD), &gold, GOLD);
    assert_same_rows(&table_lines(ws.medallion(), DAILY), &daily, DAILY);
    // Silver rebuilt on an up-to-date bronze: the same rows, one new version, and gold then
    // sees deletes and inserts of every row and ends where it was.
    ws.run_ok(&["silver", "--full-refresh"]);
    ws.run_ok(&["gold"]);
    assert_same_rows(&table_lines(ws.medallion(), GOLD), &gold, GOLD);
    assert_same_rows(&table_lines(ws.medallion(), DAILY), &daily, DAILY);
}

#[test]
fn a_first_silver_run_as_full_refresh_equals_an_incremental_one() {
    // No silver yet, a bad row to quarantine, a reading whose patient is unknown (waiting).
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "6", "--months", "2"]);
    ws.write(
        "healthcare/streaming/tracker/zz.json",
        r#"[{"device_id": "1", "heartrate": "oops", "mrn": "10000001", "time": "1578009600.5"},
           {"device_id": "2", "heartrate": "70.5", "mrn": "99999999", "time": "1578009600.5"}]"#,
    );
    ws.run_ok(&["patients"]);
    ws.run_settled(&["bronze"]);
    let out = ws.run_ok(&["silver", "--full-refresh"]);
    assert!(out.contains("1 quarantined, 1 waiting"), "{out}");
    let fresh = ws.dir.path().join("fresh");
    let at = || ws.medallion_at(fresh.as_os_str());
    for args in [&["patients"][..], &["bronze"], &["silver"]] {
        let out = at().env(SETTLE, "0").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        table_lines(ws.medallion(), SILVER),
        table_lines(at(), SILVER)
    );
    // The side tables, but for when each warehouse's bronze ingested the rows.
    let query = |mut cmd: Command, sql: &str| -> String {
        let out = cmd.args(["sql", sql, "--format", "csv"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for sql in [
        "SELECT device_id, heartrate, mrn, time, _position FROM fact_heartrate_silver_waiting",
        "SELECT mrn, heartrate, error FROM fact_heartrate_silver_quarantine",
    ] {
        assert_eq!(query(ws.medallion(), sql), query(at(), sql), "{sql}");
    }
    // Again: the quarantine (append-only) does not get the refused row a second time.
    ws.run_ok(&["silver", "--full-refresh"]);
    let sql = "SELECT count(*) AS n FROM fact_heartrate_silver_quarantine";
    assert_eq!(query(ws.medallion(), sql), "n\n1\n");
}

#[test]
fn regression_vacuum_through_a_symlinked_folder_deleted_files_outside_the_table() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "2", "--months", "2"]);
    ws.run_settled(&["-q", "bronze"]);
    let dir = table_dir(&ws, BRONZE);
    // A folder elsewhere, linked into the table's folder, holding old Parquet no version names.
    let outside = ws.dir.path().join("precious");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep.parquet"), "not the table's").unwrap();
    age(&outside.join("keep.parquet"), 30);
    std::os::unix::fs::symlink(&outside, dir.join("linked")).unwrap();
    let versions = ws.version(BRONZE);
    for args in [
        &["vacuum", BRONZE][..],
        &["vacuum", BRONZE, "--dry-run"],
        &["vacuum", BRONZE, "--retain", "0h", "--force"],
    ] {
        let err = ws.run_err(args, 1);
        assert!(
            err.contains("symbolic link") && err.contains("linked"),
            "{err}"
        );
        assert!(outside.join("keep.parquet").exists(), "{args:?} deleted it");
    }
    assert_eq!(ws.version(BRONZE), versions, "vacuum committed something");
    // Without the link, vacuum runs.
    std::fs::remove_file(dir.join("linked")).unwrap();
    ws.run_ok(&["vacuum", BRONZE]);
}

#[test]
fn regression_a_second_vacuum_repeated_phantom_deletions_and_committed_every_time() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "3", "--months", "3"]);
    ws.run_settled(&["-q", "bronze", "--auto-compact", "0"]);
    let dir = table_dir(&ws, BRONZE);
    let small = data_files(&dir).len();
    assert!(small >= 2, "{small} files");
    ws.run_ok(&["optimize", BRONZE]);
    let first = ws.run_ok(&["--json", "vacuum", BRONZE, "--retain", "0h", "--force"]);
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    let deleted = first["files"].as_array().unwrap();
    assert_eq!(deleted.len(), small, "the compacted files: {first}");
    assert!(
        deleted
            .iter()
            .all(|f| f["bytes"].as_u64() > Some(0) && f["reason"] == "removed")
    );
    let version = ws.version(BRONZE);
    let files = data_files(&dir);
    // Again: the tombstones' files are gone, so nothing is deleted and nothing committed.
    let again = ws.run_ok(&["vacuum", BRONZE, "--retain", "0h", "--force"]);
    assert!(again.contains("deleted 0 files"), "{again}");
    assert_eq!(ws.version(BRONZE), version, "an empty vacuum committed");
    assert_eq!(data_files(&dir), files);
}

#[test]
fn regression_maintain_stopped_at_the_first_table_it_could_not_maintain() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "4", "--months", "3"]);
    ws.run_settled(&["-q", "pipeline"]);
    // dim_patients comes first by name; a link in its folder makes its vacuum refuse.
    let outside = ws.dir.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, table_dir(&ws, "dim_patients").join("link")).unwrap();
    let out = ws.medallion().args(["maintain"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("maintain: dim_patients failed") && stdout.contains("symbolic link"),
        "{stdout}"
    );
    assert!(stderr.contains("1 of 6 tables failed"), "{stderr}");
    for table in [BRONZE, SILVER, GOLD, DAILY] {
        assert!(
            stdout.contains(&format!("checkpoint: {table} v")),
            "{stdout}"
        );
    }
}

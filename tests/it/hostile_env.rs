//! A hostile environment: URLs and odd characters in the folder flags, a full disk, two jobs
//! racing on one table, a data file deleted by hand. Each test pins a bug of issue 10.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::Workspace;

const SILVER: &str = "fact_heartrate_silver";

/// `medallion` with no folder flags, in `cwd`.
fn bare(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_medallion"));
    cmd.env_remove("MEDALLION_WAREHOUSE")
        .env_remove("MEDALLION_DATA")
        .current_dir(cwd);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every entry under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut entries = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            entries.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    entries.sort();
    entries
}

/// `%XX` sequences of a Delta log path decoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => {
                out.push(u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap());
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The files of every table of `warehouse` that no commit of its log names (Parquet left by a
/// failed job, temporary uploads), as `table/file`.
pub(crate) fn unnamed_files(warehouse: &Path) -> Vec<String> {
    let db = warehouse.join("healthcare_dlh.db");
    let mut unnamed = Vec::new();
    let Ok(tables) = std::fs::read_dir(&db) else {
        return unnamed;
    };
    for table in tables {
        let table = table.unwrap().path();
        let mut named = BTreeSet::new();
        let log = table.join("_delta_log");
        for entry in std::fs::read_dir(&log).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                for line in std::fs::read_to_string(&path).unwrap().lines() {
                    let action: serde_json::Value = serde_json::from_str(line).unwrap();
                    for kind in ["add", "remove", "cdc"] {
                        if let Some(p) = action[kind]["path"].as_str() {
                            named.insert(percent_decode(p));
                        }
                    }
                }
            }
        }
        for file in tree(&table) {
            let top = file.split('/').next().unwrap();
            if top == "_delta_log" || top == "_checkpoint" || table.join(&file).is_dir() {
                continue;
            }
            if !named.contains(&file) {
                unnamed.push(format!(
                    "{}/{file}",
                    table.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    unnamed
}

fn assert_no_internals(stderr: &str) {
    for internal in [
        "panicked",
        "thread '",
        "RUST_BACKTRACE",
        "Transaction failed",
        "Failed to commit transaction",
        "Snapshot Isolation",
        "NotFound {",
        "Os {",
    ] {
        assert!(!stderr.contains(internal), "{internal:?} in: {stderr}");
    }
}

#[test]
fn an_unsupported_url_is_refused_before_anything_is_created() {
    let ws = Workspace::new();
    let cwd = ws.dir.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    ws.run_ok(&["generate", "--months", "1", "--patients", "2"]);
    let data = ws.data();
    for (flag, url, args) in [
        ("--warehouse", "gs://bucket/wh", vec!["pipeline"]),
        ("--warehouse", "http://host/wh", vec!["patients"]),
        (
            "--data",
            "abfss://c@account.dfs.core.windows.net/x",
            vec!["patients"],
        ),
        // An S3 URL without a bucket, or with `..` a parser would resolve away.
        ("--warehouse", "s3:///wh", vec!["patients"]),
        ("--data", "s3://bucket/a/../b", vec!["bronze"]),
    ] {
        let mut cmd = bare(&cwd);
        if flag == "--warehouse" {
            cmd.arg("--data").arg(&data);
        }
        let out = cmd.arg(flag).arg(url).args(&args).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {url}: {err}");
        assert!(err.contains("not supported") || err.contains(url), "{err}");
        assert_eq!(
            tree(&cwd),
            Vec::<String>::new(),
            "{flag} {url} created files"
        );
    }
    // From the environment too.
    let out = bare(&cwd)
        .env("MEDALLION_WAREHOUSE", "gs://bucket/wh")
        .arg("--data")
        .arg(&data)
        .arg("patients")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(tree(&cwd), Vec::<String>::new());
}

#[test]
fn a_file_url_names_the_local_folder() {
    let ws = Workspace::new();
    let cwd = ws.dir.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    ws.run_ok(&["generate", "--months", "1", "--patients", "2"]);
    let url = |path: &Path| {
        url::Url::from_directory_path(path)
            .unwrap()
            .to_string()
            .trim_end_matches('/')
            .to_string()
    };
    let warehouse = ws.dir.path().join("my wh");
    let out = bare(&cwd)
        .arg("--warehouse")
        .arg(url(&warehouse))
        .arg("--data")
        .arg(url(&ws.data()))
        .arg("patients")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        url(&warehouse).contains("my%20wh"),
        "the URL is percent-encoded"
    );
    assert!(
        warehouse
            .join("healthcare_dlh.db/dim_patients/_delta_log")
            .is_dir(),
        "{:?}",
        tree(ws.dir.path())
    );
    assert_eq!(tree(&cwd), Vec::<String>::new(), "nothing under ./file:");

    // A file URL with a host names no local folder.
    let out = bare(&cwd)
        .args(["--warehouse", "file://server/share/wh", "tables"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn a_percent_path_is_refused_rather_than_read_as_another_folder() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--months", "1", "--patients", "3"]);
    let run = |warehouse: &Path, args: &[&str]| {
        bare(ws.dir.path())
            .arg("--warehouse")
            .arg(warehouse)
            .arg("--data")
            .arg(ws.data())
            .args(args)
            .output()
            .unwrap()
    };
    // deltalake would write these tables' logs in the literal folder and read them from
    // another one (`a b`, `inner` next to `x`, `back/slash`): refused, with nothing created.
    std::fs::create_dir(ws.dir.path().join("x")).unwrap();
    for name in ["a%20b", "x/%2e%2e/inner", "back\\slash"] {
        let out = run(&ws.dir.path().join(name), &["pipeline"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains("another folder"), "{name}: {err}");
    }
    assert_eq!(
        tree(ws.dir.path())
            .iter()
            .filter(|f| !f.starts_with("data"))
            .collect::<Vec<_>>(),
        ["x"]
    );

    // Any other name is taken literally, `%` included, whole pipeline and reads alike.
    let warehouse = ws.dir.path().join("a b#1?é 100%");
    for args in [&["pipeline"][..], &["show", "fact_heartrate_gold"]] {
        let out = run(&warehouse, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    for table in [
        "dim_patients",
        "fact_heartrate_bronze",
        SILVER,
        "fact_heartrate_gold",
    ] {
        let dir = warehouse.join("healthcare_dlh.db").join(table);
        assert!(
            tree(&dir).iter().any(|f| f.ends_with(".parquet")),
            "{table} is not in {}: {:?}",
            dir.display(),
            tree(ws.dir.path())
        );
    }
    assert_eq!(unnamed_files(&warehouse), Vec::<String>::new());
}

/// A tmpfs of `bytes`, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `Err` says why mounting is not permitted here (not root, a container without the
    /// capability); any other failure fails the test.
    fn mount(bytes: u64) -> Result<Self, String> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(dir.path())
            .output()
            .expect("the mount command runs");
        let err = text(&out.stderr);
        if out.status.success() {
            Ok(Self { dir })
        } else if [
            "permission denied",
            "not permitted",
            "must be superuser",
            "only root",
        ]
        .iter()
        .any(|why| err.to_lowercase().contains(why))
        {
            Err(err)
        } else {
            panic!("mount -t tmpfs failed: {err}");
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Bytes `dir` takes on a file system of 4 KiB pages.
fn pages(dir: &Path) -> u64 {
    tree(dir)
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .map(|p| p.metadata().unwrap().len().div_ceil(4096) * 4096)
        .sum()
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn disk_full_prints_no_panic_and_leaves_no_orphans() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--months", "3", "--patients", "12"]);
    ws.run_ok(&["patients"]);
    ws.run_ok(&["bronze"]);
    // How much silver writes, on a copy with room.
    let roomy = ws.dir.path().join("roomy");
    copy_tree(&ws.warehouse(), &roomy);
    let before = pages(&roomy);
    let out = bare(ws.dir.path())
        .arg("--warehouse")
        .arg(&roomy)
        .arg("silver")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let needs = pages(&roomy) - before;

    // A disk with room for a little more than half of it: some of silver's files fit, not all.
    let size = before + needs * 3 / 5;
    let disk = match Tmpfs::mount(size) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipped: cannot mount a small tmpfs to fill up: {why}");
            return;
        }
    };
    let full = disk.dir.path().join("warehouse");
    copy_tree(&ws.warehouse(), &full);
    let out: Output = bare(ws.dir.path())
        .arg("--warehouse")
        .arg(&full)
        .args(["-v", "silver"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_no_internals(&err);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    // Some of silver's files were written whole before the disk filled up: they are gone.
    assert!(err.contains("did not commit"), "{err}");
    assert_eq!(unnamed_files(&full), Vec::<String>::new(), "{err}");
}

/// A workspace with `months` of the lab's data in bronze.
fn bronze_of(months: u32) -> Workspace {
    let ws = Workspace::new();
    ws.run_ok(&[
        "generate",
        "--months",
        &months.to_string(),
        "--patients",
        "20",
    ]);
    ws.run_ok(&["patients"]);
    ws.run_ok(&["bronze"]);
    ws
}

/// Run `a` and `b` at once; returns their outputs.
fn race(ws: &Workspace, a: &[&str], b: &[&str]) -> [Output; 2] {
    let spawn = |args: &[&str]| {
        ws.medallion()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(a), spawn(b));
    [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()]
}

/// Exactly one of the two lost: exit 3, naming the table and the job that won, saying nothing
/// of it went in and to run again, without deltalake's internals.
fn assert_one_lost_cleanly(outs: &[Output; 2], table: &str, job: &str) {
    let lost: Vec<&Output> = outs.iter().filter(|o| !o.status.success()).collect();
    assert_eq!(
        lost.len(),
        1,
        "one job must lose: {:?}",
        outs.iter().map(|o| text(&o.stderr)).collect::<Vec<_>>()
    );
    let err = text(&lost[0].stderr);
    assert_eq!(lost[0].status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("table {table}: another `{job}`")),
        "{err}"
    );
    assert!(err.contains("nothing of this run was committed"), "{err}");
    assert!(err.contains("run it again"), "{err}");
    assert_no_internals(&err);
}

#[test]
fn a_lost_race_exits_3_and_names_the_winner() {
    // On creation: the `silver` that commits a slice at a time creates the table long before
    // the one that reads all of bronze at once gets there.
    let ws = bronze_of(6);
    let outs = race(&ws, &["silver"], &["silver", "--max-rows-per-commit", "1"]);
    assert_one_lost_cleanly(&outs, SILVER, "silver");
    ws.run_ok(&["silver"]);

    // On a later commit, with Parquet already written by the loser: it is deleted.
    for _ in 0..4 {
        ws.run_ok(&["generate", "--append"]);
    }
    ws.run_ok(&["bronze"]);
    let outs = race(&ws, &["silver"], &["silver", "--max-rows-per-commit", "1"]);
    assert_one_lost_cleanly(&outs, SILVER, "silver");
    assert_eq!(unnamed_files(&ws.warehouse()), Vec::<String>::new());

    // Running again finishes the job; every reading is in silver once.
    ws.run_ok(&["silver"]);
    let dupes = ws.run_ok(&[
        "sql",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM (SELECT device_id, mrn, datetime FROM fact_heartrate_silver \
         GROUP BY 1, 2, 3 HAVING count(*) > 1)",
    ]);
    assert_eq!(dupes.trim(), "n\n0");
    let counts = ws.run_ok(&[
        "sql",
        "--format",
        "csv",
        "SELECT (SELECT count(*) FROM fact_heartrate_silver) = \
         (SELECT count(*) FROM fact_heartrate_bronze) AS same",
    ]);
    assert_eq!(counts.trim(), "same\ntrue");
}

/// The path of one Parquet file of a table.
fn a_data_file(ws: &Workspace, table: &str) -> PathBuf {
    let dir = ws.warehouse().join("healthcare_dlh.db").join(table);
    tree(&dir)
        .into_iter()
        .find(|f| f.ends_with(".parquet") && !f.starts_with('_'))
        .map(|f| dir.join(f))
        .expect("a data file")
}

#[test]
fn a_missing_data_file_is_named() {
    let ws = bronze_of(2);
    let gone = a_data_file(&ws, "fact_heartrate_bronze");
    std::fs::remove_file(&gone).unwrap();
    for args in [
        vec!["silver"],
        vec!["show", "fact_heartrate_bronze", "--limit", "0"],
    ] {
        let err = ws.run_err(&args, 1);
        assert!(
            err.contains("table fact_heartrate_bronze: data file")
                && err.contains(&gone.display().to_string())
                && err.contains("is missing"),
            "{args:?}: {err}"
        );
        assert_no_internals(&err);
    }

    let ws = bronze_of(2);
    ws.run_ok(&["silver"]);
    let gone = a_data_file(&ws, SILVER);
    std::fs::remove_file(&gone).unwrap();
    let err = ws.run_err(&["gold"], 1);
    assert!(
        err.contains("table fact_heartrate_silver: data file")
            && err.contains(&gone.display().to_string()),
        "{err}"
    );
    assert_no_internals(&err);
}

#[test]
fn a_full_disk_behind_stdout_is_an_error_and_loses_no_work() {
    // `> /dev/full`: every write to stdout fails with "no space left". Unlike a closed pipe,
    // that is a failure (exit 1, naming stdout), but what the job committed stays committed,
    // a stream stops after the batch whose record it could not write, and a rerun goes on.
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "3", "--months", "3"]);
    let run = |args: &[&str]| {
        let out = ws.medallion().args(args).stdout(full()).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["patients"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot write the results to stdout"), "{err}");
    assert!(!err.contains("panick"), "{err}");
    assert!(
        ws.version("dim_patients").is_some(),
        "the load was done: {err}"
    );

    let (code, err) = run(&["--json", "bronze"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot write the results to stdout"), "{err}");
    assert_eq!(
        ws.version("fact_heartrate_bronze"),
        Some(1),
        "stopped after its first batch"
    );
    let out = ws.run_ok(&["bronze"]);
    assert!(out.contains("bronze: 2 batches, 2 files"), "{out}");

    let (code, err) = run(&["show", "fact_heartrate_bronze", "--format", "csv"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("stdout"), "{err}");
}

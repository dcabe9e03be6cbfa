//! `medallion bronze` never passes over a tracker file without a word: a symbolic link to a
//! file is ingested under its own name; a link that leads nowhere, a folder, a name that is not
//! UTF-8 and a file rewritten after it was ingested are each named in a warning (once per run);
//! hidden, internal and temporary names stay quiet, by design.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use deltalake::arrow::array::Array;

use crate::common::Workspace;

const BRONZE: &str = "fact_heartrate_bronze";

/// A lab-format tracker file of `n` readings.
fn tracker_text(n: usize) -> String {
    let rows: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "device_id": "7",
                "heartrate": format!("{}.5", 60 + i),
                "mrn": "10000007",
                "time": format!("{}.25", 1_578_000_000 + i * 900),
            })
        })
        .collect();
    serde_json::to_string_pretty(&rows).unwrap()
}

fn write_file(path: &Path, n: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, tracker_text(n)).unwrap();
}

/// Bronze's rows per `_source_file` (the whole path), sorted.
fn rows_per_source(ws: &Workspace) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    if ws.version(BRONZE).is_none() {
        return Vec::new();
    }
    for batch in ws.rows(BRONZE) {
        let files = medallion::testing::strings(&batch, "_source_file").unwrap();
        for i in 0..files.len() {
            *counts.entry(files.value(i).to_string()).or_default() += 1;
        }
    }
    counts.into_iter().collect()
}

fn bronze(ws: &Workspace, args: &[&str]) -> (String, String) {
    let out = ws.medallion().arg("bronze").args(args).output().unwrap();
    check(&out)
}

fn check(out: &Output) -> (String, String) {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "bronze failed: {stderr}\n{stdout}");
    (stdout, stderr)
}

fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect()
}

fn at(ws: &Workspace, name: &str) -> String {
    ws.tracker().join(name).display().to_string()
}

#[test]
fn a_symlinked_tracker_file_is_ingested() {
    let ws = Workspace::new();
    // A link to a file under the data folder is followed (one outside it is not: see
    // source/discover/mod.rs).
    let target = ws.data().join("archive/real.json");
    write_file(&target, 3);
    write_file(&ws.tracker().join("01.json"), 2);
    std::os::unix::fs::symlink(&target, ws.tracker().join("linked.json")).unwrap();

    let (stdout, stderr) = bronze(&ws, &["--max-files-per-trigger", "0"]);
    assert!(stdout.contains("1 batches, 2 files, 5 rows"), "{stdout}");
    assert!(warnings(&stderr).is_empty(), "{stderr}");
    // The link's name is the file's identity and lineage, not its target's.
    assert_eq!(
        rows_per_source(&ws),
        [(at(&ws, "01.json"), 2), (at(&ws, "linked.json"), 3)]
    );

    // Taken once: a second run has nothing to do.
    let (stdout, _) = bronze(&ws, &[]);
    assert!(stdout.contains("0 batches"), "{stdout}");
}

#[test]
fn a_dangling_symlink_is_named_in_a_warning() {
    let ws = Workspace::new();
    let tracker = ws.tracker();
    write_file(&tracker.join("01.json"), 2);
    let link = |target: &Path, name: &str| {
        std::os::unix::fs::symlink(target, tracker.join(name)).unwrap();
    };
    link(&tracker.join("gone.json"), "dangling.json");
    link(&tracker.join("loop.json"), "loop.json");
    std::fs::create_dir(ws.dir.path().join("folder")).unwrap();
    link(&ws.dir.path().join("folder"), "to_folder.json");
    std::fs::create_dir(tracker.join("archive")).unwrap();
    // Skipped by design, without a word: hidden, internal and temporary names.
    write_file(&tracker.join(".02.json"), 1);
    write_file(&tracker.join("_03.json"), 1);
    write_file(&tracker.join("04.json.tmp"), 1);
    std::fs::create_dir(tracker.join("_archive")).unwrap();
    link(&tracker.join("gone.json"), ".hidden_link.json");

    let (stdout, stderr) = bronze(&ws, &[]);
    assert!(stdout.contains("1 batches, 1 files, 2 rows"), "{stdout}");
    let expected = [
        format!(
            "warning: {}: a folder (bronze reads only the files directly in the tracker folder; a \
             name starting with `_` or `.` keeps it there quietly); not ingested",
            at(&ws, "archive")
        ),
        format!(
            "warning: {}: a symbolic link to {}, which does not exist; not ingested",
            at(&ws, "dangling.json"),
            at(&ws, "gone.json")
        ),
        format!(
            "warning: {}: a symbolic link to {} that cannot be followed (",
            at(&ws, "loop.json"),
            at(&ws, "loop.json")
        ),
        format!(
            "warning: {}: a symbolic link to the folder {} (bronze reads only",
            at(&ws, "to_folder.json"),
            ws.dir.path().join("folder").display()
        ),
    ];
    let said = warnings(&stderr);
    assert_eq!(said.len(), expected.len(), "{stderr}");
    for (line, start) in said.iter().zip(&expected) {
        assert!(
            line.starts_with(start.as_str()),
            "{line}\nexpected: {start}"
        );
    }
    assert_eq!(rows_per_source(&ws), [(at(&ws, "01.json"), 2)]);

    // Mended, the link is ingested by the next run.
    write_file(&tracker.join("gone.json"), 4);
    let (stdout, _) = bronze(&ws, &["--max-files-per-trigger", "0"]);
    assert!(stdout.contains("1 batches, 2 files, 8 rows"), "{stdout}");
}

#[test]
fn a_non_utf8_file_name_is_named_in_a_warning() {
    let ws = Workspace::new();
    write_file(&ws.tracker().join("01.json"), 2);
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.json");
    write_file(&ws.tracker().join(name), 3);
    // A hidden one stays quiet.
    write_file(
        &ws.tracker()
            .join(std::ffi::OsStr::from_bytes(b".\xff.json")),
        1,
    );

    let (stdout, stderr) = bronze(&ws, &[]);
    assert!(stdout.contains("1 batches, 1 files, 2 rows"), "{stdout}");
    assert_eq!(
        warnings(&stderr),
        [format!(
            "warning: {}: the file name is not valid UTF-8, so it cannot be ingested (the \
             table's lineage names files in UTF-8): rename it",
            at(&ws, "caf\u{FFFD}.json")
        )],
        "{stderr}"
    );
    assert_eq!(rows_per_source(&ws), [(at(&ws, "01.json"), 2)]);
}

#[test]
fn a_file_rewritten_after_ingest_is_named_in_a_warning() {
    let ws = Workspace::new();
    write_file(&ws.tracker().join("01.json"), 3);
    write_file(&ws.tracker().join("02.json"), 2);
    let (_, stderr) = bronze(&ws, &[]);
    assert!(warnings(&stderr).is_empty(), "{stderr}");
    let size = |n| tracker_text(n).len();

    write_file(&ws.tracker().join("02.json"), 5);
    let (stdout, stderr) = bronze(&ws, &[]);
    assert!(stdout.contains("0 batches"), "{stdout}");
    assert_eq!(
        warnings(&stderr),
        [format!(
            "warning: {}: changed after it was ingested in batch 1 (its size is {} bytes, was \
             {}); not ingested again: write new readings to a new file",
            at(&ws, "02.json"),
            size(5),
            size(2)
        )],
        "{stderr}"
    );
    // Bronze still holds what was ingested, and only that.
    assert_eq!(
        rows_per_source(&ws),
        [(at(&ws, "01.json"), 3), (at(&ws, "02.json"), 2)]
    );

    // Same size, new modification time: said too.
    let file = std::fs::File::options()
        .write(true)
        .open(ws.tracker().join("01.json"))
        .unwrap();
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let (_, stderr) = bronze(&ws, &[]);
    let said = warnings(&stderr);
    assert_eq!(said.len(), 2, "{stderr}");
    assert!(
        said[0].starts_with(&format!(
            "warning: {}: changed after it was ingested in batch 0 (its modification time moved)",
            at(&ws, "01.json")
        )),
        "{stderr}"
    );
}

#[test]
fn a_rewritten_file_is_named_once_per_run_of_an_every_stream() {
    let ws = Workspace::new();
    write_file(&ws.tracker().join("01.json"), 2);
    let child = ws
        .medallion()
        .args(["bronze", "--trigger", "every=50ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let wait_rows = |n: usize| {
        while rows_per_source(&ws).iter().map(|r| r.1).sum::<usize>() < n {
            assert!(Instant::now() < deadline, "the stream did not ingest");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_rows(2);
    write_file(&ws.tracker().join("01.json"), 4);
    // Many triggers look at the rewritten file.
    std::thread::sleep(Duration::from_millis(1500));
    write_file(&ws.tracker().join("02.json"), 3);
    wait_rows(5);
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let (_, stderr) = check(&child.wait_with_output().unwrap());
    let changed: Vec<&str> = warnings(&stderr)
        .into_iter()
        .filter(|l| l.contains("changed after it was ingested"))
        .collect();
    assert_eq!(changed.len(), 1, "{stderr}");
    assert!(changed[0].contains("01.json: changed after it was ingested in batch 0"));
    assert_eq!(
        rows_per_source(&ws),
        [(at(&ws, "01.json"), 2), (at(&ws, "02.json"), 3)]
    );
}

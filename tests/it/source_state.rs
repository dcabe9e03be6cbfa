//! The source side of a stream that runs for months: `--clean-source` (archive or delete a
//! done batch's files, safe under kill -9), `--max-file-age`, a checkpoint that stays small
//! (state files replace old plans), and `medallion files`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use medallion::failpoint::points;

use crate::common::{KillClock, SETTLE, Workspace, killed, last_planned, write_tracker};

const BRONZE: &str = "fact_heartrate_bronze";

fn checkpoint(ws: &Workspace) -> PathBuf {
    ws.warehouse()
        .join("healthcare_dlh.db/fact_heartrate_bronze/_checkpoint")
}

/// Bronze's rows as (source file name, position): each delivered element once.
fn bronze_elements(ws: &Workspace) -> Vec<(String, String)> {
    let out = ws.run_ok(&[
        "sql",
        "--format",
        "csv",
        "SELECT _source_file, CAST(_position AS VARCHAR) AS p FROM fact_heartrate_bronze",
    ]);
    out.lines()
        .skip(1)
        .map(|line| {
            let (file, position) = line.rsplit_once(',').unwrap();
            let name = file.rsplit('/').next().unwrap().to_string();
            (name, position.to_string())
        })
        .collect()
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// `medallion files --format json`, one object per file.
fn files(ws: &Workspace) -> Vec<serde_json::Value> {
    ws.run_ok(&["files", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn clean_source_with_kills_between_commit_and_clean_up_loses_no_file_and_ingests_none_twice() {
    let ws = Workspace::new();
    let archive = ws.dir.path().join("archive");
    let archive_arg = format!("archive={}", archive.display());
    let mut written: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut clock = KillClock::new(20261202);
    let (mut kills, mut at_points) = (0, 0);
    // Kills at the two points between a batch's done marker and the end of its clean-up,
    // then at random moments, with files arriving before every run.
    let points = [points::AFTER_DONE, points::CLEAN_BETWEEN_FILES];
    for round in 0..16 {
        for f in 0..3 {
            let name = format!("{round:02}-{f}.json");
            let n = 5 + (round + f) % 7;
            written.insert(name.clone(), (write_tracker(&ws, &name, n), n));
        }
        let planned = last_planned(&ws);
        let mut cmd = ws.medallion();
        cmd.env(SETTLE, "0")
            .args([
                "-q",
                "bronze",
                "--max-files-per-trigger",
                "2",
                "--clean-source",
            ])
            .arg(&archive_arg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = if round < 6 {
            cmd.env("MEDALLION_FAILPOINT", points[round % 2]);
            cmd.output().unwrap()
        } else {
            clock.run_from(&mut cmd, || last_planned(&ws) > planned)
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        if round < 6 {
            assert!(!out.status.success(), "round {round}: {stderr}");
            assert!(stderr.contains("failpoint"), "round {round}: {stderr}");
            at_points += 1;
        } else if killed(&out.status) {
            kills += 1;
        } else {
            assert!(out.status.success(), "round {round}: {stderr}");
        }
        // Whatever instant it stopped at, no file is in neither place, and one in both (a
        // kill between the archive's link and the source's removal) has the same bytes twice.
        let (source, archived) = (names_in(&ws.tracker()), names_in(&archive));
        for name in source.intersection(&archived) {
            let read = |dir: &Path| std::fs::read(dir.join(name)).unwrap();
            assert_eq!(read(&ws.tracker()), read(&archive), "round {round}: {name}");
        }
        let all: BTreeSet<String> = source.union(&archived).cloned().collect();
        assert_eq!(all, written.keys().cloned().collect(), "round {round}");
    }
    assert_eq!(at_points, 6);
    assert!(
        kills >= 3,
        "only {kills} of 10 random kills landed inside a run"
    );
    ws.run_settled(&["bronze", "--clean-source", &archive_arg]);

    // Every element once, every file archived whole, the source folder empty.
    let elements = bronze_elements(&ws);
    let distinct: BTreeSet<_> = elements.iter().cloned().collect();
    assert_eq!(elements.len(), distinct.len(), "an element ingested twice");
    let expected: usize = written.values().map(|(_, n)| n).sum();
    assert_eq!(elements.len(), expected);
    assert!(
        names_in(&ws.tracker()).is_empty(),
        "{:?}",
        names_in(&ws.tracker())
    );
    for (name, (text, _)) in &written {
        let archived = std::fs::read_to_string(archive.join(name)).unwrap();
        assert_eq!(&archived, text, "{name} archived with other bytes");
    }
    let listed = files(&ws);
    assert_eq!(listed.len(), written.len(), "{listed:?}");
    for file in &listed {
        assert_eq!(file["state"], "archived", "{file}");
        assert!(file["version"].as_u64().is_some(), "{file}");
    }
}

#[test]
fn clean_source_delete_never_removes_a_file_before_its_batch_is_committed() {
    let ws = Workspace::new();
    write_tracker(&ws, "a.json", 4);
    write_tracker(&ws, "b.json", 6);
    // Before any stream: both wait.
    let states: Vec<_> = files(&ws).iter().map(|f| f["state"].clone()).collect();
    assert_eq!(states, ["pending", "pending"]);
    // Killed after bronze's commit, before the done marker: both files stay.
    let out = ws
        .medallion()
        .env(SETTLE, "0")
        .env("MEDALLION_FAILPOINT", points::AFTER_COMMIT)
        .args(["-q", "bronze", "--clean-source", "delete"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        names_in(&ws.tracker()),
        ["a.json", "b.json"].map(String::from).into()
    );
    // Committed (the table holds its transaction), though not marked done.
    let listed = files(&ws);
    assert_eq!(listed[0]["state"], "committed", "{listed:?}");
    assert_eq!(listed[1]["state"], "pending", "{listed:?}");
    // The next run marks the first batch done, deletes its file, and takes the other.
    ws.run_settled(&["bronze", "--clean-source", "delete"]);
    assert!(names_in(&ws.tracker()).is_empty());
    assert_eq!(bronze_elements(&ws).len(), 10);
    let states: Vec<_> = files(&ws).iter().map(|f| f["state"].clone()).collect();
    assert_eq!(states, ["deleted", "deleted"]);
    // Files of batches planned without --clean-source are left where they are.
    write_tracker(&ws, "c.json", 3);
    ws.run_settled(&["bronze"]);
    ws.run_settled(&["bronze", "--clean-source", "delete"]);
    assert_eq!(names_in(&ws.tracker()), ["c.json".to_string()].into());
}

#[test]
fn clean_source_refuses_the_source_folder_as_archive_and_keeps_an_archive_file_of_other_bytes() {
    let ws = Workspace::new();
    write_tracker(&ws, "a.json", 3);
    let tracker = ws.tracker();
    let err = ws.run_err(
        &[
            "bronze",
            "--clean-source",
            &format!("archive={}", tracker.display()),
        ],
        2,
    );
    assert!(err.contains("is a folder a bronze stream reads"), "{err}");
    assert!(ws.version(BRONZE).is_none(), "nothing written");
    let err = ws.run_err(&["bronze", "--clean-source", "move"], 2);
    assert!(err.contains("expected delete or archive=FOLDER"), "{err}");

    let archive = ws.dir.path().join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::write(archive.join("a.json"), "another file").unwrap();
    let out = ws
        .medallion()
        .env(SETTLE, "0")
        .args([
            "bronze",
            "--clean-source",
            &format!("archive={}", archive.display()),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("a.json: left in the source folder"),
        "{stderr}"
    );
    assert!(tracker.join("a.json").exists());
    assert_eq!(
        std::fs::read_to_string(archive.join("a.json")).unwrap(),
        "another file"
    );
    let listed = files(&ws);
    assert_eq!(listed[0]["state"], "kept", "{listed:?}");
    assert!(
        listed[0]["detail"]
            .as_str()
            .unwrap()
            .contains("exists with other bytes"),
        "{listed:?}"
    );
}

#[test]
fn the_checkpoint_stays_small_over_hundreds_of_batches_and_still_knows_every_file() {
    let ws = Workspace::new();
    let batches = 260;
    for n in 0..batches {
        write_tracker(&ws, &format!("{n:04}.json"), 1);
    }
    ws.run_settled(&["-q", "bronze", "--auto-compact", "0"]);
    let cp = checkpoint(&ws);
    let count = |sub: &str| names_in(&cp.join(sub)).len();
    // States after batches 99 and 199 (the first one deleted); the plans and markers of the
    // 100 batches before the last state, and of the batches after it: 99..=259.
    assert_eq!(names_in(&cp.join("_state")), ["199".to_string()].into());
    assert_eq!(count("offsets"), 161, "{:?}", names_in(&cp.join("offsets")));
    assert_eq!(count("commits"), 161);
    // Nothing is taken again; a new file is.
    ws.run_settled(&["bronze"]);
    assert_eq!(bronze_elements(&ws).len(), batches);
    write_tracker(&ws, "new.json", 2);
    ws.run_settled(&["bronze"]);
    assert_eq!(bronze_elements(&ws).len(), batches + 2);
    // `files` knows all of them, each with the version that holds it, in batch order.
    let listed = files(&ws);
    assert_eq!(listed.len(), batches + 1);
    let versions: Vec<u64> = listed
        .iter()
        .map(|f| f["version"].as_u64().unwrap())
        .collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert_eq!(
        listed[0]["path"],
        ws.tracker().join("0000.json").display().to_string()
    );
    assert_eq!(listed[0]["state"], "committed");
    // A file changed after it was ingested is still known (it is in the state, not a plan).
    std::fs::write(ws.tracker().join("0003.json"), "[]").unwrap();
    let out = ws
        .medallion()
        .env(SETTLE, "0")
        .args(["bronze"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0003.json") && stderr.contains("size"),
        "{stderr}"
    );
    assert_eq!(bronze_elements(&ws).len(), batches + 2);
}

fn set_mtime(path: &Path, ago: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - ago)
        .unwrap();
}

#[test]
fn max_file_age_passes_over_old_new_files_with_a_warning_and_files_does_not_list_them_pending() {
    let ws = Workspace::new();
    let day = Duration::from_secs(86_400);
    write_tracker(&ws, "now.json", 2);
    ws.run_settled(&["bronze", "--max-file-age", "7d"]);
    write_tracker(&ws, "old.json", 3);
    set_mtime(&ws.tracker().join("old.json"), 10 * day);
    write_tracker(&ws, "recent.json", 4);
    set_mtime(&ws.tracker().join("recent.json"), 3 * day);
    let out = ws
        .medallion()
        .env(SETTLE, "0")
        .args(["bronze", "--max-file-age", "7d"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("old.json: modified more than --max-file-age 7days"),
        "{stderr}"
    );
    assert_eq!(bronze_elements(&ws).len(), 6, "now and recent, not old");
    let listed: Vec<String> = files(&ws)
        .iter()
        .map(|f| format!("{} {}", f["file"].as_str().unwrap(), f["state"]))
        .collect();
    assert_eq!(
        listed,
        ["now.json \"committed\"", "recent.json \"committed\""]
    );
    // Without the flag every new file is taken, however old.
    ws.run_settled(&["bronze"]);
    assert_eq!(bronze_elements(&ws).len(), 9);
}

#[test]
fn regression_clean_up_deleted_a_file_rewritten_after_its_batch_took_it() {
    let ws = Workspace::new();
    write_tracker(&ws, "a.json", 4);
    // Done, then killed before the clean-up; the file is rewritten meanwhile.
    let out = ws
        .medallion()
        .env(SETTLE, "0")
        .env("MEDALLION_FAILPOINT", points::AFTER_DONE)
        .args(["-q", "bronze", "--clean-source", "delete"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let rewritten = write_tracker(&ws, "a.json", 9);
    let out = ws
        .medallion()
        .env(SETTLE, "0")
        .args(["bronze", "--clean-source", "delete"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("a.json: left in the source folder"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(ws.tracker().join("a.json")).unwrap(),
        rewritten,
        "the rewritten file was deleted"
    );
    let listed = files(&ws);
    assert_eq!(listed[0]["state"], "kept", "{listed:?}");
    assert!(
        listed[0]["detail"]
            .as_str()
            .unwrap()
            .contains("its size is"),
        "{listed:?}"
    );
}

#[test]
fn regression_a_longer_max_file_age_ingested_forgotten_files_again() {
    let ws = Workspace::new();
    let hour = Duration::from_secs(3600);
    // 110 one-file batches, an hour apart, the newest 10 hours ago: the compaction after
    // batch 99 forgets what is a day older than the newest.
    for n in 0..110u32 {
        write_tracker(&ws, &format!("{n:03}.json"), 1);
        set_mtime(&ws.tracker().join(format!("{n:03}.json")), (120 - n) * hour);
    }
    ws.run_settled(&[
        "-q",
        "bronze",
        "--max-file-age",
        "1d",
        "--auto-compact",
        "0",
    ]);
    assert_eq!(bronze_elements(&ws).len(), 110);
    let state = std::fs::read_to_string(checkpoint(&ws).join("_state/99")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert!(state["forgotten"].as_u64().unwrap() > 0, "{state}");
    // A longer age, or none, does not take the forgotten files again: they may be ingested.
    for args in [&["bronze", "--max-file-age", "30d"][..], &["bronze"]] {
        let out = ws.medallion().env(SETTLE, "0").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains("cannot tell whether this one was ingested"),
            "{stderr}"
        );
        assert_eq!(bronze_elements(&ws).len(), 110, "{args:?} ingested again");
    }
}

#[test]
fn regression_one_file_dated_in_the_future_made_every_new_file_too_old() {
    let ws = Workspace::new();
    write_tracker(&ws, "future.json", 2);
    std::fs::File::options()
        .write(true)
        .open(ws.tracker().join("future.json"))
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(3 * 365 * 86_400))
        .unwrap();
    ws.run_settled(&["bronze", "--max-file-age", "7d"]);
    write_tracker(&ws, "now.json", 3);
    ws.run_settled(&["bronze", "--max-file-age", "7d"]);
    assert_eq!(
        bronze_elements(&ws).len(),
        5,
        "the file of now was passed over"
    );
}

#[test]
fn clean_source_refuses_an_archive_another_stream_reads_or_inside_the_warehouse() {
    let ws = Workspace::new();
    let other = ws.dir.path().join("site_b");
    std::fs::create_dir_all(&other).unwrap();
    write_tracker(&ws, "a.json", 2);
    ws.run_settled(&["bronze", "--source", &format!("b={}", other.display())]);
    let err = ws.run_err(
        &[
            "bronze",
            "--clean-source",
            &format!("archive={}", other.display()),
        ],
        2,
    );
    assert!(err.contains("is a folder a bronze stream reads"), "{err}");
    let inside = ws
        .warehouse()
        .join("healthcare_dlh.db/fact_heartrate_bronze/archived");
    let err = ws.run_err(
        &[
            "bronze",
            "--clean-source",
            &format!("archive={}", inside.display()),
        ],
        2,
    );
    assert!(err.contains("is inside the warehouse"), "{err}");
    assert_eq!(bronze_elements(&ws).len(), 0, "nothing ingested");
}

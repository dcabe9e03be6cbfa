//! `medallion generate`: the lab's format, realism, determinism, `--append`.

use crate::common::{Workspace, folder_bytes};

/// A tracker file parsed back with key order kept: rows of (key, value) pairs.
fn parse_tracker(path: &std::path::Path) -> Vec<Vec<(String, serde_json::Value)>> {
    let text = std::fs::read_to_string(path).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let array = value.as_array().expect("a tracker file is one JSON array");
    array
        .iter()
        .map(|e| {
            e.as_object()
                .expect("each element is an object")
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .collect()
}

#[test]
fn default_data_looks_like_the_lab() {
    let ws = Workspace::new();
    ws.run_ok(&["generate"]);

    let csv = std::fs::read_to_string(ws.patients_csv()).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("mrn,name"));
    let mrns: Vec<String> = lines
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    assert_eq!(mrns.len(), 34);
    assert!(
        mrns.iter()
            .all(|m| m.len() == 8 && m.bytes().all(|b| b.is_ascii_digit()))
    );

    let mut names: Vec<String> = std::fs::read_dir(ws.tracker())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let expected: Vec<String> = (1..=12).map(|m| format!("{m:02}.json")).collect();
    assert_eq!(names, expected);

    let (mut rows, mut negative) = (0usize, 0usize);
    let mut devices_per_mrn =
        std::collections::HashMap::<String, std::collections::HashSet<String>>::new();
    for (month, name) in names.iter().enumerate() {
        let text = std::fs::read_to_string(ws.tracker().join(name)).unwrap();
        assert!(
            text.starts_with("[\n    {\n        \"device_id\": \""),
            "4-space indent"
        );
        let records = parse_tracker(&ws.tracker().join(name));
        assert!(records.len() <= 10_000);
        let (from, to) = month_bounds(month as u32);
        let mut last = 0.0;
        for record in &records {
            let keys: Vec<&str> = record.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, ["device_id", "heartrate", "mrn", "time"]);
            let text: Vec<&str> = record
                .iter()
                .map(|(_, v)| v.as_str().expect("string values"))
                .collect();
            let time: f64 = text[3].parse().unwrap();
            assert!(
                text[3].contains('.'),
                "time has a fractional part: {}",
                text[3]
            );
            assert!(time >= from && time < to, "{time} in month {month}");
            assert!(time >= last, "ordered by time");
            last = time;
            let rate: f64 = text[1].parse().unwrap();
            assert!((-280.0..=345.0).contains(&rate));
            negative += usize::from(rate < 0.0);
            assert!(mrns.contains(&text[2].to_string()));
            devices_per_mrn
                .entry(text[2].to_string())
                .or_default()
                .insert(text[0].to_string());
        }
        rows += records.len();
    }
    assert!(
        (90_000..=120_000).contains(&rows),
        "about 100k rows, got {rows}"
    );
    let share = negative as f64 / rows as f64;
    assert!((0.001..0.006).contains(&share), "negative share {share}");
    assert!(
        devices_per_mrn.values().all(|d| d.len() == 1),
        "one device per patient"
    );
    assert_eq!(devices_per_mrn.len(), 34, "every patient wears a monitor");
}

fn month_bounds(month: u32) -> (f64, f64) {
    let start = |m: u32| {
        chrono::NaiveDate::from_ymd_opt(2020 + (m / 12) as i32, m % 12 + 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp() as f64
    };
    (start(month), start(month + 1))
}

#[test]
fn the_same_seed_gives_byte_identical_folders() {
    let (a, b, c) = (Workspace::new(), Workspace::new(), Workspace::new());
    a.run_ok(&["generate", "--seed", "7"]);
    b.run_ok(&["generate", "--seed", "7"]);
    c.run_ok(&["generate", "--seed", "8"]);
    let (fa, fb, fc) = (
        folder_bytes(&a.data()),
        folder_bytes(&b.data()),
        folder_bytes(&c.data()),
    );
    assert_eq!(fa.len(), 14, "csv, manifest and 12 tracker files");
    assert!(fa == fb, "seed 7 twice differs");
    assert!(fa != fc, "seeds 7 and 8 agree");
}

#[test]
fn append_adds_the_month_a_longer_run_would_have() {
    let (short, long) = (Workspace::new(), Workspace::new());
    short.run_ok(&["generate", "--months", "3", "--patients", "5"]);
    let out = short.run_ok(&["generate", "--append"]);
    assert!(out.contains("04.json"), "{out}");
    long.run_ok(&["generate", "--months", "4", "--patients", "5"]);
    assert_eq!(
        folder_bytes(&short.tracker()),
        folder_bytes(&long.tracker())
    );
}

#[test]
fn scale_multiplies_files_and_rows() {
    let ws = Workspace::new();
    let out = ws.run_ok(&[
        "--json",
        "generate",
        "--scale",
        "3",
        "--patients",
        "4",
        "--months",
        "2",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["files"].as_array().unwrap().len(), 6);
}

#[test]
fn generate_refuses_to_overwrite_without_force() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--months", "1"]);
    let err = ws.run_err(&["generate", "--months", "1"], 2);
    assert!(err.contains("already holds 1 tracker files"), "{err}");
    ws.run_ok(&["generate", "--months", "2", "--force"]);
    assert_eq!(std::fs::read_dir(ws.tracker()).unwrap().count(), 2);
}

#[test]
fn append_without_a_generated_folder_says_so() {
    let ws = Workspace::new();
    let err = ws.run_err(&["generate", "--append"], 1);
    assert!(err.contains("run `medallion generate` first"), "{err}");
}

#[test]
fn generate_force_keeps_files_it_did_not_write() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--months", "2", "--patients", "3"]);
    let mine = ws.tracker().join("mine.json");
    std::fs::write(&mine, "[]").unwrap();

    let out = ws.run_ok(&[
        "--json",
        "generate",
        "--months",
        "1",
        "--patients",
        "3",
        "--force",
    ]);
    assert!(mine.exists(), "--force removed a file it did not write");
    assert_eq!(std::fs::read(&mine).unwrap(), b"[]", "its own bytes");
    let mut names: Vec<String> = std::fs::read_dir(ws.tracker())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["01.json", "mine.json"],
        "02.json was the generator's"
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report["warnings"],
        serde_json::json!([format!(
            "{}: not written by `medallion generate`, so it was left in place; bronze will \
             ingest it with the generated files",
            mine.display()
        )])
    );
}

#[test]
fn generate_force_refuses_to_overwrite_a_file_it_did_not_write() {
    // No manifest: nothing in the folder is the generator's.
    let ws = Workspace::new();
    ws.write("healthcare/streaming/tracker/02.json", "[\"mine\"]");
    ws.write("healthcare/streaming/tracker/notes.txt", "mine");
    let err = ws.run_err(&["generate", "--months", "3", "--force"], 2);
    assert!(
        err.contains(&format!(
            "{} holds 02.json that `medallion generate` did not write",
            ws.tracker().display()
        )),
        "{err}"
    );
    assert!(err.contains("move or remove them"), "{err}");
    assert_eq!(
        std::fs::read(ws.tracker().join("02.json")).unwrap(),
        b"[\"mine\"]"
    );
    assert_eq!(
        std::fs::read_dir(ws.tracker()).unwrap().count(),
        2,
        "nothing written"
    );
}

#[test]
fn generate_append_refuses_to_overwrite_a_file_it_did_not_write() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--months", "1", "--patients", "3"]);
    ws.write("healthcare/streaming/tracker/02.json", "[\"mine\"]");
    let err = ws.run_err(&["generate", "--append"], 2);
    assert!(
        err.contains("02.json exists and was not written by `medallion generate`"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(ws.tracker().join("02.json")).unwrap(),
        b"[\"mine\"]"
    );
    // Once it is moved away, the month is appended, and is the generator's from then on.
    std::fs::rename(ws.tracker().join("02.json"), ws.dir.path().join("02.json")).unwrap();
    ws.run_ok(&["generate", "--append"]);
    ws.run_ok(&["generate", "--months", "1", "--patients", "3", "--force"]);
    assert_eq!(std::fs::read_dir(ws.tracker()).unwrap().count(), 1);
}

#[test]
fn generate_force_reads_a_manifest_without_a_file_list() {
    // Manifests written before the list was kept name only the months written.
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--months", "2", "--patients", "3"]);
    let manifest_path = ws.data().join("healthcare/.generator.json");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let old = serde_json::json!({
        "options": manifest["options"],
        "months_written": manifest["months_written"],
    });
    std::fs::write(&manifest_path, old.to_string()).unwrap();
    std::fs::write(ws.tracker().join("mine.json"), "[]").unwrap();

    ws.run_ok(&["generate", "--months", "3", "--patients", "3", "--force"]);
    let mut names: Vec<String> = std::fs::read_dir(ws.tracker())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["01.json", "02.json", "03.json", "mine.json"]);
}

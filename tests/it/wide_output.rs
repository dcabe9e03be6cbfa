//! Wide output fits (issue 11 item 8): on a terminal, or with `COLUMNS` set, `history` and `diff`
//! lay their tables out within the width, cutting cells with `…`; `--no-truncate`, pipes without
//! `COLUMNS`, JSON and CSV keep whole values. `diff`'s text table shows the key and the columns
//! that changed unless `--all-columns`.

use std::process::Output;

use serde_json::Value;

use crate::common::Workspace;

const BRONZE: &str = "fact_heartrate_bronze";
const SILVER: &str = "fact_heartrate_silver";
const GOLD: &str = "fact_heartrate_gold";

/// `medallion ARGS` with `COLUMNS` set (or not), expected to succeed.
fn run(ws: &Workspace, columns: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = ws.medallion();
    cmd.env_remove("COLUMNS");
    if let Some(columns) = columns {
        cmd.env("COLUMNS", columns);
    }
    let out = cmd.args(args).output().expect("medallion runs");
    assert!(
        out.status.success(),
        "medallion {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(ws: &Workspace, columns: Option<&str>, args: &[&str]) -> String {
    String::from_utf8(run(ws, columns, args).stdout).expect("utf-8 stdout")
}

/// Every line at most `width` characters; the text is a table.
fn assert_fits(text: &str, width: usize, what: &str) {
    assert!(text.starts_with("+-"), "{what}: not a table:\n{text}");
    for line in text.lines() {
        assert!(
            line.chars().count() <= width,
            "{what}: a line of {} characters in {width}:\n{line}\n\n{text}",
            line.chars().count()
        );
    }
}

fn longest_line(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

#[test]
fn regression_history_fits_an_80_column_terminal() {
    let ws = Workspace::two_runs();
    for width in [80, 140] {
        for table in [BRONZE, SILVER, GOLD] {
            let text = stdout(&ws, Some(&width.to_string()), &["history", table]);
            assert_fits(&text, width, &format!("history {table} in {width}"));
            // Every commit is still there, newest first, its version whole.
            let versions: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("| "))
                .filter_map(|l| l.split_whitespace().next())
                .filter(|v| v.parse::<u64>().is_ok())
                .collect();
            assert_eq!(versions.first(), Some(&"2"), "{text}");
            assert_eq!(versions.last(), Some(&"0"), "{text}");
            assert!(text.contains('…'), "cut cells end with …:\n{text}");
        }
    }
}

#[test]
fn regression_diff_fits_an_80_column_terminal() {
    let ws = Workspace::two_runs();
    for width in [80, 140] {
        let columns = width.to_string();
        for table in [SILVER, GOLD] {
            for extra in [None, Some("--all-columns")] {
                let mut args = vec!["diff", table, "--from", "1"];
                args.extend(extra);
                let text = stdout(&ws, Some(&columns), &args);
                assert_fits(&text, width, &format!("{args:?} in {width}"));
            }
        }
    }
    // Too many columns for one table even at their narrowest: several tables, each repeating
    // the change and the key.
    let text = stdout(
        &ws,
        Some("80"),
        &["diff", GOLD, "--from", "1", "--all-columns"],
    );
    let headers: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("| change "))
        .collect();
    assert!(headers.len() > 1, "{text}");
    assert!(headers.iter().all(|h| h.contains("| mrn ")), "{text}");
}

#[test]
fn no_truncate_and_pipes_without_columns_keep_whole_lines() {
    let ws = Workspace::two_runs();
    let whole = stdout(&ws, Some("80"), &["history", GOLD, "--no-truncate"]);
    assert!(longest_line(&whole) > 80, "{whole}");
    assert!(!whole.contains('…') && !whole.contains("..."), "{whole}");
    assert_eq!(
        whole,
        stdout(&ws, None, &["history", GOLD, "--no-truncate"])
    );

    // A pipe without COLUMNS: today's lines, cut only at 40 characters a value.
    let piped = stdout(&ws, None, &["history", GOLD]);
    assert!(longest_line(&piped) > 80, "{piped}");
    assert!(!piped.contains('…'), "{piped}");
    assert_eq!(piped, stdout(&ws, Some("100000"), &["history", GOLD]));
    // COLUMNS that is not a width is ignored.
    assert_eq!(piped, stdout(&ws, Some("wide"), &["history", GOLD]));
}

#[test]
fn diff_shows_the_changed_columns_unless_all_columns() {
    let ws = Workspace::two_runs();
    let before = ws.version(GOLD).unwrap();
    // A patient renamed: gold's row changes its name, not its counts.
    let csv = std::fs::read_to_string(ws.patients_csv()).unwrap();
    let (header, rest) = csv.split_once('\n').unwrap();
    let (first, others) = rest.split_once('\n').unwrap();
    let (mrn, _) = first.split_once(',').unwrap();
    ws.write(
        "healthcare/batch/patient_info.csv",
        &format!("{header}\n{mrn},Renamed Patient\n{others}"),
    );
    ws.run_ok(&["-q", "pipeline"]);
    let from = before.to_string();
    let args = ["diff", GOLD, "--from", from.as_str()];

    let out = run(&ws, Some("80"), &args);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_fits(&text, 80, "diff of a rename");
    assert!(
        text.contains("| changed | ") && text.contains(mrn),
        "{text}"
    );
    assert!(
        text.contains("new_patient_name") && text.contains("Renamed Patient"),
        "{text}"
    );
    assert!(!text.contains("count"), "count did not change:\n{text}");
    let note = String::from_utf8(out.stderr).unwrap();
    assert!(note.contains("0 added, 0 removed, 1 changed"), "{note}");
    assert!(
        note.contains("--all-columns") && note.contains("count"),
        "{note}"
    );

    let mut all = args.to_vec();
    all.push("--all-columns");
    let text = stdout(&ws, None, &all);
    for column in [
        "old_patient_name",
        "old_count",
        "new_count",
        "new_sum_heartrate",
    ] {
        assert!(text.contains(column), "{column}:\n{text}");
    }

    // JSON (and CSV) have every column whatever the width, without --all-columns.
    let mut json = args.to_vec();
    json.extend(["--format", "json"]);
    let lines = stdout(&ws, Some("80"), &json);
    let row: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(row["new_patient_name"], "Renamed Patient");
    assert_eq!(row["old_count"], row["new_count"]);
    assert_eq!(lines, stdout(&ws, None, &json));
    let mut csv = args.to_vec();
    csv.extend(["--format", "csv"]);
    let table = stdout(&ws, Some("80"), &csv);
    assert!(
        table.lines().next().unwrap().contains("old_count"),
        "{table}"
    );
    assert_eq!(table, stdout(&ws, None, &csv));
}

#[test]
fn json_history_is_never_trimmed() {
    let ws = Workspace::two_runs();
    let json = stdout(&ws, Some("80"), &["history", SILVER, "--format", "json"]);
    assert_eq!(
        json,
        stdout(&ws, None, &["history", SILVER, "--format", "json"])
    );
    assert!(longest_line(&json) > 80, "{json}");
    for line in json.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    assert_eq!(
        stdout(&ws, Some("80"), &["--json", "history", SILVER]),
        json
    );
}

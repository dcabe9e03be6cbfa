//! The read side (`tables`, `describe`, `history`, `show`, `sql`, `diff`, `restore`) on a
//! warehouse refreshed twice: January's data, then February's appended. Time travel gives back
//! exactly what the first run wrote, by version and by commit time; diff names exactly the
//! patients the second run changed; restore works and refuses to strand downstream tables;
//! bad input is refused with a message that says what exists.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use medallion::testing::{Format, Rows};
use serde_json::{Value, json};

use crate::common::Workspace;

const DIM: &str = "dim_patients";
const BRONZE: &str = "fact_heartrate_bronze";
const SILVER: &str = "fact_heartrate_silver";
const GOLD: &str = "fact_heartrate_gold";
const DAILY: &str = "fact_heartrate_daily";
const TABLES: [&str; 6] = [DIM, BRONZE, SILVER, GOLD, DAILY, "pipeline_events"];

/// A generated month through the pipeline: 12 patients, January (one patient wears a monitor).
fn first_run() -> Workspace {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "12", "--months", "1"]);
    ws.run_ok(&["-q", "pipeline"]);
    ws
}

/// February appended and refreshed: that patient gets more readings, a second one starts.
fn second_run(ws: &Workspace) {
    ws.run_ok(&["generate", "--append"]);
    ws.run_ok(&["-q", "pipeline"]);
}

/// Parse one JSON object per line.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// Every row of a table (at a version), as sorted JSON lines.
fn rows(ws: &Workspace, table: &str, version: Option<u64>) -> Vec<String> {
    let version = version.map(|v| v.to_string());
    let mut args = vec!["show", table, "--limit", "0", "--format", "json"];
    if let Some(v) = &version {
        args.extend(["--version", v]);
    }
    let mut lines: Vec<String> = ws.run_ok(&args).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn gold_by_mrn(ws: &Workspace, version: u64) -> BTreeMap<i64, Value> {
    rows(ws, GOLD, Some(version))
        .iter()
        .map(|line| {
            let row: Value = serde_json::from_str(line).unwrap();
            (row["mrn"].as_i64().unwrap(), row)
        })
        .collect()
}

fn commit_files(ws: &Workspace, table: &str) -> Vec<std::path::PathBuf> {
    let log = ws
        .warehouse()
        .join("healthcare_dlh.db")
        .join(table)
        .join("_delta_log");
    let mut files: Vec<_> = std::fs::read_dir(log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn show_version_gives_back_what_the_first_run_wrote() {
    let ws = first_run();
    let before: Vec<(u64, Vec<String>)> = TABLES
        .iter()
        .map(|t| (ws.version(t).unwrap(), rows(&ws, t, None)))
        .collect();
    second_run(&ws);
    for (table, (version, rows_then)) in TABLES.iter().zip(&before) {
        if *table != DIM {
            assert!(
                ws.version(table).unwrap() > *version,
                "{table} has a new version"
            );
        }
        assert_eq!(
            &rows(&ws, table, Some(*version)),
            rows_then,
            "{table} v{version}"
        );
    }
    // The second run did change the data, so the comparison above means something.
    assert_ne!(rows(&ws, GOLD, None), before[3].1);
    assert_ne!(rows(&ws, BRONZE, None).len(), before[1].1.len());
}

#[test]
fn as_of_picks_the_version_by_commit_timestamps_not_file_times() {
    let ws = first_run();
    let gold_v1 = rows(&ws, GOLD, Some(1));
    std::thread::sleep(Duration::from_millis(50));
    let between = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    std::thread::sleep(Duration::from_millis(50));
    second_run(&ws);
    let latest = rows(&ws, GOLD, None);
    assert_ne!(gold_v1, latest);

    // Copying a table changes its files' times: make them say the opposite of the commits.
    let files = commit_files(&ws, GOLD);
    for (i, path) in files.iter().enumerate() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000 - i as u64 * 1000);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    let as_of = |time: &str| {
        let mut lines: Vec<String> = ws
            .run_ok(&[
                "show", GOLD, "--as-of", time, "--limit", "0", "--format", "json",
            ])
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(as_of(&between), gold_v1);
    assert_eq!(as_of("2999-01-01 00:00:00"), latest);
    assert_eq!(as_of("2999-01-01"), latest);

    let err = ws.run_err(&["show", GOLD, "--as-of", "2001-02-03 04:05:06"], 1);
    assert!(
        err.contains(
            "table fact_heartrate_gold did not exist at 2001-02-03T04:05:06Z: its first version (v0) was committed at"
        ),
        "{err}"
    );
}

#[test]
fn history_lists_every_commit_newest_first_with_its_transactions() {
    let ws = first_run();
    second_run(&ws);
    let history = json_lines(&ws.run_ok(&["history", SILVER, "--format", "json"]));
    let versions: Vec<i64> = history
        .iter()
        .map(|c| c["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![2, 1, 0]);
    let operations: Vec<&str> = history
        .iter()
        .map(|c| c["operation"].as_str().unwrap())
        .collect();
    // New readings only: silver appends them (a MERGE when a reading may already be there).
    assert_eq!(operations, vec!["WRITE", "WRITE", "CREATE TABLE"]);
    assert_eq!(
        history[0]["transactions"],
        json!({"silver<-dim_patients": 1, "silver<-fact_heartrate_bronze": 2})
    );
    assert_eq!(
        history[1]["transactions"]["silver<-fact_heartrate_bronze"],
        json!(1)
    );
    let added: i64 = history[0]["metrics"]["num_added_rows"]
        .as_i64()
        .or_else(|| {
            history[0]["metrics"]["num_added_rows"]
                .as_str()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{}", history[0]["metrics"]));
    assert!(added > 0);
    for commit in &history {
        let time = commit["timestamp"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok() && time.ends_with('Z'));
    }

    // Bronze: one streaming commit per batch, its txn the stream's id and batch.
    let bronze = json_lines(&ws.run_ok(&["history", BRONZE, "--format", "json"]));
    let stream_id = std::fs::read_to_string(
        ws.warehouse()
            .join("healthcare_dlh.db/fact_heartrate_bronze/_checkpoint/metadata"),
    )
    .unwrap();
    let stream_id: Value = serde_json::from_str(&stream_id).unwrap();
    let stream_id = stream_id["id"].as_str().unwrap();
    assert_eq!(bronze[0]["operation"], "STREAMING UPDATE");
    assert_eq!(bronze[0]["transactions"], json!({ stream_id: 1 }));
    assert_eq!(bronze[0]["details"]["batchId"], json!(1));
    assert_eq!(bronze[0]["details"]["sourceFiles"], json!(["02.json"]));

    let limited = json_lines(&ws.run_ok(&["history", GOLD, "--limit", "1", "--format", "json"]));
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0]["version"], json!(2));
}

#[test]
fn diff_between_the_two_gold_versions_shows_exactly_the_changed_patients() {
    let ws = first_run();
    second_run(&ws);
    let (old, new) = (gold_by_mrn(&ws, 1), gold_by_mrn(&ws, 2));
    let mut expected = BTreeSet::new();
    for (mrn, row) in &new {
        match old.get(mrn) {
            None => expected.insert(("added".to_string(), *mrn)),
            Some(before) if before != row => expected.insert(("changed".to_string(), *mrn)),
            Some(_) => false,
        };
    }
    for mrn in old.keys().filter(|m| !new.contains_key(m)) {
        expected.insert(("removed".to_string(), *mrn));
    }
    assert!(expected.iter().any(|(c, _)| c == "changed"), "{expected:?}");
    assert!(expected.iter().any(|(c, _)| c == "added"), "{expected:?}");

    let out = ws
        .medallion()
        .args(["diff", GOLD, "--from", "1", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let diff = json_lines(&String::from_utf8(out.stdout).unwrap());
    let found: BTreeSet<(String, i64)> = diff
        .iter()
        .map(|r| {
            (
                r["change"].as_str().unwrap().to_string(),
                r["mrn"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(found, expected);
    for row in &diff {
        let mrn = row["mrn"].as_i64().unwrap();
        let empty = Value::Null;
        for column in ["patient_name", "avg_heartrate", "count", "last_reading"] {
            let was = old.get(&mrn).map_or(&empty, |r| &r[column]);
            assert_eq!(&row[format!("old_{column}")], was, "{mrn} {column}");
            assert_eq!(
                row[format!("new_{column}")],
                new[&mrn][column],
                "{mrn} {column}"
            );
        }
    }
    let changed = expected.iter().filter(|(c, _)| c == "changed").count();
    let added = expected.iter().filter(|(c, _)| c == "added").count();
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "fact_heartrate_gold v1 -> v2 (key mrn): {added} added, 0 removed, {changed} changed\n"
        )
    );

    // --to, --key, and the same versions: nothing.
    let same = ws.run_ok(&["diff", GOLD, "--from", "2", "--to", "2", "--format", "json"]);
    assert_eq!(same, "");
    let by_name = json_lines(&ws.run_ok(&[
        "diff",
        GOLD,
        "--from",
        "1",
        "--to",
        "2",
        "--key",
        "patient_name",
        "--format",
        "json",
    ]));
    assert_eq!(by_name.len(), diff.len());
    // Bronze has no key: every column is one, so rows are only added.
    let bronze = json_lines(&ws.run_ok(&["diff", BRONZE, "--from", "1", "--format", "json"]));
    assert!(!bronze.is_empty());
    assert!(
        bronze
            .iter()
            .all(|r| r["change"] == "added" && r["_batch_id"] == json!(1))
    );
}

#[test]
fn restore_puts_a_version_back_and_refuses_to_strand_downstream_tables() {
    let ws = first_run();
    second_run(&ws);
    let silver_v2 = rows(&ws, SILVER, None);

    // Gold and daily have consumed silver v2: restoring silver v1 is refused, and says why.
    let err = ws.run_err(&["restore", SILVER, "--version", "1"], 1);
    for needle in [
        "restoring v1 would take back what v2 changed",
        "fact_heartrate_gold consumed fact_heartrate_silver up to v2 (txn gold<-fact_heartrate_silver)",
        "fact_heartrate_daily consumed fact_heartrate_silver up to v2",
        "--force",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert_eq!(ws.version(SILVER), Some(2), "nothing was committed");
    assert_eq!(rows(&ws, SILVER, None), silver_v2);
    // Silver has consumed bronze v2 and dim_patients v1.
    let err = ws.run_err(&["restore", BRONZE, "--version", "1"], 1);
    assert!(
        err.contains("fact_heartrate_silver consumed fact_heartrate_bronze up to v2"),
        "{err}"
    );
    assert!(err.contains("will not read them again"), "{err}");
    let err = ws.run_err(&["restore", DIM, "--version", "0"], 1);
    assert!(
        err.contains("fact_heartrate_silver consumed dim_patients up to v1"),
        "{err}"
    );

    // Nothing consumes gold: its restore is a new commit holding v1's rows.
    let gold_v1 = rows(&ws, GOLD, Some(1));
    let out = ws.run_ok(&["restore", GOLD, "--version", "1"]);
    assert!(
        out.starts_with("restore: fact_heartrate_gold v1 restored as v3 (was v2)"),
        "{out}"
    );
    assert_eq!(ws.version(GOLD), Some(3));
    assert_eq!(rows(&ws, GOLD, None), gold_v1);
    let history = json_lines(&ws.run_ok(&["history", GOLD, "--limit", "1", "--format", "json"]));
    assert_eq!(history[0]["operation"], "RESTORE");
    assert_eq!(history[0]["parameters"], json!({"version": "1"}));

    // --force restores anyway and names the tables now stale.
    let report: Value = serde_json::from_str(&ws.run_ok(&[
        "--json",
        "restore",
        SILVER,
        "--version",
        "1",
        "--force",
    ]))
    .unwrap();
    assert_eq!(report["version_after"], json!(3));
    // Gold's restore above took its position back to silver v1: only daily is ahead.
    assert_eq!(report["stale_consumers"], json!(["fact_heartrate_daily"]));
    assert_eq!(rows(&ws, SILVER, None), rows(&ws, SILVER, Some(1)));

    // Nothing to restore, or a version that does not exist.
    let err = ws.run_err(&["restore", GOLD, "--version", "3"], 1);
    assert!(err.contains("v3 is its latest version"), "{err}");
    let err = ws.run_err(&["restore", GOLD, "--version", "9"], 1);
    assert!(
        err.contains("table fact_heartrate_gold has no version 9: its latest version is 3"),
        "{err}"
    );
}

#[test]
fn bad_input_says_what_exists() {
    let empty = Workspace::new();
    let err = empty.run_err(&["show", GOLD], 1);
    assert!(err.contains("the warehouse has no tables yet"), "{err}");
    assert_eq!(
        empty.run_ok(&["tables", "--format", "csv"]),
        "table,version,rows,files,bytes,last_commit\n"
    );
    assert!(!empty.warehouse().exists(), "reading creates nothing");

    let ws = first_run();
    let listing = "the tables are: dim_patients, fact_heartrate_bronze, fact_heartrate_silver, \
                   fact_heartrate_gold, fact_heartrate_daily";
    for args in [
        vec!["show", "nope"],
        vec!["describe", "nope"],
        vec!["history", "nope"],
        vec!["diff", "nope", "--from", "0"],
        vec!["restore", "nope", "--version", "0"],
    ] {
        let err = ws.run_err(&args, 1);
        assert!(
            err.contains("table nope does not exist at file://"),
            "{args:?}: {err}"
        );
        assert!(err.contains(listing), "{args:?}: {err}");
    }
    let outside = ws.dir.path().join("x").display().to_string();
    for name in [
        "../x",
        "a/b",
        "fact_heartrate_gold/..",
        outside.as_str(),
        "_checkpoint",
    ] {
        for command in ["show", "describe", "history"] {
            let err = ws.run_err(&[command, name], 2);
            assert!(
                err.contains("is not a table name"),
                "{command} {name}: {err}"
            );
        }
    }

    let err = ws.run_err(&["show", GOLD, "--version", "7"], 1);
    assert!(
        err.contains("table fact_heartrate_gold has no version 7: its latest version is 1"),
        "{err}"
    );
    let err = ws.run_err(&["diff", GOLD, "--from", "0", "--to", "7"], 1);
    assert!(err.contains("has no version 7"), "{err}");
    let err = ws.run_err(&["sql", r#"SELECT * FROM "fact_heartrate_gold@v7""#], 1);
    assert!(err.contains("has no version 7"), "{err}");
    let err = ws.run_err(&["show", GOLD, "--as-of", "last tuesday"], 2);
    assert!(err.contains("is not a time"), "{err}");
    ws.run_err(
        &["show", GOLD, "--as-of", "2020-01-01", "--version", "1"],
        2,
    );

    let err = ws.run_err(&["sql", "SELECT nope FROM fact_heartrate_gold"], 1);
    assert!(
        err.starts_with("error: SQL query failed: Schema error: No field named nope"),
        "{err}"
    );
    let err = ws.run_err(&["sql", "SELEC 1"], 2);
    assert!(
        err.starts_with("error: SQL syntax error at line 1, column 1: Expected: an SQL statement"),
        "{err}"
    );
    let err = ws.run_err(&["show", GOLD, "--where", "nope > 1"], 1);
    assert!(err.contains("No field named nope"), "{err}");
    let err = ws.run_err(&["diff", GOLD, "--from", "0", "--key", "nope"], 2);
    assert!(err.contains("no column \"nope\" to use as a key"), "{err}");
}

#[test]
fn sql_reads_every_table_by_name_by_database_and_at_a_version() {
    let ws = first_run();
    second_run(&ws);
    let count = |query: &str| {
        let out = json_lines(&ws.run_ok(&["sql", query, "--format", "json"]));
        out[0]["n"].as_i64().unwrap()
    };
    let silver_rows = rows(&ws, SILVER, None).len() as i64;
    assert_eq!(
        count("SELECT count(*) AS n FROM fact_heartrate_silver"),
        silver_rows
    );
    assert_eq!(
        count("SELECT count(*) AS n FROM healthcare_dlh.fact_heartrate_silver"),
        silver_rows
    );
    assert_eq!(
        count(r#"SELECT count(*) AS n FROM "fact_heartrate_silver@v1""#),
        rows(&ws, SILVER, Some(1)).len() as i64
    );
    assert_eq!(
        count(r#"SELECT count(*) AS n FROM healthcare_dlh."fact_heartrate_gold@v1""#),
        1
    );
    // A version and the latest side by side.
    let joined = json_lines(&ws.run_ok(&[
        "sql",
        r#"SELECT n.mrn, o.count AS before, n.count AS after
           FROM fact_heartrate_gold n JOIN "fact_heartrate_gold@v1" o USING (mrn)"#,
        "--format",
        "json",
    ]));
    let (old, new) = (gold_by_mrn(&ws, 1), gold_by_mrn(&ws, 2));
    assert_eq!(joined.len(), old.len());
    for row in joined {
        let mrn = row["mrn"].as_i64().unwrap();
        assert_eq!(row["before"], old[&mrn]["count"]);
        assert_eq!(row["after"], new[&mrn]["count"]);
    }
}

/// The patient dimension, ordered: deterministic (seeded), so its text is compared whole.
#[test]
fn each_format_prints_the_same_rows() {
    let ws = first_run();
    let args = ["show", DIM, "--order-by", "mrn", "--limit", "3"];
    let json = json_lines(&ws.run_ok(&[&args[..], &["--format", "json"]].concat()));
    let csv = ws.run_ok(&[&args[..], &["--format", "csv"]].concat());
    let text = ws.run_ok(&args);
    assert_eq!(json.len(), 3);

    let mut expected_csv = String::from("mrn,name\n");
    let mut width = "name".len();
    for row in &json {
        let name = row["name"].as_str().unwrap();
        assert!(row["mrn"].is_i64(), "numbers stay numbers: {row}");
        expected_csv.push_str(&format!("{},{name}\n", row["mrn"]));
        width = width.max(name.chars().count());
    }
    assert_eq!(csv, expected_csv);

    let rule = format!("+----------+-{}-+\n", "-".repeat(width));
    let mut expected_text = format!("{rule}| mrn      | {:width$} |\n{rule}", "name");
    for row in &json {
        expected_text.push_str(&format!(
            "| {} | {:width$} |\n",
            row["mrn"],
            row["name"].as_str().unwrap()
        ));
    }
    expected_text.push_str(&rule);
    assert_eq!(text, expected_text);

    // More rows than shown: a note on stderr, not in the results.
    let out = ws.medallion().args(args).output().unwrap();
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "dim_patients v1: the first 3 rows (--limit 0 shows all)\n"
    );
    assert_eq!(rows(&ws, DIM, None).len(), 12);
}

#[test]
fn tables_and_describe_show_versions_sizes_and_consumed_upstreams() {
    let ws = first_run();
    second_run(&ws);
    let tables = json_lines(&ws.run_ok(&["tables", "--format", "json"]));
    let names: Vec<&str> = tables
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(names, TABLES);
    for table in &tables {
        let name = table["table"].as_str().unwrap();
        assert_eq!(table["version"], json!(ws.version(name).unwrap()), "{name}");
        assert_eq!(table["rows"], json!(rows(&ws, name, None).len()), "{name}");
        assert!(table["files"].as_i64().unwrap() >= 1, "{name}");
        assert!(table["bytes"].as_i64().unwrap() > 0, "{name}");
        assert!(
            table["last_commit"].as_str().unwrap().ends_with('Z'),
            "{name}"
        );
    }
    let text = ws.run_ok(&["tables"]);
    let widths: BTreeSet<usize> = text.lines().map(str::len).collect();
    assert_eq!(widths.len(), 1, "aligned: {text}");
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("| table                 | version | rows |")
    );

    // describe, as CSV: columns, then the details, with what silver consumed.
    let csv = ws.run_ok(&["describe", SILVER, "--format", "csv"]);
    let location = ws
        .warehouse()
        .join("healthcare_dlh.db/fact_heartrate_silver/");
    let location = url::Url::from_directory_path(std::path::absolute(location).unwrap()).unwrap();
    let filtered: Vec<String> = csv
        .lines()
        .map(|line| {
            let key = line.split(',').next().unwrap();
            match key {
                "Created Time" | "Last Commit" | "Size (bytes)" => format!("{key},<filtered>"),
                _ => line.replace(location.as_str(), "<location>"),
            }
        })
        .collect();
    assert_eq!(
        filtered,
        [
            "col_name,data_type,comment",
            "device_id,integer,not null",
            "mrn,long,not null",
            "datetime,timestamp,not null",
            "date,string,not null",
            "time,string,not null",
            "heartrate,double,not null",
            "patient_name,string,not null",
            "# Detailed Table Information,,",
            "Database,healthcare_dlh,",
            "Table,fact_heartrate_silver,",
            "Description,\"Heart-rate readings, typed and joined with the patient's name\",",
            "Location,<location>,",
            "Provider,delta,",
            "Partition Columns,,",
            "Version,2,",
            "Created Time,<filtered>",
            "Last Commit,<filtered>",
            "Files,2,",
            "Size (bytes),<filtered>",
            &format!(
                "Rows,{},from file statistics",
                rows(&ws, SILVER, None).len()
            ),
            "Min Reader Version,1,",
            "Min Writer Version,4,",
            "Reader Features,,",
            "Writer Features,,",
            "Table Properties,\"[delta.enableChangeDataFeed=true, medallion.timezone=UTC]\",",
            "Consumed,dim_patients v1,txn silver<-dim_patients",
            "Consumed,fact_heartrate_bronze v2,txn silver<-fact_heartrate_bronze",
        ]
    );
    let gold = ws.run_ok(&["describe", GOLD, "--format", "json"]);
    assert!(gold.contains(
        r#"{"col_name":"Consumed","data_type":"fact_heartrate_silver v2","comment":"txn gold<-fact_heartrate_silver"}"#
    ), "{gold}");
    let bronze = ws.run_ok(&["describe", BRONZE, "--no-truncate"]);
    assert!(bronze.contains("| Stream Batch "), "{bronze}");
    assert!(bronze.contains("[delta.appendOnly=true]"), "{bronze}");
}

/// A silver table of several record batches' worth of rows (DataFusion's are 8,192), written
/// by the pipeline from generated data.
fn many_batches() -> Workspace {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "20", "--months", "4"]);
    ws.run_ok(&["-q", "pipeline"]);
    ws
}

/// Silver's rows as the in-memory renderer prints them, from the library's own read: what
/// `show` printed before it streamed.
fn rendered(ws: &Workspace, format: Format) -> String {
    let batches = ws.rows(SILVER);
    let rows = Rows::from_batches(&batches[0].schema(), &batches).unwrap();
    rows.render(format, false)
}

/// The lines of `text` after `skip` of them, sorted.
fn sorted_body(text: &str, skip: usize) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().skip(skip).collect();
    lines.sort_unstable();
    lines
}

#[test]
fn show_and_sql_stream_every_row_of_a_table_of_many_batches() {
    let ws = many_batches();
    let json = rendered(&ws, Format::Json);
    let csv = rendered(&ws, Format::Csv);
    let count = json.lines().count();
    assert!(count > 2 * 8192, "{count} rows: a few batches' worth");

    for (format, expected) in [("json", &json), ("csv", &csv)] {
        let header = usize::from(format == "csv");
        for args in [
            vec!["show", SILVER, "--limit", "0", "--format", format],
            vec![
                "sql",
                "SELECT * FROM fact_heartrate_silver",
                "--format",
                format,
            ],
        ] {
            let out = ws.run_ok(&args);
            assert_eq!(out.lines().count(), count + header, "{args:?}");
            // The header (an unordered scan of several files may begin with any row).
            if header == 1 {
                assert_eq!(out.lines().next(), expected.lines().next(), "{args:?}");
            }
            assert!(
                sorted_body(&out, header) == sorted_body(expected, header),
                "{args:?}: not the table's rows"
            );
        }
    }
    // `--json` is `--format json`.
    let out = ws.run_ok(&["--json", "show", SILVER, "--limit", "0"]);
    assert!(sorted_body(&out, 0) == sorted_body(&json, 0));

    // In order: the first and last rows are the table's first and last.
    let key = |line: &str| {
        let row: Value = serde_json::from_str(line).unwrap();
        (
            row["mrn"].as_i64().unwrap(),
            row["datetime"].as_str().unwrap().to_string(),
            row["device_id"].as_i64().unwrap(),
        )
    };
    let mut by_key: Vec<&str> = json.lines().collect();
    by_key.sort_by_key(|line| key(line));
    let order = ["--order-by", "mrn, datetime, device_id"];
    let ordered = ws.run_ok(
        &[
            &["show", SILVER, "--limit", "0", "--format", "json"],
            &order[..],
        ]
        .concat(),
    );
    let lines: Vec<&str> = ordered.lines().collect();
    assert_eq!(lines.len(), count);
    assert_eq!(lines.first(), by_key.first());
    assert_eq!(lines.last(), by_key.last());
    assert_eq!(lines, by_key);
}

#[test]
fn show_limit_gives_exactly_that_many_rows_across_batches() {
    let ws = many_batches();
    let count = rendered(&ws, Format::Json).lines().count();
    let version = ws.version(SILVER).unwrap();
    let order = ["--order-by", "mrn, datetime, device_id"];
    let all = ws.run_ok(
        &[
            &["show", SILVER, "--limit", "0", "--format", "csv"],
            &order[..],
        ]
        .concat(),
    );
    let all: Vec<&str> = all.lines().collect();
    for limit in [1, 8191, 8192, 8193, 10_000, count - 1, count, count + 1] {
        let n = limit.to_string();
        for format in ["json", "csv"] {
            let header = usize::from(format == "csv");
            let args = [
                &["show", SILVER, "--limit", &n, "--format", format],
                &order[..],
            ]
            .concat();
            let out = ws.medallion().args(&args).output().unwrap();
            assert!(out.status.success(), "{args:?}");
            let stdout = String::from_utf8(out.stdout).unwrap();
            assert_eq!(
                stdout.lines().count(),
                limit.min(count) + header,
                "{args:?}"
            );
            if format == "csv" {
                let lines: Vec<&str> = stdout.lines().collect();
                assert_eq!(lines, all[..lines.len()], "{args:?}");
            }
            let note =
                format!("{SILVER} v{version}: the first {limit} rows (--limit 0 shows all)\n");
            let expected = if limit < count { note.as_str() } else { "" };
            assert_eq!(String::from_utf8(out.stderr).unwrap(), expected, "{args:?}");
        }
    }
    // A text table holds the rows it shows: 20 unless --limit says otherwise.
    let text = ws.run_ok(&["show", SILVER]);
    assert_eq!(text.lines().count(), 20 + 4);
}

#[test]
fn show_and_sql_end_quietly_when_stdout_is_closed() {
    // `medallion show fact_heartrate_silver --limit 0 --format csv | head -1`: the reader goes
    // away after one line, with megabytes still to come.
    let ws = many_batches();
    let query = "SELECT * FROM fact_heartrate_silver";
    for args in [
        &["show", SILVER, "--limit", "0", "--format", "csv"][..],
        &["show", SILVER, "--limit", "0", "--format", "json"],
        &["show", SILVER, "--limit", "0"],
        &["sql", query, "--format", "csv"],
        &["--json", "sql", query],
    ] {
        let (first, out) = ws.read_first_line_then_close(args);
        assert!(!first.is_empty(), "{args:?}");
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
}

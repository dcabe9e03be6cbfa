//! One set of conventions across commands (issue 11, items 6, 7 and 9): `0` in a count-like
//! flag is no limit, bronze is reported the same way by `bronze` and `pipeline`, history's
//! metrics are numbers, help lists a command's own options first; `sql` says which tables
//! exist, reads `SHOW TABLES` / `DESCRIBE`, takes a query from a file or stdin and reports a
//! syntax error once with its position; shell completions and man pages come from the binary.

use std::io::Write;
use std::process::Stdio;

use serde_json::Value;

use crate::common::Workspace;

const BRONZE: &str = "fact_heartrate_bronze";
const SILVER: &str = "fact_heartrate_silver";
const GOLD: &str = "fact_heartrate_gold";

/// Three generated months (three bronze commits) with patients and bronze loaded.
fn bronze_loaded() -> Workspace {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "5", "--months", "3"]);
    ws.run_ok(&["-q", "patients"]);
    ws.run_ok(&["-q", "bronze"]);
    ws
}

/// The same, through the whole pipeline.
fn pipeline_run() -> Workspace {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "5", "--months", "3"]);
    ws.run_ok(&["-q", "pipeline"]);
    ws
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

#[test]
fn regression_history_limit_0_lists_every_commit() {
    let ws = bronze_loaded();
    let all = json_lines(&ws.run_ok(&["history", BRONZE, "--format", "json"]));
    assert_eq!(all.len(), 4, "create + three batches");
    let zero = json_lines(&ws.run_ok(&["history", BRONZE, "--limit", "0", "--format", "json"]));
    assert_eq!(zero, all);
    // And `show` agrees: 0 is every row.
    let rows = json_lines(&ws.run_ok(&["show", BRONZE, "--limit", "0", "--format", "json"]));
    let counted = ws.run_ok(&[
        "sql",
        "SELECT count(*) AS n FROM fact_heartrate_bronze",
        "--format",
        "json",
    ]);
    assert_eq!(json_lines(&counted)[0]["n"], rows.len());
}

#[test]
fn regression_max_rows_per_commit_0_is_no_limit() {
    let ws = bronze_loaded();
    // Was refused ("0 is not in 1..18446744073709551615"); 0 is no limit, as for
    // --max-files-per-trigger and --limit: every new bronze row in one silver commit.
    let report = json_lines(&ws.run_ok(&["--json", "silver", "--max-rows-per-commit", "0"]));
    assert_eq!(report[0]["bronze_to"], 3, "{report:?}");
    assert_eq!(ws.version(SILVER), Some(1), "create, then one commit");
    let history = json_lines(&ws.run_ok(&["history", SILVER, "--format", "json"]));
    assert_eq!(history.len(), 2, "{history:?}");
}

#[test]
fn regression_json_bronze_reports_bronze_as_json_pipeline_does() {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "5", "--months", "2"]);
    ws.run_ok(&["-q", "patients"]);
    let lines = json_lines(&ws.run_ok(&["--json", "bronze"]));
    // The Spark-style progress records, one per batch, then the report.
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["batchId"], 0);
    assert_eq!(lines[1]["batchId"], 1);
    let report = &lines[2];
    assert_eq!(report["batches"], 2);
    assert_eq!(report["table"], BRONZE);

    ws.run_ok(&["generate", "--append"]);
    let pipeline = json_lines(&ws.run_ok(&["--json", "pipeline"]));
    assert_eq!(pipeline.len(), 1, "{pipeline:?}");
    let in_pipeline = &pipeline[0]["bronze"];
    assert_eq!(keys(in_pipeline), keys(report));
    assert_eq!(in_pipeline["batches"], 1);
    assert_eq!(in_pipeline["stream_id"], report["stream_id"]);
}

#[test]
fn regression_history_metrics_are_numbers_whatever_wrote_the_commit() {
    let ws = pipeline_run();
    // bronze's stream writes its metrics as Spark does (strings); MERGE and WRITE as numbers.
    for table in [BRONZE, SILVER, GOLD] {
        for commit in json_lines(&ws.run_ok(&["history", table, "--format", "json"])) {
            let Some(metrics) = commit["metrics"].as_object() else {
                continue;
            };
            for (name, value) in metrics {
                assert!(
                    value.is_number(),
                    "{table} v{}: {name} = {value}",
                    commit["version"]
                );
            }
        }
    }
    let latest =
        &json_lines(&ws.run_ok(&["history", BRONZE, "--limit", "1", "--format", "json"]))[0];
    assert!(
        latest["metrics"]["numOutputRows"].as_u64().unwrap() > 0,
        "{latest}"
    );
}

#[test]
fn regression_subcommand_help_lists_its_own_options_before_the_global_ones() {
    let ws = Workspace::new();
    let help = ws.run_ok(&["silver", "--help"]);
    let own = help.find("--max-rows-per-commit").expect("silver's option");
    let timezone = help.find("--timezone").expect("silver's option");
    let heading = help
        .find("Global options:")
        .expect("a heading for the global flags");
    let warehouse = help.find("--warehouse").expect("a global flag");
    assert!(
        own < heading && timezone < heading && heading < warehouse,
        "{help}"
    );
    // The time zone's text was glued to --max-rows-per-commit's.
    let max_rows_help = &help[own..timezone];
    assert!(!max_rows_help.contains("time zone"), "{help}");
    assert!(max_rows_help.contains("0: no"), "{help}");
    // ... and --timezone had lost its own.
    assert!(help[timezone..heading].contains("IANA time zone"), "{help}");
    for command in ["show", "history", "sql", "diff", "bronze"] {
        let help = ws.run_ok(&[command, "--help"]);
        let heading = help
            .find("Global options:")
            .unwrap_or_else(|| panic!("{help}"));
        assert!(
            help.find("--format").or(help.find("--max-files")).unwrap() < heading,
            "{help}"
        );
    }
}

#[test]
fn exit_codes_are_in_the_top_level_help() {
    let help = Workspace::new().run_ok(&["--help"]);
    for line in ["0  done", "1  failed", "2  bad usage", "3  lost a race"] {
        assert!(help.contains(line), "{line}: {help}");
    }
}

/// `medallion sql` with `input` on stdin.
fn sql_stdin(ws: &Workspace, args: &[&str], input: &str) -> std::process::Output {
    let mut child = ws
        .medallion()
        .arg("sql")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("medallion runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn regression_sql_unknown_table_lists_the_tables() {
    let ws = pipeline_run();
    let err = ws.run_err(&["sql", "SELECT * FROM fact_heartrate_gld"], 1);
    // Was: `SQL query failed: Error during planning: table 'datafusion.public.…' not found`.
    assert!(!err.contains("datafusion.public"), "{err}");
    assert!(
        err.starts_with("error: table fact_heartrate_gld does not exist"),
        "{err}"
    );
    assert!(
        err.contains("the tables are: dim_patients, fact_heartrate_bronze"),
        "{err}"
    );
    // Also in a join, by the database's name, and at a version.
    for query in [
        "SELECT * FROM fact_heartrate_gold JOIN nope USING (mrn)",
        "SELECT * FROM healthcare_dlh.nope",
        r#"SELECT * FROM "nope@v1""#,
    ] {
        let err = ws.run_err(&["sql", query], 1);
        assert!(
            err.starts_with("error: table nope does not exist"),
            "{query}: {err}"
        );
        assert!(err.contains("the tables are: "), "{query}: {err}");
    }
    // A table of the warehouse under another schema is a usage error that says how to name it.
    let err = ws.run_err(&["sql", "SELECT * FROM public2.fact_heartrate_gold"], 2);
    assert!(err.contains("healthcare_dlh.<name>"), "{err}");
    // A CTE is no table to look for.
    ws.run_ok(&["sql", "WITH g AS (SELECT 1 AS x) SELECT x FROM g"]);
}

#[test]
fn regression_sql_show_tables_and_describe_work() {
    let ws = pipeline_run();
    let shown = json_lines(&ws.run_ok(&["sql", "SHOW TABLES", "--format", "json"]));
    let listed = json_lines(&ws.run_ok(&["tables", "--format", "json"]));
    let names = |rows: &[Value]| -> Vec<String> {
        rows.iter()
            .map(|r| r["table"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&shown), names(&listed));
    assert!(names(&shown).contains(&GOLD.to_string()));

    let columns = json_lines(&ws.run_ok(&["sql", &format!("DESCRIBE {GOLD}"), "--format", "json"]));
    let described = json_lines(&ws.run_ok(&["describe", GOLD, "--format", "json"]));
    assert_eq!(columns[..], described[..columns.len()]);
    assert_eq!(columns[0]["col_name"], "patient_name");
    assert!(columns.iter().any(|c| c["col_name"] == "sum_heartrate"));
    // By the database's name, at a version, lower-cased as queries are.
    for query in [
        format!("describe healthcare_dlh.{GOLD}"),
        format!(r#"DESC "{GOLD}@v1""#),
        "DESCRIBE FACT_HEARTRATE_GOLD".to_string(),
    ] {
        let rows = json_lines(&ws.run_ok(&["sql", &query, "--format", "json"]));
        assert_eq!(rows, columns, "{query}");
    }
    let err = ws.run_err(&["sql", "DESCRIBE nope"], 1);
    assert!(err.contains("the tables are: "), "{err}");
    let err = ws.run_err(&["sql", &format!(r#"DESCRIBE "{GOLD}@v99""#)], 1);
    assert!(err.contains("has no version 99"), "{err}");
}

#[test]
fn regression_sql_reads_the_query_from_a_file_or_stdin() {
    let ws = pipeline_run();
    let query = format!("SELECT count(*) AS n\nFROM {GOLD}\n");
    let expected = ws.run_ok(&["sql", &query, "--format", "json"]);
    let file = ws.dir.path().join("query.sql");
    std::fs::write(&file, &query).unwrap();
    let file = file.to_str().unwrap();
    assert_eq!(
        ws.run_ok(&["sql", "-f", file, "--format", "json"]),
        expected
    );
    assert_eq!(
        ws.run_ok(&["sql", "--file", file, "--format", "json"]),
        expected
    );
    for args in [
        &["-", "--format", "json"][..],
        &["-f", "-", "--format", "json"][..],
    ] {
        let out = sql_stdin(&ws, args, &query);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{args:?}");
    }
    // Still read-only, whatever the query comes from.
    let out = sql_stdin(
        &ws,
        &["-"],
        &format!("INSERT INTO {GOLD} SELECT * FROM {GOLD}"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("INSERT INTO is refused"));

    let err = ws.run_err(&["sql", "-f", "no/such/query.sql"], 2);
    assert!(err.contains("no/such/query.sql"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    ws.run_err(&["sql", "SELECT 1", "-f", file], 2);
    ws.run_err(&["sql"], 2);
}

#[test]
fn regression_sql_syntax_error_is_one_line_with_its_position() {
    let ws = Workspace::new();
    let err = ws.run_err(&["sql", "SELECT * FRM fact_heartrate_gold"], 2);
    // Was (exit 1): `SQL query failed: SQL error: ParserError("…"): sql parser error: …`.
    assert_eq!(
        err,
        "error: SQL syntax error at line 1, column 10: Expected: end of statement, found: FRM\n"
    );
    let out = sql_stdin(&ws, &["-"], "SELECT\n  count(*\nFROM t");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: SQL syntax error at line 3, column 1: Expected: ), found: FROM\n"
    );
}

const COMMANDS: [&str; 25] = [
    "generate",
    "patients",
    "bronze",
    "silver",
    "gold",
    "pipeline",
    "tables",
    "describe",
    "history",
    "show",
    "sql",
    "diff",
    "restore",
    "optimize",
    "vacuum",
    "maintain",
    "status",
    "files",
    "init",
    "events",
    "quality",
    "report",
    "check-store",
    "completions",
    "man",
];

#[test]
fn completions_for_each_shell_name_the_commands() {
    let ws = Workspace::new();
    let bash = ws.run_ok(&["completions", "bash"]);
    assert!(bash.contains("complete -F _medallion"), "{bash}");
    for command in COMMANDS.iter().filter(|c| **c != "man") {
        assert!(bash.contains(command), "bash: {command}");
    }
    assert!(bash.contains("--max-rows-per-commit") && bash.contains("--warehouse"));
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let script = ws.run_ok(&["completions", shell]);
        assert!(
            script.contains("pipeline") && script.contains("history"),
            "{shell}"
        );
    }
    let err = ws.run_err(&["completions", "tcsh"], 2);
    assert!(err.contains("bash"), "{err}");
}

#[test]
fn man_writes_a_page_per_command_with_its_name_and_sections() {
    let ws = Workspace::new();
    let dir = ws.dir.path().join("man");
    let out = ws.run_ok(&["man", "--out", dir.to_str().unwrap()]);
    assert!(out.starts_with("man: 25 pages in "), "{out}");
    let page = std::fs::read_to_string(dir.join("medallion.1")).unwrap();
    assert!(page.contains(".TH medallion 1 "), "{page}");
    for section in [
        ".SH NAME\nmedallion \\- A bronze/silver/gold lakehouse pipeline",
        ".SH SYNOPSIS",
        ".SH DESCRIPTION",
        ".SH OPTIONS",
        ".SH \"GLOBAL OPTIONS\"",
        ".SH SUBCOMMANDS",
        ".SH EXAMPLES\n.nf\nExamples:",
        "Exit status:\n  0  done",
        ".SH VERSION",
    ] {
        assert!(page.contains(section), "{section}: {page}");
    }
    assert!(!page.contains(".SH EXTRA"), "{page}");
    // One page per command but `man` itself (hidden), each named medallion-<command>.1.
    let mut written: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    let mut expected: Vec<String> = COMMANDS
        .iter()
        .filter(|c| **c != "man")
        .map(|c| format!("medallion-{c}.1"))
        .chain(["medallion.1".to_string()])
        .collect();
    expected.sort();
    assert_eq!(written, expected);
    let silver = std::fs::read_to_string(dir.join("medallion-silver.1")).unwrap();
    assert!(silver.contains(".TH medallion-silver 1 "), "{silver}");
    assert!(
        silver.contains("\\-\\-max\\-rows\\-per\\-commit"),
        "{silver}"
    );
    assert!(silver.contains(&format!("\"medallion {}\"", env!("CARGO_PKG_VERSION"))));
}

//! One set of conventions across commands (issue 11, items 6, 7 and 9): `0` in a count-like
//! flag is no limit, bronze is reported the same way by `bronze` and `pipeline`, history's
//! metrics are numbers, help lists a command's own options first; `sql` says which tables
//! exist, reads `SHOW TABLES` / `DESCRIBE`, takes a query from a file or stdin and reports a
//! syntax error once with its position; shell completions and man pages come from the binary.

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

//! Expectations (`medallion.toml`) and the event log (`pipeline_events`): each action on
//! fixture data with exact tables and counts, `fail` committing nothing, a drop of the lab's
//! device faults equal to the computation done here, a dropped re-delivery, bad rules files,
//! `init`, and the events of runs that succeeded, failed and committed nothing.

use serde_json::Value;

use crate::common::Workspace;
use crate::silver_gold::{assert_matches, expected_where, fixture, reading};

const SILVER: &str = "fact_heartrate_silver";
const QUARANTINE: &str = "fact_heartrate_silver_quarantine";
const GOLD: &str = "fact_heartrate_gold";
const DAILY: &str = "fact_heartrate_daily";
const EVENTS: &str = "pipeline_events";

/// A rules file with one rule per (table, name, check, action), in the workspace's folder;
/// returns its path.
fn rules(ws: &Workspace, list: &[(&str, &str, &str, &str)]) -> String {
    let text: String = list
        .iter()
        .map(|(table, name, check, action)| {
            format!(
                "[[expectation]]\ntable = {table:?}\nname = {name:?}\ncheck = {check:?}\n\
                 action = {action:?}\n\n"
            )
        })
        .collect();
    let path = ws.dir.path().join("rules.toml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// The rows a `--format json` listing printed (one object per line).
fn json_rows(out: &str) -> Vec<Value> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// (check, action, version, passed, failed) of `medallion quality TABLE`.
fn quality(ws: &Workspace, table: &str) -> Vec<(String, String, Value, u64, u64)> {
    json_rows(&ws.run_ok(&["quality", table, "--format", "json"]))
        .iter()
        .map(|r| {
            (
                r["check"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
                r["version"].clone(),
                r["passed"].as_u64().unwrap(),
                r["failed"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn heart_rates(ws: &Workspace) -> Vec<String> {
    let mut rates: Vec<String> = ws
        .sorted_rows(SILVER)
        .iter()
        .filter(|l| l.starts_with("| ") && !l.contains("device_id"))
        .map(|l| l.split('|').nth(6).unwrap().trim().to_string())
        .collect();
    rates.sort();
    rates
}

#[test]
fn without_a_rules_file_nothing_changes_and_a_warn_rule_keeps_and_counts() {
    let ws = fixture();
    ws.run_ok(&["pipeline"]);
    assert_eq!(heart_rates(&ws), ["-100.0", "70.5", "71.25", "90.0"]);

    let ws = fixture();
    let config = rules(&ws, &[(SILVER, "no_fault", "heartrate >= 0", "warn")]);
    let out = ws.run_ok(&["--config", &config, "pipeline"]);
    assert!(
        out.contains("expectations: no_fault 3/4 passed (0 dropped"),
        "{out}"
    );
    assert_eq!(heart_rates(&ws), ["-100.0", "70.5", "71.25", "90.0"]);
    let silver_version = serde_json::json!(ws.version(SILVER).unwrap());
    let checks = quality(&ws, SILVER);
    assert!(
        checks.contains(&(
            "no_fault".into(),
            "warn".into(),
            silver_version.clone(),
            3,
            1
        )),
        "{checks:?}"
    );
    // The built-in checks beside it: 6 rows read, 1 refused, 1 waiting for its patient.
    assert!(
        checks.contains(&(
            "typed".into(),
            "built-in".into(),
            silver_version.clone(),
            5,
            1
        )),
        "{checks:?}"
    );
    assert!(
        checks.contains(&(
            "patient_known".into(),
            "built-in".into(),
            silver_version,
            4,
            1
        )),
        "{checks:?}"
    );
    assert!(
        checks.contains(&("no_fault".into(), "warn".into(), "overall".into(), 3, 1)),
        "{checks:?}"
    );
    let bronze = quality(&ws, "fact_heartrate_bronze");
    assert!(
        bronze
            .iter()
            .any(|c| c.0 == "readable" && c.3 == 6 && c.4 == 0),
        "{bronze:?}"
    );
}

#[test]
fn drop_and_quarantine_leave_the_row_out_and_keep_it_in_the_quarantine_with_the_rule() {
    for action in ["drop", "quarantine"] {
        let ws = fixture();
        let config = rules(&ws, &[(SILVER, "no_fault", "heartrate >= 0", action)]);
        let out = ws.run_ok(&["--config", &config, "pipeline"]);
        assert!(out.contains("(1 dropped"), "{action}: {out}");
        assert_eq!(heart_rates(&ws), ["70.5", "71.25", "90.0"], "{action}");
        let quarantine = ws.sorted_rows(QUARANTINE).join("\n");
        let reason = format!("expectation no_fault ({action}): `heartrate >= 0` is not true");
        assert!(quarantine.contains(&reason), "{action}: {quarantine}");
        assert!(quarantine.contains("-100.0"), "{action}: {quarantine}");
        // Two rows: the one that cannot be typed and the one the rule took out.
        assert_eq!(
            ws.rows(QUARANTINE)
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>(),
            2
        );
        let gold = ws.sorted_rows(GOLD).join("\n");
        assert!(
            gold.contains(
                "| Smith, J.    | 90            | 1     | 20000002 | 90.0          | 90.0"
            ),
            "{action}: {gold}"
        );
        // Nothing new: no commit, and the quarantine holds the row once.
        let versions = [SILVER, QUARANTINE, GOLD].map(|t| ws.version(t));
        ws.run_ok(&["--config", &config, "pipeline"]);
        assert_eq!([SILVER, QUARANTINE, GOLD].map(|t| ws.version(t)), versions);
        // A full refresh under the same rules gives the same rows, and no second copy.
        ws.run_ok(&["--config", &config, "silver", "--full-refresh"]);
        assert_eq!(heart_rates(&ws), ["70.5", "71.25", "90.0"], "{action}");
        assert_eq!(
            ws.rows(QUARANTINE)
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>(),
            2
        );
    }
}

#[test]
fn a_fail_rule_commits_nothing_and_names_the_rule_the_count_and_a_row() {
    let ws = fixture();
    let config = rules(&ws, &[(SILVER, "no_fault", "heartrate >= 0", "fail")]);
    ws.run_ok(&["patients"]);
    ws.run_ok(&["bronze"]);
    let err = ws.run_err(&["--config", &config, "silver"], 1);
    for needle in [
        "expectation no_fault failed",
        "1 of 4 rows",
        "-100",
        "nothing of this refresh",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    for table in [
        SILVER,
        QUARANTINE,
        "fact_heartrate_silver_waiting",
        GOLD,
        DAILY,
    ] {
        assert_eq!(ws.version(table), None, "{table}");
    }
    // The failed run is in the event log, with its error.
    let events = json_rows(&ws.run_ok(&["events", "--job", "silver", "--format", "json"]));
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap(),
                e["level"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("run_start", "INFO"),
            ("error", "ERROR"),
            ("run_end", "ERROR")
        ]
    );
    assert!(events[1]["message"].as_str().unwrap().contains("no_fault"));

    // Gold's rules fail before gold or daily is written.
    ws.run_ok(&["silver"]);
    let config = rules(&ws, &[(GOLD, "positive", "avg_heartrate > 0", "fail")]);
    let err = ws.run_err(&["--config", &config, "gold"], 1);
    assert!(
        err.contains("expectation positive failed: 1 of 2 rows"),
        "{err}"
    );
    assert_eq!((ws.version(GOLD), ws.version(DAILY)), (None, None));
    let config = rules(
        &ws,
        &[
            (DAILY, "many", "count > 2", "fail"),
            (GOLD, "ok", "count > 0", "warn"),
        ],
    );
    assert!(
        ws.run_err(&["--config", &config, "gold"], 1)
            .contains("many")
    );
    assert_eq!((ws.version(GOLD), ws.version(DAILY)), (None, None));
    let config = rules(&ws, &[(DAILY, "many", "count > 1", "warn")]);
    ws.run_ok(&["--config", &config, "gold"]);
    assert!(quality(&ws, DAILY).contains(&("many".into(), "warn".into(), "overall".into(), 2, 0)));
}

#[test]
fn regression_a_redelivery_that_a_rule_drops_deletes_the_earlier_delivery() {
    // The last delivery wins even when a rule takes it out: silver must not keep the stale
    // earlier value (as a full refresh under the same rules would not).
    let ws = fixture();
    let config = rules(&ws, &[(SILVER, "no_fault", "heartrate >= 0", "drop")]);
    ws.run_ok(&["--config", &config, "pipeline"]);
    ws.write(
        "healthcare/streaming/tracker/02.json",
        &format!("[{}]", reading("1", "-1", "10000001", "1601510459")),
    );
    let out = ws.run_ok(&["--config", &config, "pipeline"]);
    assert!(out.contains("1 earlier deliveries deleted"), "{out}");
    assert_eq!(heart_rates(&ws), ["71.25", "90.0"]);
    let gold = ws.sorted_rows(GOLD).join("\n");
    assert!(
        gold.contains("| Ada Lovelace | 72            | 1     |"),
        "{gold}"
    );
    ws.run_ok(&["--config", &config, "silver", "--full-refresh"]);
    assert_eq!(heart_rates(&ws), ["71.25", "90.0"]);
}

#[test]
fn dropping_the_device_faults_of_lab_data_gives_the_independent_gold_without_them() {
    let ws = Workspace::new();
    ws.run_ok(&[
        "generate",
        "--patients",
        "8",
        "--months",
        "3",
        "--seed",
        "5",
    ]);
    let config = rules(&ws, &[(SILVER, "no_fault", "heartrate >= 0", "drop")]);
    // Several slices, so that counts add up across commits.
    ws.run_ok(&[
        "--config",
        &config,
        "pipeline",
        "--max-rows-per-commit",
        "4000",
    ]);
    let want = expected_where(&ws, |rate| rate >= 0.0);
    assert_matches(&ws, &want, "drop of negatives");
    let overall = quality(&ws, SILVER)
        .into_iter()
        .find(|c| c.0 == "no_fault" && c.2 == "overall")
        .unwrap();
    let quarantined = ws
        .sorted_rows(QUARANTINE)
        .iter()
        .filter(|l| l.contains("expectation no_fault (drop)"))
        .count() as u64;
    assert!(overall.4 > 0, "{overall:?}");
    assert_eq!(
        overall.4, quarantined,
        "every dropped row is in the quarantine"
    );
    assert_eq!(overall.3, want_rows(&want), "{overall:?}");
}

fn want_rows(want: &crate::silver_gold::Expected) -> u64 {
    want.silver.len() as u64
}

#[test]
fn a_bad_rules_file_is_a_usage_error_naming_the_line_before_any_work() {
    let ws = fixture();
    let path = ws.dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "# rules\n\n[[expectation]]\ntable = \"fact_heartrate_silver\"\nname = \"x\"\n\
         check = \"heartrat > 0\"\naction = \"warn\"\n",
    )
    .unwrap();
    let config = path.to_string_lossy().into_owned();
    let err = ws.run_err(&["--config", &config, "pipeline"], 2);
    assert!(err.contains(&format!("{config}:3:")), "{err}");
    assert!(err.contains("heartrat"), "{err}");
    assert_eq!(ws.version("dim_patients"), None);
    let missing = ws.dir.path().join("none.toml");
    let err = ws.run_err(&["--config", missing.to_str().unwrap(), "silver"], 2);
    assert!(err.contains("does not exist"), "{err}");
    std::fs::write(&path, "[[expectation]]\ntable = \"fact_heartrate_gold\"\nname = \"x\"\ncheck = \"count > 1\"\naction = \"drop\"\n").unwrap();
    let err = ws.run_err(&["--config", &config, "gold"], 2);
    assert!(
        err.contains(":1:") && err.contains("warn or fail, not drop"),
        "{err}"
    );
}

#[test]
fn init_writes_an_example_that_the_pipeline_uses_and_keeps_an_existing_file() {
    let ws = fixture();
    let path = ws.dir.path().join("medallion.toml");
    let config = path.to_string_lossy().into_owned();
    let out = ws.run_ok(&["--config", &config, "init"]);
    assert!(out.contains("4 rules"), "{out}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("negative heart rate"), "{text}");
    ws.run_err(&["--config", &config, "init"], 2);
    std::fs::write(&path, "# mine\n").unwrap();
    ws.run_ok(&["--config", &config, "init", "--force"]);
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("[[expectation]]")
    );
    // The example's rules from the working directory, without --config.
    let out = ws
        .medallion()
        .current_dir(ws.dir.path())
        .args(["pipeline"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("no_device_fault 3/4 passed"), "{stdout}");
    assert!(quality(&ws, GOLD).iter().any(|c| c.0 == "enough_readings"));
}

#[test]
fn every_run_leaves_its_events_and_the_log_is_an_ordinary_table() {
    let ws = fixture();
    ws.run_ok(&["pipeline"]);
    // A run that committed nothing: its start, its flow (no version written) and its end.
    ws.run_ok(&["silver"]);
    let events = json_rows(&ws.run_ok(&["events", "--job", "silver", "--format", "json"]));
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["run_start", "flow_progress", "run_end"],
        "{events:?}"
    );
    assert_eq!(events[1]["version_written"], Value::Null);
    let run: Vec<&str> = events
        .iter()
        .map(|e| e["run_id"].as_str().unwrap())
        .collect();
    assert!(run.iter().all(|r| *r == run[0]));

    // The pipeline's run: every layer's flow with what it read and wrote.
    let events = json_rows(&ws.run_ok(&["events", "--job", "pipeline", "--format", "json"]));
    let flows: Vec<(&str, &Value)> = events
        .iter()
        .filter(|e| e["event_type"] == "flow_progress" && e["level"] == "METRICS")
        .map(|e| (e["table_name"].as_str().unwrap(), &e["version_written"]))
        .collect();
    let tables: Vec<&str> = flows.iter().map(|f| f.0).collect();
    assert_eq!(
        tables,
        [
            "fact_heartrate_bronze",
            "dim_patients",
            "fact_heartrate_bronze",
            SILVER,
            GOLD
        ],
        "{events:?}"
    );
    let silver = events.iter().find(|e| e["table_name"] == SILVER).unwrap();
    let upstream: Value =
        serde_json::from_str(silver["upstream_versions"].as_str().unwrap()).unwrap();
    assert_eq!(
        upstream["fact_heartrate_bronze"],
        ws.version("fact_heartrate_bronze").unwrap(),
        "{silver}"
    );
    assert_eq!(
        upstream["dim_patients"],
        ws.version("dim_patients").unwrap(),
        "{silver}"
    );
    assert_eq!(
        silver["version_written"],
        ws.version(SILVER).unwrap(),
        "{silver}"
    );
    // --level WARN: the warnings (a refused row, a waiting one) and no INFO.
    let warnings = json_rows(&ws.run_ok(&["events", "--level", "warn", "--format", "json"]));
    assert!(!warnings.is_empty());
    assert!(
        warnings
            .iter()
            .all(|e| e["level"] == "WARN" || e["level"] == "ERROR")
    );
    assert!(
        json_rows(&ws.run_ok(&["events", "--since", "9999-01-01", "--format", "json"])).is_empty()
    );
    let all = json_rows(&ws.run_ok(&["events", "--format", "json"]));
    let since = json_rows(&ws.run_ok(&["events", "--since", "1970-01-01", "--format", "json"]));
    assert_eq!(all.len(), since.len());

    // An ordinary Delta table: sql reads it, and `tables` lists it.
    let out = ws.run_ok(&[
        "sql",
        "SELECT job, count(*) AS n FROM pipeline_events WHERE event_type = 'run_end' GROUP BY job ORDER BY job",
        "--format",
        "csv",
    ]);
    assert_eq!(out.trim(), "job,n\npipeline,1\nsilver,1", "{out}");
    assert!(ws.run_ok(&["tables"]).contains(EVENTS));
}

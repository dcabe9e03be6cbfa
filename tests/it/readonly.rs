//! The read side stays read-only (issue 10, item 5). `medallion sql` ran whatever DataFusion
//! accepts: `COPY … TO` wrote files anywhere, `INSERT` committed to gold, a `COPY` into
//! `_delta_log` forged a commit. `show --where/--order-by` were pasted into SQL text, so a
//! `UNION` added rows and a `--` hid the limit. Each test checks the exit code (2, a usage
//! error), the message, and that nothing on disk changed.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::common::{Workspace, folder_bytes};

const GOLD: &str = "fact_heartrate_gold";
const DIM: &str = "dim_patients";
const READ_ONLY: &str = "error: medallion sql runs read-only queries";

/// A generated month through the pipeline: 12 patients.
fn warehouse() -> Workspace {
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "12", "--months", "1"]);
    ws.run_ok(&["-q", "pipeline"]);
    ws
}

fn assert_same_files(
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
    what: &str,
) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "{what}: files added or removed"
    );
    for (path, bytes) in before {
        assert!(after[path] == *bytes, "{what}: {path} changed");
    }
}

/// `medallion sql QUERY` is refused as a usage error naming `kind`, and the warehouse and
/// the workspace (where a `COPY` could write) are byte for byte as they were.
fn refused(ws: &Workspace, query: &str, kind: &str) -> String {
    let before = folder_bytes(ws.dir.path());
    let err = ws.run_err(&["sql", query], 2);
    assert!(err.starts_with(READ_ONLY), "{query}: {err}");
    assert!(
        err.contains(kind),
        "{query}: the refusal names {kind}: {err}"
    );
    assert_same_files(&before, &folder_bytes(ws.dir.path()), query);
    err
}

fn sql_path(path: &Path) -> String {
    path.display().to_string().replace('\'', "''")
}

/// Parse one JSON object per line.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// `show TABLE ARGS --format json`, every row unless ARGS limit them.
fn show(ws: &Workspace, table: &str, args: &[&str]) -> Vec<Value> {
    let all = [&["show", table, "--format", "json"], args].concat();
    json_lines(&ws.run_ok(&all))
}

fn mrns(rows: &[Value]) -> Vec<i64> {
    rows.iter()
        .map(|row| row["mrn"].as_i64().unwrap())
        .collect()
}

#[test]
fn sql_refuses_copy_to_a_file() {
    let ws = warehouse();
    let target = ws.dir.path().join("out/deep/gold.csv");
    refused(
        &ws,
        &format!(
            "COPY (SELECT * FROM {GOLD}) TO '{}' STORED AS CSV",
            sql_path(&target)
        ),
        "COPY is refused",
    );
    assert!(!ws.dir.path().join("out").exists(), "no folder was created");

    // An existing file is not overwritten either.
    let victim = ws.dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    refused(
        &ws,
        &format!("COPY (VALUES (1)) TO '{}' STORED AS CSV", sql_path(&victim)),
        "COPY",
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");

    let folder = ws.dir.path().join("parquet_out");
    refused(
        &ws,
        &format!("COPY {GOLD} TO '{}/' STORED AS PARQUET", sql_path(&folder)),
        "COPY",
    );
    assert!(!folder.exists());
}

#[test]
fn sql_refuses_insert_into_a_table() {
    let ws = warehouse();
    let version = ws.version(GOLD).unwrap();
    let rows = ws.sorted_rows(GOLD);
    for query in [
        format!("INSERT INTO {GOLD} SELECT * FROM {GOLD}"),
        format!("insert into healthcare_dlh.{GOLD} select * from {GOLD} limit 1"),
        format!("INSERT OVERWRITE {GOLD} SELECT * FROM {GOLD} WHERE false"),
        format!("DELETE FROM {GOLD}"),
        format!("UPDATE {GOLD} SET mrn = 0"),
        format!("TRUNCATE TABLE {GOLD}"),
    ] {
        let err = refused(&ws, &query, " is refused");
        assert_eq!(ws.version(GOLD), Some(version), "{query}: {err}");
    }
    let err = refused(
        &ws,
        &format!("INSERT INTO {GOLD} SELECT * FROM {GOLD}"),
        "INSERT",
    );
    assert!(err.ends_with("INSERT INTO is refused\n"), "{err}");
    assert_eq!(ws.sorted_rows(GOLD), rows);
}

#[test]
fn sql_refuses_forging_a_commit_in_the_delta_log() {
    let ws = warehouse();
    let version = ws.version(GOLD).unwrap();
    let rows = ws.sorted_rows(GOLD);
    let next = ws
        .warehouse()
        .join("healthcare_dlh.db")
        .join(GOLD)
        .join("_delta_log")
        .join(format!("{:020}.json", version + 1));
    let forged = format!(
        "COPY (SELECT * FROM {GOLD} WHERE false) TO '{}' STORED AS JSON",
        sql_path(&next)
    );
    refused(&ws, &forged, "COPY is refused");
    refused(
        &ws,
        &format!("EXPLAIN ANALYZE {forged}"),
        "EXPLAIN ANALYZE COPY is refused",
    );
    refused(&ws, &format!("EXPLAIN {forged}"), "EXPLAIN COPY is refused");
    assert!(!next.exists(), "no commit file was written");
    assert_eq!(ws.version(GOLD), Some(version));
    assert_eq!(ws.sorted_rows(GOLD), rows);
}

#[test]
fn sql_refuses_ddl_and_set() {
    let ws = warehouse();
    let external = ws.dir.path().join("external");
    for (query, kind) in [
        (
            format!(
                "CREATE EXTERNAL TABLE ext (a INT) STORED AS CSV LOCATION '{}/'",
                sql_path(&external)
            ),
            "CREATE EXTERNAL TABLE is refused",
        ),
        (
            format!("CREATE TABLE copy_of_gold AS SELECT * FROM {GOLD}"),
            "CREATE TABLE … AS is refused",
        ),
        (
            "CREATE TABLE t (a INT)".to_string(),
            "CREATE TABLE is refused",
        ),
        (
            format!("CREATE VIEW v AS SELECT * FROM {GOLD}"),
            "CREATE VIEW is refused",
        ),
        (format!("DROP TABLE {GOLD}"), "DROP TABLE is refused"),
        (
            "SET datafusion.execution.batch_size = 1".to_string(),
            "SET is refused",
        ),
        (
            format!("SELECT * INTO copy_of_gold FROM {GOLD}"),
            "SELECT … INTO is refused",
        ),
        // `DESCRIBE <table>` and `SHOW TABLES` run (tests/it/conventions.rs); their other forms
        // do not.
        (
            format!("DESCRIBE EXTENDED {GOLD}"),
            "DESCRIBE EXTENDED is refused",
        ),
        (
            "SHOW TABLES LIKE 'fact%'".to_string(),
            "SHOW TABLES LIKE is refused",
        ),
        (
            "SHOW COLUMNS FROM t".to_string(),
            "SHOW COLUMNS FROM is refused",
        ),
    ] {
        refused(&ws, &query, kind);
    }
    assert!(!external.exists());

    // Queries still run: SELECT, WITH … SELECT, VALUES, EXPLAIN of a query.
    let gold_rows = ws.rows(GOLD).iter().map(|b| b.num_rows()).sum::<usize>() as i64;
    let n =
        |query: &str| json_lines(&ws.run_ok(&["sql", query, "--format", "json"]))[0]["n"].clone();
    assert_eq!(n(&format!("SELECT count(*) AS n FROM {GOLD}")), gold_rows);
    assert_eq!(
        n(&format!(
            "WITH g AS (SELECT * FROM {GOLD}) SELECT count(*) AS n FROM g"
        )),
        gold_rows
    );
    let values = json_lines(&ws.run_ok(&["sql", "VALUES (7, 'x'), (8, 'y')", "--format", "json"]));
    assert_eq!(values.len(), 2);
    assert_eq!(values[0]["column1"], 7);
    let plan = ws.run_ok(&["sql", &format!("EXPLAIN SELECT count(*) FROM {GOLD}")]);
    assert!(plan.contains("logical_plan"), "{plan}");
}

#[test]
fn sql_refuses_a_write_after_a_query_in_one_string() {
    let ws = warehouse();
    let target = ws.dir.path().join("after.csv");
    let err = refused(
        &ws,
        &format!(
            "SELECT count(*) FROM {GOLD}; COPY (SELECT * FROM {GOLD}) TO '{}'",
            sql_path(&target)
        ),
        "the text holds 2 statements (a query, COPY); nothing was run",
    );
    assert!(err.contains("one at a time"), "{err}");
    assert!(!target.exists());
    let version = ws.version(GOLD);
    refused(
        &ws,
        &format!("SELECT 1; INSERT INTO {GOLD} SELECT * FROM {GOLD}; SELECT 2"),
        "3 statements (a query, INSERT INTO, a query)",
    );
    assert_eq!(ws.version(GOLD), version);
    // A trailing `;` is no second statement.
    ws.run_ok(&["sql", "SELECT 1;"]);
}

#[test]
fn show_where_cannot_union_other_rows() {
    let ws = warehouse();
    let all = show(&ws, DIM, &["--limit", "0"]);
    assert_eq!(all.len(), 12);
    for filter in [
        format!("1=1 UNION ALL SELECT * FROM {DIM}"),
        format!("mrn > 0 union select * from {DIM}"),
        "1=1; SELECT 1".to_string(),
        "1=1 ORDER BY mrn".to_string(),
        "1=1 LIMIT 100".to_string(),
    ] {
        let err = ws.run_err(&["show", DIM, "--limit", "0", "--where", &filter], 2);
        assert!(
            err.starts_with("error: --where takes one SQL condition"),
            "{filter}: {err}"
        );
        assert!(err.contains("after the end of it"), "{filter}: {err}");
    }
    // One condition still filters.
    let some = show(&ws, DIM, &["--limit", "0", "--where", "mrn % 2 = 0"]);
    assert!(!some.is_empty() && some.len() < all.len());
    assert!(mrns(&some).iter().all(|mrn| mrn % 2 == 0));
}

#[test]
fn show_where_comment_cannot_drop_the_limit() {
    let ws = warehouse();
    for filter in ["1=1 --", "1=1 -- ", "1=1 /* hide */", "mrn > 0 --\n"] {
        let err = ws.run_err(&["show", DIM, "--limit", "3", "--where", filter], 2);
        assert!(
            err.starts_with("error: --where takes one SQL condition"),
            "{filter:?}: {err}"
        );
        assert!(err.contains("comment"), "{filter:?}: {err}");
    }
    let err = ws.run_err(&["show", DIM, "--limit", "3", "--order-by", "mrn --"], 2);
    assert!(err.starts_with("error: --order-by takes"), "{err}");
    // The limit holds with a filter.
    assert_eq!(
        show(&ws, DIM, &["--limit", "3", "--where", "mrn > 0"]).len(),
        3
    );
}

#[test]
fn show_where_cannot_read_other_tables() {
    let ws = warehouse();
    for filter in [
        format!("mrn IN (SELECT mrn FROM {GOLD})"),
        format!("mrn IN (SELECT mrn FROM {DIM})"),
        format!("EXISTS (SELECT 1 FROM {GOLD})"),
        format!("mrn = (SELECT max(mrn) FROM {DIM})"),
    ] {
        let err = ws.run_err(&["show", DIM, "--where", &filter], 2);
        assert!(
            err.starts_with("error: --where takes one SQL condition"),
            "{filter}: {err}"
        );
        assert!(err.contains("subquery"), "{filter}: {err}");
    }
    let err = ws.run_err(
        &[
            "show",
            DIM,
            "--order-by",
            &format!("(SELECT max(mrn) FROM {GOLD})"),
        ],
        2,
    );
    assert!(
        err.contains("--order-by") && err.contains("subquery"),
        "{err}"
    );
}

#[test]
fn show_order_by_accepts_a_list_with_directions() {
    let ws = warehouse();
    let all = show(&ws, DIM, &["--limit", "0"]);
    let name = |row: &Value| row["name"].as_str().unwrap().to_string();

    let mut expected = mrns(&all);
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(
        mrns(&show(&ws, DIM, &["--limit", "0", "--order-by", "mrn DESC"])),
        expected
    );

    let mut by_name: Vec<(String, i64)> = all
        .iter()
        .map(|row| (name(row), row["mrn"].as_i64().unwrap()))
        .collect();
    by_name.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let names = |rows: Vec<Value>| -> Vec<(String, i64)> {
        rows.iter()
            .map(|row| (name(row), row["mrn"].as_i64().unwrap()))
            .collect()
    };
    for list in [
        "name DESC NULLS LAST, mrn ASC",
        "name desc, mrn",
        "2 DESC, 1",
        "name DESC NULLS FIRST , mrn + 0",
    ] {
        assert_eq!(
            names(show(&ws, DIM, &["--limit", "0", "--order-by", list])),
            by_name,
            "{list}"
        );
    }
    // The limit applies after the order.
    assert_eq!(
        mrns(&show(&ws, DIM, &["--limit", "2", "--order-by", "mrn DESC"])),
        expected[..2]
    );

    // Nothing after the list, and a position must be a column.
    for list in [
        "mrn DESC --",
        "mrn LIMIT 100",
        "mrn; DROP TABLE dim_patients",
        "mrn DESC UNION ALL SELECT * FROM dim_patients",
    ] {
        let err = ws.run_err(&["show", DIM, "--limit", "2", "--order-by", list], 2);
        assert!(err.starts_with("error: --order-by takes"), "{list}: {err}");
    }
    let err = ws.run_err(&["show", DIM, "--order-by", "3"], 2);
    assert!(
        err.contains(
            "--order-by 3: a number is a column's position, and dim_patients has columns 1 to 2"
        ),
        "{err}"
    );
}

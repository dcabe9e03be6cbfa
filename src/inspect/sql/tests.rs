//! The read-only guard: what runs, what is refused and how it is said.

use super::*;

use deltalake::arrow::array::{Int64Array, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::datafusion::datasource::MemTable;

#[test]
fn versions_are_found_by_whole_table_name() {
    let q = r#"SELECT * FROM "gold@v3" JOIN "gold@v12" USING (mrn) JOIN "xgold@v4" USING (mrn)
               JOIN healthcare_dlh."gold@v3" USING (mrn)"#;
    assert_eq!(versions_named(q, "gold"), vec![3, 12]);
    assert_eq!(versions_named("SELECT 1", "gold"), Vec::<u64>::new());
}

fn refusal(query: &str) -> Option<String> {
    match check_read_only(&SessionContext::new(), query) {
        Ok(_) => None,
        Err(Error::Usage(message)) => Some(message),
        Err(other) => panic!("{query}: {}", other.chain()),
    }
}

#[test]
fn only_queries_pass_and_the_rest_is_refused_by_name() {
    for query in [
        "SELECT 1",
        "WITH t AS (SELECT 1 AS x) SELECT x FROM t",
        "VALUES (1, 'a'), (2, 'b')",
        "SELECT 1 UNION ALL SELECT 2",
        "EXPLAIN SELECT 1",
        "EXPLAIN ANALYZE SELECT 1",
        "SELECT 1;",
    ] {
        assert_eq!(refusal(query), None, "{query}");
    }
    for (query, kind) in [
        ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY is refused"),
        ("INSERT INTO gold VALUES (1)", "INSERT INTO is refused"),
        (
            "insert into gold select * from gold",
            "INSERT INTO is refused",
        ),
        ("DELETE FROM gold", "DELETE FROM is refused"),
        ("UPDATE gold SET mrn = 1", "UPDATE is refused"),
        ("CREATE TABLE t AS SELECT 1", "CREATE TABLE … AS is refused"),
        (
            "CREATE TABLE IF NOT EXISTS t (a INT)",
            "CREATE TABLE is refused",
        ),
        ("CREATE VIEW v AS SELECT 1", "CREATE VIEW is refused"),
        (
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/tmp/t.csv'",
            "CREATE EXTERNAL TABLE is refused",
        ),
        ("DROP TABLE gold", "DROP TABLE is refused"),
        ("SET datafusion.execution.batch_size = 1", "SET is refused"),
        ("RESET datafusion.execution.batch_size", "RESET is refused"),
        ("SELECT * INTO t FROM gold", "SELECT … INTO is refused"),
        (
            "WITH t AS (SELECT 1) INSERT INTO gold SELECT * FROM t",
            "INSERT INTO is refused",
        ),
        (
            "EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/x.csv'",
            "EXPLAIN ANALYZE COPY is refused",
        ),
        (
            "EXPLAIN INSERT INTO gold VALUES (1)",
            "EXPLAIN INSERT INTO is refused",
        ),
    ] {
        let message = refusal(query).unwrap_or_else(|| panic!("{query} passed"));
        assert!(message.starts_with(READ_ONLY), "{query}: {message}");
        assert!(message.ends_with(kind), "{query}: {message}");
    }
    let message = refusal("SELECT 1; COPY (SELECT 1) TO '/tmp/x.csv'").unwrap();
    assert!(
        message.contains("the text holds 2 statements (a query, COPY); nothing was run"),
        "{message}"
    );
    assert!(refusal("  ").unwrap().ends_with("the text holds no query"));
}

#[test]
fn show_tables_and_describe_pass_in_their_plain_forms_only() {
    let check = |query: &str| check_read_only(&SessionContext::new(), query);
    assert!(matches!(check("SHOW TABLES"), Ok(ReadOnly::ShowTables)));
    assert!(matches!(check("show tables;"), Ok(ReadOnly::ShowTables)));
    for query in ["DESCRIBE gold", "DESC gold", "DESCRIBE healthcare_dlh.gold"] {
        assert!(matches!(check(query), Ok(ReadOnly::Describe(_))), "{query}");
    }
    for (query, kind) in [
        ("SHOW TABLES LIKE 'g%'", "SHOW TABLES LIKE is refused"),
        ("SHOW FULL TABLES", "SHOW FULL TABLES is refused"),
        ("DESCRIBE EXTENDED gold", "DESCRIBE EXTENDED is refused"),
        ("EXPLAIN SHOW TABLES", "EXPLAIN SHOW TABLES is refused"),
        ("SHOW COLUMNS FROM gold", "SHOW COLUMNS FROM is refused"),
    ] {
        let message = refusal(query).unwrap_or_else(|| panic!("{query} passed"));
        assert!(message.ends_with(kind), "{query}: {message}");
    }
    let message = refusal("SHOW TABLES; SELECT 1").unwrap();
    assert!(
        message.contains("2 statements (SHOW TABLES, a query)"),
        "{message}"
    );
}

#[test]
fn a_syntax_error_is_one_line_with_its_position() {
    let message = |query: &str| match check_read_only(&SessionContext::new(), query) {
        Err(Error::Usage(message)) => message,
        other => panic!("{query}: {other:?}"),
    };
    assert_eq!(
        message("SELEC 1"),
        "SQL syntax error at line 1, column 1: Expected: an SQL statement, found: SELEC"
    );
    assert_eq!(
        message("SELECT\n  'abc"),
        "SQL syntax error at line 2, column 3: Unterminated string literal"
    );
}

#[test]
fn versions_are_split_from_names() {
    assert_eq!(split_version("gold@v3"), ("gold", Some(3)));
    assert_eq!(split_version("gold"), ("gold", None));
    assert_eq!(split_version("gold@v"), ("gold@v", None));
    assert_eq!(split_version("gold@vx"), ("gold@vx", None));
    assert_eq!(split_version("a@v1@v2"), ("a@v1", Some(2)));
}

/// Even SQL that bypasses the read-only check cannot write through a registered table.
#[tokio::test]
async fn registered_tables_cannot_be_written_to() {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let batch =
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
    let table = Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap());
    let ctx = session().unwrap();
    register(&ctx, "t", table.clone()).unwrap();
    let count = |ctx: SessionContext, query: &'static str| async move {
        let batches = ctx.sql(query).await?.collect().await?;
        Ok::<_, DataFusionError>(batches.iter().map(RecordBatch::num_rows).sum::<usize>())
    };
    // The default options allow DML: only the view stands in the way.
    let insert = count(ctx.clone(), "INSERT INTO t VALUES (3)").await;
    assert!(insert.is_err(), "{insert:?}");
    let insert = count(ctx.clone(), "INSERT INTO healthcare_dlh.t VALUES (3)").await;
    assert!(insert.is_err(), "{insert:?}");
    assert_eq!(count(ctx.clone(), "SELECT * FROM t").await.unwrap(), 2);
    // And the table under the view was not touched either.
    let direct = SessionContext::new();
    direct.register_table("t", table).unwrap();
    assert_eq!(count(direct, "SELECT * FROM t").await.unwrap(), 2);
}

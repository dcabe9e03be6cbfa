//! `medallion sql "<query>"`: DataFusion SQL over every table of the warehouse, each registered
//! by its name and as `healthcare_dlh.<name>` (the database Spark would put it in).
//!
//! Read-only: one query (`SELECT`, `WITH … SELECT`, `VALUES`, `EXPLAIN` of one of those) and
//! nothing else. DataFusion's SQL can also write files (`COPY … TO`), commit to the tables
//! (`INSERT`), and change the session (`CREATE`, `DROP`, `SET`); a `COPY` into a table's
//! `_delta_log` would even forge a commit. So the text is parsed first and anything but a query
//! is refused by name, the plan is checked again with DDL, DML and statements off, and the
//! tables are registered as views, which have no way to write to what they read.
//!
//! Time travel inside SQL: a table name written `<name>@v<N>` (double-quoted, since `@` is not
//! an identifier character: `"fact_heartrate_gold@v3"`) reads version N. Only the versions the
//! query names are loaded.

use std::ops::ControlFlow;
use std::sync::Arc;

use deltalake::datafusion::catalog::{MemorySchemaProvider, TableProvider};
use deltalake::datafusion::common::TableReference;
use deltalake::datafusion::datasource::{ViewTable, provider_as_source};
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::context::SQLOptions;
use deltalake::datafusion::logical_expr::LogicalPlanBuilder;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::datafusion::sql::parser::{DFParserBuilder, Statement};
use deltalake::datafusion::sql::sqlparser::ast::{self, Visit, Visitor};
use deltalake::datafusion::sql::sqlparser::dialect::dialect_from_str;
use deltalake::datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;

use super::format::Rows;
use crate::delta;
use crate::error::{Error, Result};
use crate::warehouse::{DATABASE, Warehouse};

/// What the refusals say `medallion sql` is for.
const READ_ONLY: &str =
    "medallion sql runs read-only queries (SELECT, WITH … SELECT, VALUES, EXPLAIN of a query)";

/// Run a query; its result as rows.
pub async fn run(warehouse: &Warehouse, query: &str) -> Result<Rows> {
    let ctx = session()?;
    check_read_only(&ctx, query)?;
    for name in super::table_names(warehouse)? {
        let (id, table) = super::open_table(warehouse, &name).await?;
        let provider = delta::provider(&id, &table, &ctx).await?;
        register(&ctx, &name, provider)?;
        for version in versions_named(query, &name) {
            super::check_version(&id, &table, version)?;
            let past = delta::open_version(&id, version).await?;
            let provider = delta::provider(&id, &past, &ctx).await?;
            register(&ctx, &format!("{name}@v{version}"), provider)?;
        }
    }
    let state = ctx.state();
    let plan = state.create_logical_plan(query).await.map_err(sql_err)?;
    // The same check `SessionContext::sql_with_options` makes, kept apart so that a refusal is a
    // usage error like the ones above. It sees what parsing cannot: a write DataFusion plans
    // from something that reads like a query.
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|e| Error::Usage(format!("{READ_ONLY}: {}", e.strip_backtrace())))?;
    let frame = ctx.execute_logical_plan(plan).await.map_err(sql_err)?;
    let schema = frame.schema().as_arrow().clone();
    let batches = frame.collect().await.map_err(sql_err)?;
    Rows::from_batches(&schema, &batches)
}

/// A session with the warehouse's database, and no tables yet.
fn session() -> Result<SessionContext> {
    let ctx = SessionContext::new();
    ctx.catalog("datafusion")
        .expect("a session has its default catalog")
        .register_schema(DATABASE, Arc::new(MemorySchemaProvider::new()))
        .map_err(sql_err)?;
    Ok(ctx)
}

/// Refuse, by name, anything in `query` but one read-only query. Text that does not parse is
/// left for DataFusion to report as it would.
fn check_read_only(ctx: &SessionContext, query: &str) -> Result<()> {
    let state = ctx.state();
    let options = &state.config().options().sql_parser;
    let dialect = dialect_from_str(options.dialect).ok_or_else(|| {
        Error::Usage(format!(
            "unknown SQL dialect {:?}",
            options.dialect.as_ref()
        ))
    })?;
    let statements = DFParserBuilder::new(query)
        .with_dialect(dialect.as_ref())
        .with_recursion_limit(options.recursion_limit.get())
        .build()
        .and_then(|mut parser| parser.parse_statements())
        .map_err(sql_err)?;
    let kinds: Vec<Option<String>> = statements.iter().map(refused_kind).collect();
    match kinds.as_slice() {
        [] => Err(Error::Usage(format!(
            "{READ_ONLY}: the text holds no query"
        ))),
        [None] => Ok(()),
        [Some(kind)] => Err(Error::Usage(format!("{READ_ONLY}: {kind} is refused"))),
        _ => {
            let names: Vec<&str> = kinds
                .iter()
                .map(|kind| kind.as_deref().unwrap_or("a query"))
                .collect();
            Err(Error::Usage(format!(
                "{READ_ONLY}, one at a time: the text holds {} statements ({}); nothing was run",
                kinds.len(),
                names.join(", ")
            )))
        }
    }
}

/// What a statement is, when it is more than a read-only query (`None` when it is one).
fn refused_kind(statement: &Statement) -> Option<String> {
    match statement {
        Statement::Statement(statement) => match statement.visit(&mut Writes) {
            ControlFlow::Break(kind) => Some(kind),
            ControlFlow::Continue(()) => None,
        },
        Statement::CopyTo(_) => Some("COPY".to_string()),
        Statement::CreateExternalTable(_) => Some("CREATE EXTERNAL TABLE".to_string()),
        Statement::Reset(_) => Some("RESET".to_string()),
        Statement::Explain(explain) => refused_kind(&explain.statement).map(|kind| {
            let explain = if explain.options.analyze {
                "EXPLAIN ANALYZE"
            } else {
                "EXPLAIN"
            };
            format!("{explain} {kind}")
        }),
    }
}

/// Stops at the first statement, at any depth, that is not a query (`WITH … INSERT` nests an
/// `INSERT` in a query), and at `SELECT … INTO`, which creates a table.
struct Writes;

impl Visitor for Writes {
    type Break = String;

    fn pre_visit_statement(&mut self, statement: &ast::Statement) -> ControlFlow<String> {
        match statement {
            ast::Statement::Query(_) => ControlFlow::Continue(()),
            ast::Statement::CreateTable(create) if create.query.is_some() => {
                ControlFlow::Break("CREATE TABLE … AS".to_string())
            }
            other => ControlFlow::Break(leading_keywords(other)),
        }
    }

    fn pre_visit_select(&mut self, select: &ast::Select) -> ControlFlow<String> {
        match select.into {
            Some(_) => ControlFlow::Break("SELECT … INTO".to_string()),
            None => ControlFlow::Continue(()),
        }
    }
}

/// A statement's kind as its leading keywords (`INSERT INTO`, `DROP TABLE`, `SET`), which
/// sqlparser prints in capitals and names never are unless the user wrote them so.
fn leading_keywords(statement: &ast::Statement) -> String {
    let text = statement.to_string();
    let keywords: Vec<&str> = text
        .split_whitespace()
        .take_while(|word| {
            *word != "IF"
                && word.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                && ALL_KEYWORDS.contains(word)
        })
        .take(4)
        .collect();
    if keywords.is_empty() {
        text.split_whitespace().next().unwrap_or("?").to_string()
    } else {
        keywords.join(" ")
    }
}

/// Register a table under its name and in the database, as a view over its provider: a view
/// has no `insert_into`, so no plan can write to the table through this session.
fn register(ctx: &SessionContext, name: &str, provider: Arc<dyn TableProvider>) -> Result<()> {
    let view: Arc<dyn TableProvider> = Arc::new(read_only(name, provider)?);
    ctx.register_table(TableReference::bare(name), view.clone())
        .map_err(sql_err)?;
    ctx.register_table(TableReference::partial(DATABASE, name), view)
        .map_err(sql_err)?;
    Ok(())
}

/// A view that reads `provider` and nothing more.
fn read_only(name: &str, provider: Arc<dyn TableProvider>) -> Result<ViewTable> {
    let plan = LogicalPlanBuilder::scan(
        TableReference::bare(name),
        provider_as_source(provider),
        None,
    )
    .and_then(LogicalPlanBuilder::build)
    .map_err(sql_err)?;
    Ok(ViewTable::new(plan, None))
}

fn sql_err(source: DataFusionError) -> Error {
    Error::Sql {
        source: Box::new(source),
    }
}

/// The versions of `table` a query names as `<table>@v<N>`.
fn versions_named(query: &str, table: &str) -> Vec<u64> {
    let pattern = format!("{table}@v");
    let mut versions: Vec<u64> = query
        .match_indices(&pattern)
        .filter(|(at, _)| {
            // A whole name, not the end of a longer one.
            !query[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .filter_map(|(at, _)| {
            let digits: String = query[at + pattern.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    versions.dedup();
    versions
}

#[cfg(test)]
mod tests {
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
            Ok(()) => None,
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

    /// Even SQL that bypasses the read-only check cannot write through a registered table.
    #[tokio::test]
    async fn registered_tables_cannot_be_written_to() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
                .unwrap();
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
}

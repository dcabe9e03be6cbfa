//! `medallion sql "<query>"`: DataFusion SQL over every table of the warehouse, each registered
//! by its name and as `healthcare_dlh.<name>` (the database Spark would put it in).
//!
//! Read-only: one query (`SELECT`, `WITH … SELECT`, `VALUES`, `EXPLAIN` of one of those),
//! `SHOW TABLES` or `DESCRIBE <table>`, and nothing else. The last two are answered by the
//! `tables` listing and `describe`'s columns, not by DataFusion's statements, which stay off.
//! DataFusion's SQL can also write files (`COPY … TO`), commit to the tables (`INSERT`), and
//! change the session (`CREATE`, `DROP`, `SET`); a `COPY` into a table's `_delta_log` would
//! even forge a commit. So the text is parsed first and anything but a query
//! is refused by name, the plan is checked again with DDL, DML and statements off, and the
//! tables are registered as views, which have no way to write to what they read.
//!
//! Time travel inside SQL: a table name written `<name>@v<N>` (double-quoted, since `@` is not
//! an identifier character: `"fact_heartrate_gold@v3"`) reads version N. Only the versions the
//! query names are loaded.
//!
//! What a user typed wrong is said in our words: a table the query names that does not exist
//! lists the tables (as `show` does), and text that does not parse is one line with its
//! position (`SQL syntax error at line 1, column 8: …`, exit 2).

use std::io::Read;
use std::ops::ControlFlow;
use std::path::Path;
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
use deltalake::datafusion::sql::sqlparser::parser::ParserError;
use futures::{StreamExt, TryStreamExt};

use super::format::{RowStream, Rows};
use crate::catalog::DATABASE;
use crate::delta::{self, TableId};
use crate::error::{Error, Result};
use crate::warehouse::{self, Warehouse};

/// What the refusals say `medallion sql` is for.
const READ_ONLY: &str = "medallion sql runs read-only queries (SELECT, WITH … SELECT, VALUES, \
     EXPLAIN of a query, SHOW TABLES, DESCRIBE <table>)";

/// The text of the query: `query` as given, or read from `file`; `-` (as either) is stdin.
pub fn query_text(query: Option<&str>, file: Option<&Path>) -> Result<String> {
    let file = match (query, file) {
        (Some("-"), _) => Path::new("-"),
        (Some(query), _) => return Ok(query.to_string()),
        (None, Some(file)) => file,
        (None, None) => return Err(Error::Usage("no query: give one, -f FILE or -".into())),
    };
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::Usage(format!("cannot read the query from stdin: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|e| {
        Error::Usage(format!(
            "cannot read the query file {}: {e}",
            file.display()
        ))
    })
}

/// What a text asked for: a listing (`SHOW TABLES`, `DESCRIBE`), or a query's rows, still to
/// be read (printing reads them a batch at a time).
pub enum Answer {
    Listing(Rows),
    Query(RowStream),
}

/// Run a query; its result.
pub async fn run(warehouse: &Warehouse, query: &str) -> Result<Answer> {
    let ctx = session()?;
    let statement = match check_read_only(&ctx, query)? {
        ReadOnly::Query(statement) => statement,
        ReadOnly::ShowTables => return super::tables::run(warehouse).await.map(Answer::Listing),
        ReadOnly::Describe(name) => {
            return describe(warehouse, &name).await.map(Answer::Listing);
        }
    };
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
    for reference in state
        .resolve_table_references(&statement)
        .map_err(sql_err)?
    {
        if !ctx.table_exist(reference.clone()).unwrap_or(false) {
            return Err(unknown_table(warehouse, &reference));
        }
    }
    let plan = state.statement_to_plan(*statement).await.map_err(sql_err)?;
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
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame
        .execute_stream()
        .await
        .map_err(sql_err)?
        .map_err(sql_err)
        .boxed();
    Ok(Answer::Query(RowStream::new(schema, batches, None)))
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

/// What a read-only text asks for.
#[derive(Debug)]
enum ReadOnly {
    /// One query, for DataFusion.
    Query(Box<Statement>),
    /// `SHOW TABLES`, as it is.
    ShowTables,
    /// `DESCRIBE <table>` (or `DESC <table>`): the table's columns.
    Describe(ast::ObjectName),
}

/// Refuse, by name, anything in `query` but one read-only query, `SHOW TABLES` or
/// `DESCRIBE <table>`. Text that does not parse is a usage error with its position.
fn check_read_only(ctx: &SessionContext, query: &str) -> Result<ReadOnly> {
    let state = ctx.state();
    let options = &state.config().options().sql_parser;
    let dialect = dialect_from_str(options.dialect).ok_or_else(|| {
        Error::Usage(format!(
            "unknown SQL dialect {:?}",
            options.dialect.as_ref()
        ))
    })?;
    let mut statements = DFParserBuilder::new(query)
        .with_dialect(dialect.as_ref())
        .with_recursion_limit(options.recursion_limit.get())
        .build()
        .and_then(|mut parser| parser.parse_statements())
        .map_err(syntax_err)?;
    if let [statement] = statements.make_contiguous()
        && let Some(answer) = listing(statement)
    {
        return Ok(answer);
    }
    let kinds: Vec<Option<String>> = statements.iter().map(refused_kind).collect();
    match kinds.as_slice() {
        [] => Err(Error::Usage(format!(
            "{READ_ONLY}: the text holds no query"
        ))),
        [None] => Ok(ReadOnly::Query(Box::new(
            statements.pop_front().expect("one statement"),
        ))),
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

/// `SHOW TABLES` and `DESCRIBE <table>` exactly: with no option (`LIKE`, `EXTENDED`, `FULL`,
/// `FORMATTED`...), which are refused as any other statement is.
fn listing(statement: &Statement) -> Option<ReadOnly> {
    let Statement::Statement(statement) = statement else {
        return None;
    };
    match statement.as_ref() {
        ast::Statement::ShowTables {
            terse: false,
            history: false,
            extended: false,
            full: false,
            external: false,
            show_options,
        } if show_options.show_in.is_none()
            && show_options.starts_with.is_none()
            && show_options.limit.is_none()
            && show_options.limit_from.is_none()
            && show_options.filter_position.is_none() =>
        {
            Some(ReadOnly::ShowTables)
        }
        ast::Statement::ExplainTable {
            describe_alias: ast::DescribeAlias::Describe | ast::DescribeAlias::Desc,
            hive_format: None,
            table_name,
            ..
        } => Some(ReadOnly::Describe(table_name.clone())),
        _ => None,
    }
}

/// `DESCRIBE <table>`: its columns as `describe` lists them (`col_name`, `data_type`,
/// `comment`), for `<name>`, `healthcare_dlh.<name>` or `"<name>@v<N>"`.
async fn describe(warehouse: &Warehouse, name: &ast::ObjectName) -> Result<Rows> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| match part.as_ident() {
            // Unquoted names are folded to lower case, as DataFusion folds them in queries.
            Some(ident) if ident.quote_style.is_none() => ident.value.to_lowercase(),
            Some(ident) => ident.value.clone(),
            None => part.to_string(),
        })
        .collect();
    let table = match parts.as_slice() {
        [table] => table,
        [database, table] if database == DATABASE => table,
        _ => {
            return Err(Error::Usage(format!(
                "DESCRIBE {name}: name a table as <name>, {DATABASE}.<name> or \"<name>@v<N>\""
            )));
        }
    };
    let (base, version) = split_version(table);
    let (id, latest) = super::open_table(warehouse, base).await?;
    let table = match version {
        Some(version) => {
            super::check_version(&id, &latest, version)?;
            delta::open_version(&id, version).await?
        }
        None => latest,
    };
    let snapshot = table.snapshot().map_err(id.err("load"))?;
    Ok(super::describe::columns(snapshot))
}

/// `("gold", Some(3))` for `gold@v3`; a name without a version suffix as it is.
fn split_version(name: &str) -> (&str, Option<u64>) {
    match name.rsplit_once("@v") {
        Some((base, digits))
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            match digits.parse() {
                Ok(version) => (base, Some(version)),
                Err(_) => (name, None),
            }
        }
        _ => (name, None),
    }
}

/// A table a query names that the session does not hold, said as `show` says it: the tables
/// there are.
fn unknown_table(warehouse: &Warehouse, reference: &TableReference) -> Error {
    let (base, _) = split_version(reference.table());
    let names = super::table_names(warehouse).unwrap_or_default();
    if warehouse::validate_table_name(base).is_ok() && !names.iter().any(|n| n == base) {
        return super::unknown_table(warehouse, &TableId::new(warehouse, base));
    }
    // A table that exists, named in a way the session does not know (another schema...).
    Error::Usage(format!(
        "no table {reference}: a table is read as <name>, {DATABASE}.<name> or \"<name>@v<N>\"; \
         the tables are: {}",
        names.join(", ")
    ))
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

/// Text that does not parse, as one usage error with its position: sqlparser ends its messages
/// with ` at Line: L, Column: C`.
fn syntax_err(source: DataFusionError) -> Error {
    let DataFusionError::SQL(parser, _) = source.find_root() else {
        return sql_err(source);
    };
    let message = match parser.as_ref() {
        ParserError::TokenizerError(message) | ParserError::ParserError(message) => {
            message.as_str()
        }
        ParserError::RecursionLimitExceeded => {
            "the query nests too deeply (recursion limit exceeded)"
        }
    };
    let located = message.rsplit_once(" at Line: ").and_then(|(text, at)| {
        let (line, column) = at.split_once(", Column: ")?;
        Some((text, line.parse::<u64>().ok()?, column.parse::<u64>().ok()?))
    });
    Error::Usage(match located {
        Some((text, line, column)) => {
            format!("SQL syntax error at line {line}, column {column}: {text}")
        }
        None => format!("SQL syntax error: {message}"),
    })
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

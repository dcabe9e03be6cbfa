//! What `medallion sql` lets run: one read-only query, `SHOW TABLES` or `DESCRIBE <table>`,
//! decided on the parsed text before anything is planned; everything else refused by name, and
//! text that does not parse said as one usage error with its position.

use std::ops::ControlFlow;

use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::datafusion::sql::parser::Statement;
use deltalake::datafusion::sql::sqlparser::ast::{self, Visit, Visitor};
use deltalake::datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
use deltalake::datafusion::sql::sqlparser::parser::ParserError;

use crate::error::{Error, Result};

/// What the refusals say `medallion sql` is for.
pub(super) const READ_ONLY: &str = "medallion sql runs read-only queries (SELECT, WITH … SELECT, VALUES, \
     EXPLAIN of a query, SHOW TABLES, DESCRIBE <table>)";

/// What a read-only text asks for.
#[derive(Debug)]
pub(super) enum ReadOnly {
    /// One query, for DataFusion.
    Query(Box<Statement>),
    /// `SHOW TABLES`, as it is.
    ShowTables,
    /// `DESCRIBE <table>` (or `DESC <table>`): the table's columns.
    Describe(ast::ObjectName),
}

/// Refuse, by name, anything in `query` but one read-only query, `SHOW TABLES` or
/// `DESCRIBE <table>`. Text that does not parse is a usage error with its position.
pub(super) fn check_read_only(ctx: &SessionContext, query: &str) -> Result<ReadOnly> {
    let mut statements = super::super::parse::with_parser(&ctx.state(), query, |_, mut parser| {
        parser.parse_statements()
    })
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
pub(super) fn listing(statement: &Statement) -> Option<ReadOnly> {
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

/// What a statement is, when it is more than a read-only query (`None` when it is one).
pub(super) fn refused_kind(statement: &Statement) -> Option<String> {
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
pub(super) fn leading_keywords(statement: &ast::Statement) -> String {
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

/// Text that does not parse, as one usage error with its position: sqlparser ends its messages
/// with ` at Line: L, Column: C`.
pub(super) fn syntax_err(source: DataFusionError) -> Error {
    let DataFusionError::SQL(parser, _) = source.find_root() else {
        return super::sql_err(source);
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

//! `medallion show <table>`: a table's rows now, at a past version, or as they were at a past
//! time (time travel), optionally filtered and ordered with SQL expressions.
//!
//! A time picks the latest version committed at or before it, by the commit timestamps in the
//! log (`commitInfo`), never by the commit files' modification times, which copying a table or
//! restoring it from a backup changes.
//!
//! `--where` and `--order-by` are parsed as one expression and as one `ORDER BY` list, never
//! pasted into SQL text: pasted, `1=1 UNION ALL SELECT …` added rows and a trailing `--` hid the
//! limit. Anything after the expression, a comment, or a subquery (which could read another
//! table) is a usage error that names the flag.

use std::ops::ControlFlow;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use deltalake::DeltaTable;
use deltalake::datafusion::common::{Column, DFSchema, TableReference};
use deltalake::datafusion::execution::SessionState;
use deltalake::datafusion::logical_expr::{Expr, SortExpr};
use deltalake::datafusion::prelude::SessionContext;
use deltalake::datafusion::sql::planner::NullOrdering;
use deltalake::datafusion::sql::sqlparser::ast::{self, Visit, Visitor};
use deltalake::datafusion::sql::sqlparser::parser::{Parser, ParserError};
use deltalake::datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
use futures::{StreamExt, TryStreamExt};

use super::format::{self, RowStream};
use crate::delta::{self, TableId};
use crate::error::{Error, Result};
use crate::warehouse::Warehouse;

/// Which version of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Latest,
    Version(u64),
    /// The latest version committed at or before this instant.
    Time(DateTime<Utc>),
}

impl At {
    /// What `--version N` or `--as-of T` (clap makes them exclusive) name; the latest without.
    pub fn from_flags(version: Option<u64>, as_of: Option<DateTime<Utc>>) -> At {
        match (version, as_of) {
            (Some(version), _) => At::Version(version),
            (None, Some(time)) => At::Time(time),
            (None, None) => At::Latest,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ShowOptions {
    pub at: At,
    /// At most this many rows (`None`: all).
    pub limit: Option<usize>,
    /// One SQL boolean expression over the table's columns (`--where`).
    pub filter: Option<String>,
    /// A SQL `ORDER BY` list, e.g. `mrn, datetime DESC` (`--order-by`).
    pub order_by: Option<String>,
}

/// What `show` reads: the rows, still to be read (printing reads them a batch at a time), of
/// this version.
pub struct Shown {
    pub rows: RowStream,
    pub version: u64,
}

/// Parse a time given as RFC 3339 (`2024-05-01T12:00:00Z`, any offset) or as UTC
/// `YYYY-MM-DD[ HH:MM:SS[.fff]]` (a `T` works in place of the space).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    for pattern in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, pattern) {
            return Ok(time.and_utc());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc());
    }
    Err(format!(
        "{text:?} is not a time: use RFC 3339 (2024-05-01T12:00:00Z) or YYYY-MM-DD[ HH:MM:SS] in UTC"
    ))
}

/// The latest version of the table committed at or before `time`, by a binary search over
/// the commits' timestamps (they only grow, as Delta's own time travel assumes): a handful
/// of commit files read, however long the log. Commits cleaned up after a checkpoint are not
/// there to be found: the oldest one still in the log is the first version.
pub async fn version_at(id: &TableId, table: &DeltaTable, time: DateTime<Utc>) -> Result<u64> {
    let latest = super::latest_version(id, table)?;
    let wanted = time.timestamp_millis();
    let log = table.log_store();
    // The oldest commit still there: log clean-up removes a prefix of the log, up to a
    // checkpoint, so the commits from some version on are there; find it by bisection below
    // the last checkpoint.
    let (mut low, mut high) = (
        0,
        crate::delta::log::last_checkpoint(log.as_ref())
            .await
            .map_or(0, |c| c.min(latest)),
    );
    while low < high {
        let mid = low + (high - low) / 2;
        if super::read_commit(id, table, mid).await?.is_some() {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    let mut first = None;
    for version in low..=latest {
        if let Some(time) = super::read_commit(id, table, version)
            .await?
            .and_then(|c| c.timestamp())
        {
            first = Some((version, time));
            break;
        }
    }
    let Some((first_version, first_time)) = first else {
        return Err(id.not_found(" (its log has no commit timestamps)"));
    };
    if first_time > wanted {
        return Err(Error::TimeBeforeTable {
            table: id.name.clone(),
            time: format::rfc3339(time),
            first_version,
            first_time: format::plain(&format::millis(first_time)),
        });
    }
    // Invariant: the commit at `found` is at or before `wanted`; versions above `high` are not.
    let (mut found, mut high) = (first_version, latest);
    while found < high {
        let mid = found + (high - found).div_ceil(2);
        let at = match super::read_commit(id, table, mid).await? {
            Some(commit) => commit.timestamp(),
            None => None,
        };
        match at {
            Some(t) if t <= wanted => found = mid,
            Some(_) => high = mid - 1,
            // No timestamp (or gone): look below it.
            None => high = mid - 1,
        }
    }
    Ok(found)
}

/// The version `at` names, checked against the table.
pub async fn resolve(id: &TableId, table: &DeltaTable, at: At) -> Result<u64> {
    match at {
        At::Latest => super::latest_version(id, table),
        At::Version(version) => {
            super::check_version(id, table, version)?;
            Ok(version)
        }
        At::Time(time) => version_at(id, table, time).await,
    }
}

/// Rows of a table at a version.
pub async fn run(warehouse: &Warehouse, name: &str, options: &ShowOptions) -> Result<Shown> {
    let ctx = SessionContext::new();
    let state = ctx.state();
    let filter = options
        .filter
        .as_deref()
        .map(|text| parse_where(&state, text))
        .transpose()?;
    let order_by = options
        .order_by
        .as_deref()
        .map(|text| parse_order_by(&state, text))
        .transpose()?;

    let (id, latest) = super::open_table(warehouse, name).await?;
    let version = resolve(&id, &latest, options.at).await?;
    let table = if Some(version) == latest.version() {
        latest
    } else {
        delta::open_version(&id, version).await?
    };
    // The only table of the session: nothing the flags say can read another.
    let reference = TableReference::bare(name);
    ctx.register_table(reference.clone(), delta::provider(&id, &table, &ctx).await?)
        .map_err(id.query_err("read"))?;
    let mut frame = ctx.table(reference).await.map_err(id.query_err("read"))?;
    if let Some(expr) = filter {
        let expr = ast::ExprWithAlias { expr, alias: None };
        frame = state
            .create_logical_expr_from_sql_expr(expr, frame.schema())
            .and_then(|expr| frame.filter(expr))
            .map_err(id.query_err("filter by --where"))?;
    }
    if let Some(list) = order_by {
        let sort = sort_exprs(&state, &id, list, frame.schema())?;
        frame = frame
            .sort(sort)
            .map_err(id.query_err("order by --order-by"))?;
    }
    if let Some(limit) = options.limit {
        // One more than asked, to tell whether rows were left out.
        frame = frame
            .limit(0, Some(limit + 1))
            .map_err(id.query_err("query"))?;
    }
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame
        .execute_stream()
        .await
        .map_err(id.query_err("query"))?
        .map_err(move |e| id.query_err("query")(e))
        .boxed();
    Ok(Shown {
        rows: RowStream::new(schema, batches, options.limit),
        version,
    })
}

/// The `--where` text as one expression, and nothing after it.
fn parse_where(state: &SessionState, text: &str) -> Result<ast::Expr> {
    parse_one(state, text, |parser| parser.parse_expr()).map_err(|problem| {
        Error::Usage(format!(
            "--where takes one SQL condition over the table's columns, e.g. 'heartrate < 0': \
             {problem}"
        ))
    })
}

/// The `--order-by` text as an `ORDER BY` list, and nothing after it.
fn parse_order_by(state: &SessionState, text: &str) -> Result<Vec<ast::OrderByExpr>> {
    parse_one(state, text, |parser| {
        parser.parse_comma_separated(|parser| parser.parse_order_by_expr())
    })
    .map_err(|problem| {
        Error::Usage(format!(
            "--order-by takes a comma-separated list of columns or expressions, each optionally \
             followed by ASC or DESC and NULLS FIRST or NULLS LAST, e.g. 'mrn, datetime DESC': \
             {problem}"
        ))
    })
}

/// Parse `text` with `parse`, with the session's dialect, refusing comments (which could only
/// hide something), anything left after what `parse` took, and subqueries. The problem as a
/// phrase for the flag's usage error.
fn parse_one<T: Visit>(
    state: &SessionState,
    text: &str,
    parse: impl FnOnce(&mut Parser) -> Result<T, ParserError>,
) -> Result<T, String> {
    let parsed = super::parse::with_parser(state, text, |dialect, mut parser| {
        let tokens = Tokenizer::new(dialect, text).tokenize();
        let tokens = match tokens {
            Ok(tokens) => tokens,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let comment = tokens.iter().any(|token| {
            matches!(
                token,
                Token::Whitespace(
                    Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)
                )
            )
        });
        if comment {
            return Ok(Err("it holds a comment (-- or /* */)".to_string()));
        }
        let parsed = match parse(&mut parser.parser) {
            Ok(parsed) => parsed,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let next = parser.parser.peek_token();
        if next.token != Token::EOF {
            return Ok(Err(format!(
                "unexpected {} at column {}, after the end of it",
                next.token, next.span.start.column
            )));
        }
        Ok(Ok(parsed))
    })
    .map_err(|e| e.strip_backtrace())??;
    if parsed.visit(&mut Subquery).is_break() {
        return Err(
            "it holds a subquery: only the rows of the table shown can be used".to_string(),
        );
    }
    Ok(parsed)
}

/// Stops at any query inside an expression.
struct Subquery;

impl Visitor for Subquery {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &ast::Query) -> ControlFlow<()> {
        ControlFlow::Break(())
    }
}

/// The sort an `ORDER BY` list asks for, as DataFusion's SQL would plan it: a number is a
/// column's position (from 1), a missing `NULLS` follows the session's default.
fn sort_exprs(
    state: &SessionState,
    id: &TableId,
    list: Vec<ast::OrderByExpr>,
    schema: &DFSchema,
) -> Result<Vec<SortExpr>> {
    let nulls = NullOrdering::from(
        state
            .config()
            .options()
            .sql_parser
            .default_null_ordering
            .as_str(),
    );
    let columns = schema.fields().len();
    let mut sort = Vec::with_capacity(list.len());
    for item in list {
        if item.with_fill.is_some() {
            return Err(Error::Usage(
                "--order-by: WITH FILL is not supported".to_string(),
            ));
        }
        let asc = item.options.asc.unwrap_or(true);
        let nulls_first = item.options.nulls_first.unwrap_or(nulls.nulls_first(asc));
        let expr = match item.expr {
            ast::Expr::Value(ast::ValueWithSpan {
                value: ast::Value::Number(position, _),
                ..
            }) => match position.parse::<usize>() {
                Ok(n) if (1..=columns).contains(&n) => {
                    Expr::Column(Column::from(schema.qualified_field(n - 1)))
                }
                _ => {
                    return Err(Error::Usage(format!(
                        "--order-by {position}: a number is a column's position, and {} has \
                         columns 1 to {columns}",
                        id.name
                    )));
                }
            },
            expr => state
                .create_logical_expr_from_sql_expr(ast::ExprWithAlias { expr, alias: None }, schema)
                .map_err(id.query_err("order by --order-by"))?,
        };
        sort.push(expr.sort(asc, nulls_first));
    }
    Ok(sort)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_utc_dates() {
        let at = |s: &str| parse_time(s).map(format::rfc3339);
        assert_eq!(at("2024-05-01T12:00:00Z").unwrap(), "2024-05-01T12:00:00Z");
        assert_eq!(
            at("2024-05-01T14:00:00+02:00").unwrap(),
            "2024-05-01T12:00:00Z"
        );
        assert_eq!(at("2024-05-01 12:00:00").unwrap(), "2024-05-01T12:00:00Z");
        assert_eq!(
            at("2024-05-01 12:00:00.250").unwrap(),
            "2024-05-01T12:00:00.250Z"
        );
        assert_eq!(at("2024-05-01").unwrap(), "2024-05-01T00:00:00Z");
        assert!(at("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(at("2024-13-01").is_err());
    }

    #[test]
    fn flags_take_one_expression_and_nothing_after_it() {
        let state = SessionContext::new().state();
        let problem = |text: &str| match parse_where(&state, text) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        assert_eq!(problem("heartrate < 0 AND name = 'a -- b'"), "");
        for (text, expected) in [
            ("1=1 UNION ALL SELECT 1", "unexpected UNION at column 5"),
            ("1=1; SELECT 1", "unexpected ; at column 4"),
            ("1=1 --", "it holds a comment"),
            ("1=1 /* */", "it holds a comment"),
            ("mrn IN (SELECT 1)", "it holds a subquery"),
            ("heartrate <", "Expected: an expression"),
        ] {
            let message = problem(text);
            assert!(
                message.starts_with("--where takes one SQL condition"),
                "{text}: {message}"
            );
            assert!(message.contains(expected), "{text}: {message}");
        }
        let list = parse_order_by(&state, "mrn DESC, name NULLS FIRST, 2").unwrap();
        let options: Vec<_> = list
            .iter()
            .map(|o| (o.options.asc, o.options.nulls_first))
            .collect();
        assert_eq!(
            options,
            [(Some(false), None), (None, Some(true)), (None, None)]
        );
        let err = parse_order_by(&state, "mrn LIMIT 1")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--order-by takes") && err.contains("unexpected LIMIT"),
            "{err}"
        );
    }
}

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
use std::path::Path;
use std::sync::Arc;

use deltalake::datafusion::catalog::{MemorySchemaProvider, TableProvider};
use deltalake::datafusion::common::TableReference;
use deltalake::datafusion::datasource::{ViewTable, provider_as_source};
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::context::SQLOptions;
use deltalake::datafusion::logical_expr::LogicalPlanBuilder;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::datafusion::sql::sqlparser::ast;
use futures::{StreamExt, TryStreamExt};

mod guard;
#[cfg(test)]
mod tests;

use guard::{READ_ONLY, ReadOnly, check_read_only};

use super::format::{RowStream, Rows};
use crate::catalog::DATABASE;
use crate::delta::{self, TableId};
use crate::error::{Error, Result};
use crate::warehouse::{self, Warehouse};

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
    for name in super::table_names(warehouse).await? {
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
            return Err(unknown_table(warehouse, &reference).await);
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
async fn unknown_table(warehouse: &Warehouse, reference: &TableReference) -> Error {
    let (base, _) = split_version(reference.table());
    let names = super::table_names(warehouse).await.unwrap_or_default();
    if warehouse::validate_table_name(base).is_ok() && !names.iter().any(|n| n == base) {
        return super::unknown_table(warehouse, &TableId::new(warehouse, base)).await;
    }
    // A table that exists, named in a way the session does not know (another schema...).
    Error::Usage(format!(
        "no table {reference}: a table is read as <name>, {DATABASE}.<name> or \"<name>@v<N>\"; \
         the tables are: {}",
        names.join(", ")
    ))
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

//! `medallion sql "<query>"`: DataFusion SQL over every table of the warehouse, each registered
//! by its name and as `healthcare_dlh.<name>` (the database Spark would put it in).
//!
//! Time travel inside SQL: a table name written `<name>@v<N>` (double-quoted, since `@` is not
//! an identifier character: `"fact_heartrate_gold@v3"`) reads version N. Only the versions the
//! query names are loaded.

use std::sync::Arc;

use deltalake::datafusion::catalog::MemorySchemaProvider;
use deltalake::datafusion::common::TableReference;
use deltalake::datafusion::prelude::SessionContext;

use super::format::Rows;
use crate::delta;
use crate::error::{Error, Result};
use crate::warehouse::{DATABASE, Warehouse};

/// Run a query; its result as rows.
pub async fn run(warehouse: &Warehouse, query: &str) -> Result<Rows> {
    let ctx = SessionContext::new();
    let catalog = ctx
        .catalog("datafusion")
        .expect("a session has its default catalog");
    catalog
        .register_schema(DATABASE, Arc::new(MemorySchemaProvider::new()))
        .map_err(sql_err)?;
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
    let frame = ctx.sql(query).await.map_err(sql_err)?;
    let schema = frame.schema().as_arrow().clone();
    let batches = frame.collect().await.map_err(sql_err)?;
    Rows::from_batches(&schema, &batches)
}

fn register(
    ctx: &SessionContext,
    name: &str,
    provider: Arc<dyn deltalake::datafusion::catalog::TableProvider>,
) -> Result<()> {
    ctx.register_table(TableReference::bare(name), provider.clone())
        .map_err(sql_err)?;
    ctx.register_table(TableReference::partial(DATABASE, name), provider)
        .map_err(sql_err)?;
    Ok(())
}

fn sql_err(source: deltalake::datafusion::error::DataFusionError) -> Error {
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

    #[test]
    fn versions_are_found_by_whole_table_name() {
        let q = r#"SELECT * FROM "gold@v3" JOIN "gold@v12" USING (mrn) JOIN "xgold@v4" USING (mrn)
                   JOIN healthcare_dlh."gold@v3" USING (mrn)"#;
        assert_eq!(versions_named(q, "gold"), vec![3, 12]);
        assert_eq!(versions_named("SELECT 1", "gold"), Vec::<u64>::new());
    }
}

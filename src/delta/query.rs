//! Reading tables with DataFusion: a table as a provider or frame, every row of a version, and
//! one query over registered tables, collected, its errors named after the table concerned.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::catalog::TableProvider;
use deltalake::datafusion::prelude::{DataFrame, SessionContext};

use super::TableId;
use crate::error::Result;

/// The table's current version as a DataFusion table provider, its store registered in `ctx`.
pub async fn provider(
    id: &TableId,
    table: &DeltaTable,
    ctx: &SessionContext,
) -> Result<Arc<dyn TableProvider>> {
    table
        .update_datafusion_session(&ctx.state())
        .map_err(id.err("read"))?;
    table.table_provider().await.map_err(id.query_err("read"))
}

/// A DataFusion frame over the table's current version.
pub async fn frame(id: &TableId, table: &DeltaTable, ctx: &SessionContext) -> Result<DataFrame> {
    ctx.read_table(provider(id, table, ctx).await?)
        .map_err(id.query_err("read"))
}

/// Every row of the table's current version.
pub async fn read_all(id: &TableId, table: &DeltaTable) -> Result<Vec<RecordBatch>> {
    let ctx = SessionContext::new();
    frame(id, table, &ctx)
        .await?
        .collect()
        .await
        .map_err(id.query_err("read"))
}

/// A session with `table` registered as `name`.
pub async fn session_with(id: &TableId, table: &DeltaTable, name: &str) -> Result<SessionContext> {
    let ctx = SessionContext::new();
    register(&ctx, id, table, name).await?;
    Ok(ctx)
}

/// Register `table`'s current version in `ctx` as `name`.
pub async fn register(
    ctx: &SessionContext,
    id: &TableId,
    table: &DeltaTable,
    name: &str,
) -> Result<()> {
    ctx.register_table(name, provider(id, table, ctx).await?)
        .map_err(id.query_err("read"))?;
    Ok(())
}

/// Run `sql` in `ctx` and collect its rows; errors name `id` (the table the query reads) and
/// `action`.
pub async fn query(
    ctx: &SessionContext,
    id: &TableId,
    action: &'static str,
    sql: &str,
) -> Result<Vec<RecordBatch>> {
    collect(
        id,
        action,
        ctx.sql(sql).await.map_err(id.query_err(action))?,
    )
    .await
}

/// Collect a frame's rows; errors name `id` and `action`.
pub async fn collect(
    id: &TableId,
    action: &'static str,
    frame: DataFrame,
) -> Result<Vec<RecordBatch>> {
    frame.collect().await.map_err(id.query_err(action))
}

/// A session whose scans read text as `Utf8`, not DataFusion's default `Utf8View`: the files a
/// MERGE rewrites then hold plain strings, as every other writer's do. A `string_view` column
/// where the table's schema says non-null `string` is refused by Spark's reader (Sail:
/// "Cannot cast column from Utf8View (physical) to Utf8 (logical)"). MERGE and OPTIMIZE use it.
pub fn plain_strings_session() -> std::sync::Arc<dyn deltalake::datafusion::catalog::Session> {
    use deltalake::datafusion::execution::SessionStateBuilder;
    use deltalake::datafusion::prelude::SessionConfig;
    let mut config = SessionConfig::new();
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    std::sync::Arc::new(
        SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .build(),
    )
}

//! SQL text parsed as the session parses it (its dialect and recursion limit): `sql`'s
//! statements and `show`'s `--where` / `--order-by` go through this one parser set-up.

use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::SessionState;
use deltalake::datafusion::sql::parser::{DFParser, DFParserBuilder};
use deltalake::datafusion::sql::sqlparser::dialect::{Dialect, dialect_from_str};

/// Run `parse` on a parser of `text` set up as the session's SQL planner sets its own up; it
/// also gets the dialect (to tokenize with).
pub(super) fn with_parser<T>(
    state: &SessionState,
    text: &str,
    parse: impl for<'a> FnOnce(&'a dyn Dialect, DFParser<'a>) -> Result<T, DataFusionError>,
) -> Result<T, DataFusionError> {
    let options = &state.config().options().sql_parser;
    let dialect = dialect_from_str(options.dialect).ok_or_else(|| {
        DataFusionError::Configuration(format!(
            "unknown SQL dialect {:?}",
            options.dialect.as_ref()
        ))
    })?;
    let parser = DFParserBuilder::new(text)
        .with_dialect(dialect.as_ref())
        .with_recursion_limit(options.recursion_limit.get())
        .build()?;
    parse(dialect.as_ref(), parser)
}

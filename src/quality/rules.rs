//! The expectations file, `medallion.toml`: each `[[expectation]]` names a table, a rule name, a
//! SQL check over the table's columns and what to do with a row that fails it. Everything is
//! checked when the file is read, before any job starts: a rule that does not parse, names an
//! unknown column, is not a boolean, or asks for an action its table cannot take is an error
//! naming the file and the rule's line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, SchemaRef};
use deltalake::datafusion::common::DFSchema;
use deltalake::datafusion::logical_expr::simplify::SimplifyContext;
use deltalake::datafusion::optimizer::simplify_expressions::ExprSimplifier;
use deltalake::datafusion::prelude::{Expr, SessionContext};
use serde::{Deserialize, Serialize};

use crate::catalog::{self, Table};
use crate::error::{Error, Result};

/// The file read from the working directory when `--config` does not name one.
pub const DEFAULT_FILE: &str = "medallion.toml";

/// What happens to a row whose check is not true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Keep the row; count it.
    Warn,
    /// Leave the row out of the table; it goes to the table's quarantine with the rule's name.
    Drop,
    /// The same as `drop`, said explicitly.
    Quarantine,
    /// Stop the refresh before it commits anything, naming the rule, the count and a row.
    Fail,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Warn => "warn",
            Action::Drop => "drop",
            Action::Quarantine => "quarantine",
            Action::Fail => "fail",
        }
    }

    /// Whether a failing row leaves the table.
    pub fn removes(self) -> bool {
        matches!(self, Action::Drop | Action::Quarantine)
    }
}

/// One expectation, checked against its table's schema.
#[derive(Debug, Clone)]
pub struct Rule {
    pub table: &'static Table,
    pub name: String,
    /// The SQL text, as written.
    pub check: String,
    pub action: Action,
    /// The line of its `[[expectation]]` in the file.
    pub line: u64,
    /// The check, parsed against the table's columns.
    pub expr: Expr,
}

/// The rules of a file (none without one).
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub rules: Vec<Rule>,
}

/// The tables rules apply to, as their rows are written, and the actions each takes.
fn actions_of(table: &Table) -> Option<&'static [Action]> {
    const ALL: &[Action] = &[Action::Warn, Action::Drop, Action::Quarantine, Action::Fail];
    // Gold's and daily's rows are aggregates of silver: leaving one out would leave the
    // patient's previous aggregate in place, so they warn or fail; drop readings in silver.
    const AGGREGATES: &[Action] = &[Action::Warn, Action::Fail];
    if table.name == catalog::SILVER.name {
        Some(ALL)
    } else if table.name == catalog::GOLD.name || table.name == catalog::DAILY.name {
        Some(AGGREGATES)
    } else {
        None
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    expectation: Vec<toml::Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    table: String,
    name: String,
    check: String,
    action: Action,
}

impl Rules {
    /// The rules of `config` if given (it must exist), else of `medallion.toml` in the working
    /// directory if there is one, else none. A file that cannot be used is a usage error
    /// (exit 2) naming the file and line, before any job starts.
    pub fn load(config: Option<&Path>) -> Result<Self> {
        let path = match config {
            Some(path) => path.to_path_buf(),
            None => {
                let path = PathBuf::from(DEFAULT_FILE);
                if !path.exists() {
                    return Ok(Self::default());
                }
                path
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Usage(format!(
                "the expectations file {} does not exist (`medallion init` writes one)",
                path.display()
            )),
            _ => Error::Usage(format!(
                "cannot read the expectations file {}: {e}",
                path.display()
            )),
        })?;
        Self::parse(&path, &text).map_err(|e| match e {
            Error::SourceParse { .. } => Error::Usage(format!("expectations file {e}")),
            other => other,
        })
    }

    /// The rules of a file's text; errors name `path` and the line.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let bad = |line: u64, message: String| Error::SourceParse {
            path: path.to_path_buf(),
            line: Some(line),
            message,
        };
        let file: File = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |span| line_of(text, span.start));
            bad(line, e.message().trim().to_string())
        })?;
        let mut rules: Vec<Rule> = Vec::new();
        for spanned in file.expectation {
            let line = line_of(text, spanned.span().start);
            let raw = spanned.into_inner();
            let table = catalog::find(&raw.table).ok_or_else(|| {
                bad(
                    line,
                    format!(
                        "expectation {:?}: no table {:?}; rules apply to {}",
                        raw.name,
                        raw.table,
                        rule_tables().join(", ")
                    ),
                )
            })?;
            let Some(actions) = actions_of(table) else {
                return Err(bad(
                    line,
                    format!(
                        "expectation {:?}: rules apply to the rows a job writes into {}, not to \
                         {} (its built-in checks are in `medallion quality`)",
                        raw.name,
                        rule_tables().join(", "),
                        table.name
                    ),
                ));
            };
            if !actions.contains(&raw.action) {
                return Err(bad(
                    line,
                    format!(
                        "expectation {:?}: {} rows are aggregates of silver's, so a rule on them \
                         can warn or fail, not {} (to leave readings out, put the rule on {})",
                        raw.name,
                        table.name,
                        raw.action.name(),
                        catalog::SILVER.name
                    ),
                ));
            }
            let valid_name = !raw.name.is_empty()
                && raw
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name {
                return Err(bad(
                    line,
                    format!(
                        "expectation name {:?}: use letters, digits, _ and - (it names the rule \
                         in the quarantine and the event log)",
                        raw.name
                    ),
                ));
            }
            if let Some(other) = rules
                .iter()
                .find(|r| r.table.name == table.name && r.name == raw.name)
            {
                return Err(bad(
                    line,
                    format!(
                        "expectation {:?} on {} is already defined at line {}",
                        raw.name, table.name, other.line
                    ),
                ));
            }
            let expr = compile(table, &raw.check)
                .map_err(|message| bad(line, format!("expectation {:?}: {message}", raw.name)))?;
            rules.push(Rule {
                table,
                name: raw.name,
                check: raw.check,
                action: raw.action,
                line,
                expr,
            });
        }
        Ok(Self { rules })
    }

    /// The rules of one table, in file order.
    pub fn of(&self, table: &Table) -> Vec<&Rule> {
        self.rules
            .iter()
            .filter(|r| r.table.name == table.name)
            .collect()
    }
}

fn rule_tables() -> Vec<&'static str> {
    catalog::TABLES
        .iter()
        .filter(|t| actions_of(t).is_some())
        .map(|t| t.name)
        .collect()
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> u64 {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
        + 1
}

/// Parse a check against a table's columns: it must be a boolean SQL expression over them.
fn compile(table: &Table, check: &str) -> std::result::Result<Expr, String> {
    let schema: SchemaRef = table.schema();
    let df_schema = DFSchema::try_from(Arc::unwrap_or_clone(schema.clone()))
        .map_err(|e| format!("cannot describe {}: {e}", table.name))?;
    let ctx = SessionContext::new();
    let expr = ctx.parse_sql_expr(check, &df_schema).map_err(|e| {
        format!(
            "check {check:?} is not a SQL expression over {}'s columns ({}): {e}",
            table.name,
            columns(&schema)
        )
    })?;
    // Time functions (`now()`) become the job's start time, as in a query.
    let simplify = SimplifyContext::builder()
        .with_schema(Arc::new(df_schema.clone()))
        .with_current_time()
        .build();
    let expr = ExprSimplifier::new(simplify)
        .simplify(expr)
        .map_err(|e| format!("check {check:?}: {e}"))?;
    let physical = ctx
        .create_physical_expr(expr.clone(), &df_schema)
        .map_err(|e| format!("check {check:?} cannot be evaluated on a row: {e}"))?;
    let kind = physical
        .data_type(&schema)
        .map_err(|e| format!("check {check:?}: {e}"))?;
    if kind != DataType::Boolean {
        return Err(format!(
            "check {check:?} is a {kind}, not a condition (true or false)"
        ));
    }
    Ok(expr)
}

fn columns(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The file `medallion init` writes: sensible `warn` rules for the lab's data, every action
/// explained.
pub const EXAMPLE: &str = r#"# medallion.toml: data-quality expectations (written by `medallion init`).
#
# Each [[expectation]] is a SQL condition over one table's columns that every row written
# should meet, and what happens to a row that does not (false or NULL):
#   warn        keep the row and count it (`medallion quality`, `medallion events`)
#   drop        leave it out of the table; it goes to fact_heartrate_silver_quarantine with
#               the rule's name as the error (never silently)
#   quarantine  the same, said explicitly
#   fail        stop the refresh before anything is committed (exit 1), naming the rule,
#               the count and a failing row
# Rules on fact_heartrate_silver take any action; rules on fact_heartrate_gold and
# fact_heartrate_daily warn or fail. A changed rule applies to the rows written after it;
# `medallion silver --full-refresh` applies the current rules to all of bronze.
#
# Columns:
#   fact_heartrate_silver  device_id, mrn, datetime, date, time, heartrate, patient_name
#   fact_heartrate_gold    patient_name, avg_heartrate, count, mrn, min_heartrate,
#                          max_heartrate, first_reading, last_reading
#   fact_heartrate_daily   mrn, date, avg_heartrate, min_heartrate, max_heartrate, count

# The lab's monitors report a device fault as a negative heart rate. The lab's gold counts
# them, so they are kept and counted; `action = "drop"` would leave them out of silver (and
# so out of gold).
[[expectation]]
table = "fact_heartrate_silver"
name = "no_device_fault"
check = "heartrate >= 0"
action = "warn"

# A reading (not a fault) outside what a human heart does.
[[expectation]]
table = "fact_heartrate_silver"
name = "physiological_heartrate"
check = "heartrate < 0 OR heartrate BETWEEN 20 AND 250"
action = "warn"

# A reading from the future is a clock fault.
[[expectation]]
table = "fact_heartrate_silver"
name = "not_in_the_future"
check = "datetime <= now()"
action = "warn"

# A patient's average over enough readings to mean something.
[[expectation]]
table = "fact_heartrate_gold"
name = "enough_readings"
check = "count >= 10"
action = "warn"
"#;

/// What `medallion init` did.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    pub path: PathBuf,
    pub rules: usize,
    pub replaced: bool,
}

impl crate::output::Report for InitReport {
    fn summary(&self) -> String {
        format!(
            "init: {} {} ({} rules, all warn; edit them, then `medallion silver` applies them)",
            if self.replaced { "replaced" } else { "wrote" },
            self.path.display(),
            self.rules
        )
    }
}

/// Write [`EXAMPLE`] to `path` (the default file if None); an existing file is kept unless
/// `force`.
pub fn init(path: Option<&Path>, force: bool) -> Result<InitReport> {
    let path = path.map_or_else(|| PathBuf::from(DEFAULT_FILE), Path::to_path_buf);
    let exists = path.symlink_metadata().is_ok();
    if exists && !force {
        return Err(Error::Usage(format!(
            "{} exists; `medallion init --force` replaces it",
            path.display()
        )));
    }
    let rules = Rules::parse(&path, EXAMPLE)?.rules.len();
    crate::atomic::write_atomically(&path, EXAMPLE.as_bytes())?;
    Ok(InitReport {
        path,
        rules,
        replaced: exists,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Rules> {
        Rules::parse(Path::new("medallion.toml"), text)
    }

    fn rule(table: &str, name: &str, check: &str, action: &str) -> String {
        format!(
            "[[expectation]]\ntable = {table:?}\nname = {name:?}\ncheck = {check:?}\naction = {action:?}\n\n"
        )
    }

    #[test]
    fn rules_are_read_with_their_table_action_and_line() {
        let text = format!(
            "# comment\n{}{}",
            rule(
                "fact_heartrate_silver",
                "positive",
                "heartrate >= 0",
                "drop"
            ),
            rule("fact_heartrate_gold", "enough", "count >= 10", "warn")
        );
        let rules = parse(&text).unwrap();
        let got: Vec<(&str, &str, Action, u64)> = rules
            .rules
            .iter()
            .map(|r| (r.table.name, r.name.as_str(), r.action, r.line))
            .collect();
        assert_eq!(
            got,
            [
                ("fact_heartrate_silver", "positive", Action::Drop, 2),
                ("fact_heartrate_gold", "enough", Action::Warn, 8)
            ]
        );
        assert_eq!(rules.of(&catalog::SILVER).len(), 1);
        assert!(parse("").unwrap().rules.is_empty());
    }

    #[test]
    fn the_example_file_parses_and_only_warns() {
        let rules = parse(EXAMPLE).unwrap();
        assert_eq!(rules.rules.len(), 4);
        assert!(rules.rules.iter().all(|r| r.action == Action::Warn));
    }

    #[test]
    fn a_bad_rule_is_an_error_naming_the_line() {
        let silver = "fact_heartrate_silver";
        let cases: Vec<(String, u64, &str)> = vec![
            (rule(silver, "x", "heartrat > 0", "warn"), 1, "heartrat"),
            (
                rule(silver, "x", "heartrate >", "warn"),
                1,
                "not a SQL expression",
            ),
            (
                rule(silver, "x", "heartrate + 1", "warn"),
                1,
                "not a condition",
            ),
            (rule(silver, "x", "heartrate > 0", "explode"), 5, "explode"),
            (
                rule("fact_heartrate_bronze", "x", "true", "warn"),
                1,
                "not to fact_heartrate_bronze",
            ),
            (rule("nope", "x", "true", "warn"), 1, "no table \"nope\""),
            (
                rule("fact_heartrate_gold", "x", "count > 0", "drop"),
                1,
                "warn or fail, not drop",
            ),
            (
                rule(silver, "two words", "true", "warn"),
                1,
                "letters, digits",
            ),
            (
                format!(
                    "{}{}",
                    rule(silver, "x", "true", "warn"),
                    rule(silver, "x", "true", "fail")
                ),
                7,
                "already defined at line 1",
            ),
            (
                "[[expectations]]\ntable = 1\n".to_string(),
                1,
                "expectations",
            ),
            (
                "[[expectation]]\ntable = \"fact_heartrate_silver\"\nname = \"x\"\n".to_string(),
                1,
                "missing field",
            ),
            ("[[expectation]\n".to_string(), 1, ""),
        ];
        for (text, line, needle) in cases {
            match parse(&text) {
                Err(Error::SourceParse {
                    line: Some(got),
                    message,
                    ..
                }) => {
                    assert_eq!(got, line, "{text}: {message}");
                    assert!(message.contains(needle), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}

//! Rules evaluated on the rows a job is about to write: each rule's passed and failed counts,
//! the rows that leave the table (and why), and the failure a `fail` rule makes of it. A row
//! passes a check only if the check is true: false and NULL fail.

use std::sync::Arc;

use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::datafusion::common::DFSchema;
use deltalake::datafusion::prelude::SessionContext;
use serde::Serialize;

use super::rules::{Action, Rule};
use crate::error::{Error, Result};

/// One rule's counts over the rows checked.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleCount {
    pub table: String,
    pub rule: String,
    /// The rule's action (`warn`, `drop`, `quarantine`, `fail`), or `built-in` for the checks
    /// every job makes (bronze's readable files, silver's typed rows, ...).
    pub action: String,
    pub check: String,
    pub passed: u64,
    pub failed: u64,
    /// The first failing row, as JSON (for the error of a `fail` rule and the event log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<serde_json::Value>,
}

impl RuleCount {
    /// A built-in check's counts.
    pub fn built_in(table: &str, rule: &str, check: &str, passed: u64, failed: u64) -> Self {
        Self {
            table: table.to_string(),
            rule: rule.to_string(),
            action: BUILT_IN.to_string(),
            check: check.to_string(),
            passed,
            failed,
            sample: None,
        }
    }
}

/// The action of a built-in check.
pub const BUILT_IN: &str = "built-in";

/// What the rules said about a set of batches.
#[derive(Debug, Default)]
pub struct Verdicts {
    pub counts: Vec<RuleCount>,
    /// Per batch, the rows that leave the table, each with its reason (the drop and
    /// quarantine rules it failed).
    pub removed: Vec<Vec<(usize, String)>>,
}

impl Verdicts {
    /// The error of the first `fail` rule that failed on a row, if one did.
    pub fn failure(&self) -> Option<Error> {
        let count = self
            .counts
            .iter()
            .find(|c| c.action == Action::Fail.name() && c.failed > 0)?;
        let sample = count
            .sample
            .as_ref()
            .map(|row| format!("; the first: {row}"))
            .unwrap_or_default();
        Some(Error::ExpectationFailed {
            table: count.table.clone(),
            rule: count.rule.clone(),
            message: format!(
                "{} of {} rows fail `{}`{sample}; nothing of this refresh was committed",
                count.failed,
                count.passed + count.failed,
                count.check
            ),
        })
    }
}

/// Add `more` (the same rules' counts over other rows) to `total`: an empty `total` takes
/// them; each rule keeps its first sample.
pub fn add_counts(total: &mut Vec<RuleCount>, more: Vec<RuleCount>) {
    if total.is_empty() {
        *total = more;
        return;
    }
    for (count, more) in total.iter_mut().zip(more) {
        count.passed += more.passed;
        count.failed += more.failed;
        if count.sample.is_none() {
            count.sample = more.sample;
        }
    }
}

/// Evaluate `rules` on `batches` (rows of the rules' table).
pub fn evaluate(rules: &[&Rule], batches: &[RecordBatch]) -> Result<Verdicts> {
    let mut verdicts = Verdicts {
        counts: rules
            .iter()
            .map(|r| RuleCount {
                table: r.table.name.to_string(),
                rule: r.name.clone(),
                action: r.action.name().to_string(),
                check: r.check.clone(),
                passed: 0,
                failed: 0,
                sample: None,
            })
            .collect(),
        removed: vec![Vec::new(); batches.len()],
    };
    if rules.is_empty() {
        return Ok(verdicts);
    }
    let ctx = SessionContext::new();
    for (b, batch) in batches.iter().enumerate() {
        let schema = batch.schema();
        let df_schema =
            DFSchema::try_from(Arc::unwrap_or_clone(schema.clone())).map_err(|e| Error::Arrow {
                context: format!("describe the rows checked by {}", rules[0].name),
                source: deltalake::arrow::error::ArrowError::SchemaError(e.to_string()),
            })?;
        let mut reasons: Vec<Option<String>> = vec![None; batch.num_rows()];
        for (r, rule) in rules.iter().enumerate() {
            let passed = passes(&ctx, &df_schema, rule, batch)?;
            let count = &mut verdicts.counts[r];
            for (row, reason) in reasons.iter_mut().enumerate() {
                if passed.value(row) && passed.is_valid(row) {
                    count.passed += 1;
                    continue;
                }
                count.failed += 1;
                if count.sample.is_none() {
                    count.sample = Some(row_json(batch, row)?);
                }
                if rule.action.removes() {
                    let why = format!(
                        "expectation {} ({}): `{}` is not true",
                        rule.name,
                        rule.action.name(),
                        rule.check
                    );
                    *reason = Some(match reason.take() {
                        Some(before) => format!("{before}; {why}"),
                        None => why,
                    });
                }
            }
        }
        verdicts.removed[b] = reasons
            .into_iter()
            .enumerate()
            .filter_map(|(row, reason)| reason.map(|r| (row, r)))
            .collect();
    }
    Ok(verdicts)
}

/// The rule's check on each row of the batch.
fn passes(
    ctx: &SessionContext,
    df_schema: &DFSchema,
    rule: &Rule,
    batch: &RecordBatch,
) -> Result<deltalake::arrow::array::BooleanArray> {
    let err = |e: deltalake::datafusion::error::DataFusionError| Error::Query {
        table: rule.table.name.to_string(),
        action: "check an expectation",
        source: Box::new(e),
    };
    let physical = ctx
        .create_physical_expr(rule.expr.clone(), df_schema)
        .map_err(err)?;
    let value = physical.evaluate(batch).map_err(err)?;
    let array = value.into_array(batch.num_rows()).map_err(err)?;
    Ok(array.as_boolean().clone())
}

/// One row of a batch as a JSON object (timestamps as RFC 3339).
fn row_json(batch: &RecordBatch, row: usize) -> Result<serde_json::Value> {
    let one = batch.slice(row, 1);
    let rows = crate::inspect::format::Rows::from_batches(&batch.schema(), &[one])?;
    let object = rows
        .columns
        .iter()
        .cloned()
        .zip(rows.rows.into_iter().next().unwrap_or_default())
        .collect::<serde_json::Map<_, _>>();
    Ok(serde_json::Value::Object(object))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use deltalake::arrow::array::TimestampMicrosecondArray;
    use deltalake::arrow::array::{Float64Array, Int32Array, Int64Array, StringArray};

    use super::super::rules::Rules;
    use super::*;
    use crate::catalog;

    fn silver_rows(rates: &[f64]) -> RecordBatch {
        let n = rates.len();
        RecordBatch::try_new(
            catalog::SILVER.schema(),
            vec![
                Arc::new(Int32Array::from(vec![1; n])),
                Arc::new(Int64Array::from_iter_values(0..n as i64)),
                Arc::new(TimestampMicrosecondArray::from(vec![0; n]).with_timezone("UTC")),
                Arc::new(StringArray::from(vec!["1970-01-01"; n])),
                Arc::new(StringArray::from(vec!["00:00:00"; n])),
                Arc::new(Float64Array::from(rates.to_vec())),
                Arc::new(StringArray::from(vec!["Ann"; n])),
            ],
        )
        .unwrap()
    }

    fn rules(list: &[(&str, &str, &str)]) -> Rules {
        let text: String = list
            .iter()
            .map(|(name, check, action)| {
                format!(
                    "[[expectation]]\ntable = \"fact_heartrate_silver\"\nname = {name:?}\n\
                     check = {check:?}\naction = {action:?}\n"
                )
            })
            .collect();
        Rules::parse(Path::new("m.toml"), &text).unwrap()
    }

    #[test]
    fn each_action_counts_and_removes_as_it_says() {
        // (rules, rates, expected (passed, failed) per rule, expected removed rows, fails)
        type Case<'a> = (
            &'a [(&'a str, &'a str, &'a str)],
            &'a [f64],
            &'a [(u64, u64)],
            &'a [usize],
            bool,
        );
        let cases: [Case<'_>; 6] = [
            (&[], &[1.0], &[], &[], false),
            (
                &[("pos", "heartrate >= 0", "warn")],
                &[-1.0, 5.0],
                &[(1, 1)],
                &[],
                false,
            ),
            (
                &[("pos", "heartrate >= 0", "drop")],
                &[-1.0, 5.0, -2.0],
                &[(1, 2)],
                &[0, 2],
                false,
            ),
            (
                &[("pos", "heartrate >= 0", "quarantine")],
                &[5.0],
                &[(1, 0)],
                &[],
                false,
            ),
            (
                &[("pos", "heartrate >= 0", "fail")],
                &[5.0, -1.0],
                &[(1, 1)],
                &[],
                true,
            ),
            (
                &[
                    ("pos", "heartrate >= 0", "drop"),
                    ("low", "heartrate < 100", "warn"),
                    ("named", "patient_name = 'Ann'", "fail"),
                ],
                &[-1.0, 150.0, 50.0],
                &[(2, 1), (2, 1), (3, 0)],
                &[0],
                false,
            ),
        ];
        for (list, rates, counts, removed, fails) in cases {
            let rules = rules(list);
            let batch = silver_rows(rates);
            let verdicts = evaluate(&rules.of(&catalog::SILVER), &[batch]).unwrap();
            let got: Vec<(u64, u64)> = verdicts
                .counts
                .iter()
                .map(|c| (c.passed, c.failed))
                .collect();
            assert_eq!(got, counts, "{list:?}");
            let gone: Vec<usize> = verdicts.removed[0].iter().map(|(r, _)| *r).collect();
            assert_eq!(gone, removed, "{list:?}");
            assert_eq!(verdicts.failure().is_some(), fails, "{list:?}");
        }
    }

    #[test]
    fn a_null_check_fails_and_a_failure_names_rule_count_and_row() {
        let rules = rules(&[("strict", "CASE WHEN heartrate > 0 THEN true END", "fail")]);
        let verdicts = evaluate(&rules.of(&catalog::SILVER), &[silver_rows(&[1.0, -3.5])]).unwrap();
        assert_eq!(
            (verdicts.counts[0].passed, verdicts.counts[0].failed),
            (1, 1)
        );
        let message = verdicts.failure().unwrap().to_string();
        for needle in ["strict", "1 of 2 rows", "-3.5", "nothing of this refresh"] {
            assert!(message.contains(needle), "{message}");
        }
    }

    #[test]
    fn counts_over_two_sets_of_rows_add_up_and_keep_the_first_sample() {
        let rules = rules(&[
            ("positive", "heartrate > 0", "fail"),
            ("any", "true", "warn"),
        ]);
        let rules = rules.of(&catalog::SILVER);
        let mut total = Vec::new();
        let parts: [&[f64]; 3] = [&[1.0, 2.0], &[-3.5, 4.0], &[-7.0]];
        for rates in parts {
            add_counts(
                &mut total,
                evaluate(&rules, &[silver_rows(rates)]).unwrap().counts,
            );
        }
        let got: Vec<(u64, u64)> = total.iter().map(|c| (c.passed, c.failed)).collect();
        assert_eq!(got, [(3, 2), (5, 0)]);
        let sample = total[0].sample.as_ref().unwrap().to_string();
        assert!(sample.contains("-3.5"), "{sample}");
        let all = evaluate(&rules, &[silver_rows(&[1.0, 2.0, -3.5, 4.0, -7.0])]).unwrap();
        let all: Vec<(u64, u64)> = all.counts.iter().map(|c| (c.passed, c.failed)).collect();
        assert_eq!(got, all, "the same as counting all rows at once");
    }
}

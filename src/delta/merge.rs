//! The one upsert every MERGE of the pipeline goes through (the patient dimension, silver's
//! readings and renames, gold and daily): rows of the source matched to the target on a key;
//! a matched row is updated only when a value changed, a new key inserted.
//!
//! "Changed" is NULL-aware (`IS DISTINCT FROM`: a value that becomes NULL, or stops being NULL,
//! changed), and for the columns named `approximate` (doubles computed by aggregation, whose
//! last bits depend on the order partitions finish in) relative to their size: closer than
//! [`FLOAT_TOLERANCE`] × (1 + |old| + |new|) is the same value. Every other column, readings
//! included, is compared exactly, so a re-delivery that changes a reading in its last digit
//! still wins.

use deltalake::DeltaTable;
use deltalake::datafusion::logical_expr::{Operator, binary_expr};
use deltalake::datafusion::prelude::{DataFrame, Expr, abs, col, lit};
use deltalake::kernel::transaction::CommitProperties;

use super::{TableId, record_transactions};
use crate::error::Result;

/// Doubles closer than this, relative to their size, are the same value computed in another
/// order.
pub const FLOAT_TOLERANCE: f64 = 1e-9;

/// What to merge, and how.
#[derive(Debug, Clone, Default)]
pub struct Upsert<'a> {
    /// The columns rows are matched on (the same names in source and target).
    pub key: &'a [&'a str],
    /// Columns a matched row takes from the source, when one of them changed.
    pub update: &'a [&'a str],
    /// Columns a source row whose key the target lacks is inserted with (empty: no insert).
    pub insert: &'a [&'a str],
    /// Of `update`, the doubles compared within [`FLOAT_TOLERANCE`] relative to their size.
    pub approximate: &'a [&'a str],
    /// A condition on the target rows that can match (e.g. a time range), which lets the
    /// MERGE skip the files that cannot.
    pub prune: Option<Expr>,
    /// The commit's properties (application transactions, metadata).
    pub props: CommitProperties,
    /// When nothing changed (no commit), record `props`' transactions in a commit of their own,
    /// so that the next run does not consume the same upstream versions again.
    pub record_unchanged: bool,
    /// What the MERGE does, for its errors ("merge" if empty).
    pub action: &'static str,
    /// A boolean column of the source: a source row where it is true deletes its key from the
    /// target (and is never inserted); the others are upserted as usual.
    pub delete_flag: Option<&'a str>,
}

/// What a MERGE did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Merged {
    pub source_rows: u64,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

/// The condition under which a matched row is updated: any of `update` changed.
pub fn changed(update: &[&str], approximate: &[&str]) -> Option<Expr> {
    update
        .iter()
        .map(|c| {
            let (t, s) = (col(format!("target.{c}")), col(format!("source.{c}")));
            if approximate.contains(c) {
                let scale = lit(1.0) + abs(t.clone()) + abs(s.clone());
                let far = abs(t.clone() - s.clone()).gt(lit(FLOAT_TOLERANCE) * scale);
                far.or(t.is_null().not_eq(s.is_null()))
            } else {
                binary_expr(t, Operator::IsDistinctFrom, s)
            }
        })
        .reduce(Expr::or)
}

/// MERGE `source` into `table` as `plan` says; returns the table at its new version (the same
/// one if nothing changed and nothing was recorded) and what changed.
pub async fn upsert(
    id: &TableId,
    table: DeltaTable,
    source: DataFrame,
    plan: Upsert<'_>,
) -> Result<(DeltaTable, Merged)> {
    let action = if plan.action.is_empty() {
        "merge"
    } else {
        plan.action
    };
    let keys = plan
        .key
        .iter()
        .map(|k| col(format!("target.{k}")).eq(col(format!("source.{k}"))));
    // A prune alone would match every row of the range to every source row: a key is needed.
    let Some(matches) = (!plan.key.is_empty())
        .then(|| keys.chain(plan.prune.clone()).reduce(Expr::and))
        .flatten()
    else {
        return Err(crate::error::Error::Refused {
            table: id.name.clone(),
            message: format!("it has no key to {action} on"),
        });
    };
    let before = table.version();
    let mut builder = table
        .merge(source, matches)
        .with_session_state(super::query::plain_strings_session())
        .with_source_alias("source")
        .with_target_alias("target")
        // No retry: deltalake would not see a compaction's removes (`delta::rewrite`).
        .with_commit_properties(
            plan.props
                .clone()
                .with_max_retries(super::rewrite::NO_RETRY),
        );
    let kept = plan
        .delete_flag
        .map(|flag| Expr::Not(Box::new(col(format!("source.{flag}")))));
    if let Some(flag) = plan.delete_flag {
        builder = builder
            .when_matched_delete(|d| d.predicate(col(format!("source.{flag}"))))
            .map_err(id.err(action))?;
    }
    if let Some(changed) = changed(plan.update, plan.approximate) {
        let changed = match &kept {
            Some(kept) => kept.clone().and(changed),
            None => changed,
        };
        builder = builder
            .when_matched_update(|u| {
                plan.update.iter().fold(u.predicate(changed), |u, c| {
                    u.update(*c, col(format!("source.{c}")))
                })
            })
            .map_err(id.err(action))?;
    }
    if !plan.insert.is_empty() {
        builder = builder
            .when_not_matched_insert(|i| {
                let i = match &kept {
                    Some(kept) => i.predicate(kept.clone()),
                    None => i,
                };
                plan.insert
                    .iter()
                    .fold(i, |i, c| i.set(*c, col(format!("source.{c}"))))
            })
            .map_err(id.err(action))?;
    }
    let (table, metrics) = builder.await.map_err(id.err(action))?;
    let table = if plan.record_unchanged && table.version() == before {
        record_transactions(id, table, plan.props).await?
    } else {
        table
    };
    Ok((
        table,
        Merged {
            source_rows: metrics.num_source_rows as u64,
            inserted: metrics.num_target_rows_inserted as u64,
            updated: metrics.num_target_rows_updated as u64,
            deleted: metrics.num_target_rows_deleted as u64,
        },
    ))
}

/// The columns of `schema` that are not in `key`, in order.
pub fn values<'a>(schema: &'a deltalake::arrow::datatypes::Schema, key: &[&str]) -> Vec<&'a str> {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| !key.contains(n))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use deltalake::datafusion::prelude::SessionContext;

    use super::*;
    use crate::catalog::Table;
    use crate::warehouse::Warehouse;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("t", DataType::Utf8, true),
            Field::new("x", DataType::Float64, true),
        ]))
    }

    const T: Table = Table {
        name: "t",
        writer: "test",
        description: "upsert test",
        key: &["k"],
        properties: &[],
        plain_columns: &[],
        schema,
    };

    type Row = (i64, Option<&'static str>, Option<f64>);

    fn batch(rows: &[Row]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
                Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap()
    }

    fn rows(batches: &[RecordBatch]) -> Vec<(i64, Option<String>, Option<f64>)> {
        let mut rows = Vec::new();
        for b in batches {
            let (k, t, x) = (
                crate::delta::int64s(b, "k").unwrap(),
                crate::delta::strings(b, "t").unwrap(),
                crate::delta::float64s(b, "x").unwrap(),
            );
            for i in 0..b.num_rows() {
                rows.push((
                    k.value(i),
                    t.is_valid(i).then(|| t.value(i).to_string()),
                    x.is_valid(i).then(|| x.value(i)),
                ));
            }
        }
        rows.sort_by_key(|r| r.0);
        rows
    }

    /// (previous rows, incoming rows, expected rows, inserted, updated): a row is updated only
    /// when a value changed, NULLs included; `x` is approximate (relative to its size).
    #[tokio::test]
    async fn upsert_inserts_new_keys_and_updates_only_changed_rows() {
        type Case = (&'static [Row], &'static [Row], &'static [Row], u64, u64);
        let cases: [Case; 6] = [
            (
                &[],
                &[(1, Some("a"), Some(1.0))],
                &[(1, Some("a"), Some(1.0))],
                1,
                0,
            ),
            (
                &[(1, Some("a"), Some(1.0))],
                &[(1, Some("a"), Some(1.0))],
                &[(1, Some("a"), Some(1.0))],
                0,
                0,
            ),
            (
                &[(1, Some("a"), Some(1.0))],
                &[(1, Some("b"), Some(1.0))],
                &[(1, Some("b"), Some(1.0))],
                0,
                1,
            ),
            (
                &[(1, Some("a"), None)],
                &[(1, Some("a"), Some(0.0))],
                &[(1, Some("a"), Some(0.0))],
                0,
                1,
            ),
            (
                &[(1, None, Some(2.0))],
                &[(1, None, Some(2.0)), (2, None, None)],
                &[(1, None, Some(2.0)), (2, None, None)],
                1,
                0,
            ),
            // 1e12 and 1e12 + 0.1 are one aggregate added in two orders: left alone.
            (
                &[(1, Some("a"), Some(1e12))],
                &[(1, Some("a"), Some(1e12 + 0.1))],
                &[(1, Some("a"), Some(1e12))],
                0,
                0,
            ),
        ];
        for (i, (previous, incoming, expected, inserted, updated)) in cases.into_iter().enumerate()
        {
            let dir = tempfile::tempdir().unwrap();
            let warehouse = Warehouse::local(dir.path()).unwrap();
            let id = TableId::of(&warehouse, &T);
            let mut table = crate::delta::create(&id, &T, &[]).await.unwrap();
            if !previous.is_empty() {
                table = table.write(vec![batch(previous)]).await.unwrap();
            }
            let ctx = SessionContext::new();
            let source = ctx.read_batch(batch(incoming)).unwrap();
            let before = table.version();
            let (table, merged) = upsert(
                &id,
                table,
                source,
                Upsert {
                    key: T.key,
                    update: &["t", "x"],
                    insert: &["k", "t", "x"],
                    approximate: &["x"],
                    ..Upsert::default()
                },
            )
            .await
            .unwrap();
            assert_eq!(
                (merged.inserted, merged.updated),
                (inserted, updated),
                "case {i}"
            );
            assert_eq!(
                table.version() != before,
                inserted + updated > 0,
                "case {i}"
            );
            let got = rows(&crate::delta::read_all(&id, &table).await.unwrap());
            let want: Vec<_> = expected
                .iter()
                .map(|(k, t, x)| (*k, t.map(str::to_string), *x))
                .collect();
            assert_eq!(got, want, "case {i}");
        }
    }

    /// A source row flagged for deletion removes its key and is never inserted; the other rows
    /// are upserted as usual.
    #[tokio::test]
    async fn a_flagged_source_row_deletes_its_key_and_is_not_inserted() {
        use deltalake::arrow::array::BooleanArray;
        let dir = tempfile::tempdir().unwrap();
        let warehouse = Warehouse::local(dir.path()).unwrap();
        let id = TableId::of(&warehouse, &T);
        let table = crate::delta::create(&id, &T, &[]).await.unwrap();
        let table = table
            .write(vec![batch(&[(1, Some("a"), None), (2, Some("b"), None)])])
            .await
            .unwrap();
        // 1: flagged and held (deleted); 2: changed (updated); 3: flagged, not held (nothing);
        // 4: new (inserted).
        let incoming = batch(&[
            (1, Some("a"), None),
            (2, Some("c"), None),
            (3, Some("x"), None),
            (4, Some("d"), None),
        ]);
        let mut columns = incoming.columns().to_vec();
        columns.push(Arc::new(BooleanArray::from(vec![true, false, true, false])));
        let mut fields: Vec<Field> = schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("gone", DataType::Boolean, false));
        let flagged = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let source = SessionContext::new().read_batch(flagged).unwrap();
        let (table, merged) = upsert(
            &id,
            table,
            source,
            Upsert {
                key: T.key,
                update: &["t", "x"],
                insert: &["k", "t", "x"],
                delete_flag: Some("gone"),
                ..Upsert::default()
            },
        )
        .await
        .unwrap();
        assert_eq!((merged.inserted, merged.updated, merged.deleted), (1, 1, 1));
        let got = rows(&crate::delta::read_all(&id, &table).await.unwrap());
        assert_eq!(
            got,
            [
                (2, Some("c".to_string()), None),
                (4, Some("d".to_string()), None)
            ]
        );
    }
}

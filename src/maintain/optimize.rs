//! `medallion optimize TABLE`: bin-pack a table's small files into larger ones, as Delta's
//! OPTIMIZE does: one commit whose `add`s and `remove`s carry `dataChange=false`.
//!
//! Nothing a reader can see changes, so nothing downstream does either: silver's incremental
//! read of bronze takes only `add`s with `dataChange=true` (a compaction's files hold no new
//! rows), and gold reads silver's change data feed, which has no rows for such a commit. A
//! compaction commits through deltalake's conflict checker with retries: a blind append (the
//! bronze stream) meanwhile does not conflict with it, and the stream's own commit path reads
//! a compaction it missed as "someone else's commit that changes nothing of ours". A MERGE
//! that rewrote one of the compacted files meanwhile makes the compaction lose (exit 3, rerun),
//! never the MERGE.
//!
//! deltalake does the bin-packing, the reading and the writing; this module decides whether
//! there is anything to do, which files a `--where` selects, and reports what changed.

use std::time::Instant;

use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::Add;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::protocol::DeltaOperation;
use deltalake::writer::DeltaWriter;
use deltalake::{FilterOp, FilterValue};
use futures::TryStreamExt;
use serde::Serialize;

use crate::delta::TableId;
use crate::delta::files::{self, Read};
use crate::delta::rewrite::{self, Rewrite};
use crate::error::{Error, Result};
use crate::failpoint::{failpoint, points};
use crate::output::Report;

use super::splice;

/// Delta's default target file size for OPTIMIZE.
pub const DEFAULT_TARGET_SIZE: u64 = 128 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct OptimizeOptions {
    /// Files at or above this size are left alone; smaller ones are packed up to it.
    pub target_size: u64,
    /// Only files whose statistics say they may hold a row matching this (comparisons of a
    /// column with a literal, joined by AND).
    pub filter: Option<String>,
    /// Files at or above this size are left alone too (`optimize`: the target size).
    pub small_below: u64,
    /// Decode and re-encode every bin, even one whose row groups could be copied.
    pub rewrite: bool,
}

impl Default for OptimizeOptions {
    fn default() -> Self {
        Self {
            target_size: DEFAULT_TARGET_SIZE,
            filter: None,
            small_below: DEFAULT_TARGET_SIZE,
            rewrite: false,
        }
    }
}

impl OptimizeOptions {
    /// `optimize`: every file under `target_size` may be packed.
    pub fn to_target(target_size: u64, filter: Option<String>) -> Self {
        Self {
            target_size,
            filter,
            small_below: target_size,
            rewrite: false,
        }
    }

    /// A stream's auto-compaction: files packed up to the target, but only files under a
    /// quarter of it are taken, so a file an earlier compaction wrote is copied again at most
    /// until it passes 32 MiB, not every time until 128 MiB (without this, x100's bronze
    /// spent 10 s of 21 copying its growing compacted file over and over).
    pub fn auto() -> Self {
        Self {
            small_below: DEFAULT_TARGET_SIZE / 4,
            ..Self::default()
        }
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Serialize)]
pub struct OptimizeReport {
    pub table: String,
    pub version_before: u64,
    /// The compaction's commit, if there was anything to compact.
    pub version_after: Option<u64>,
    pub files_before: usize,
    pub files_after: usize,
    pub bytes_before: i64,
    pub bytes_after: i64,
    /// Files the compaction read and removed (`dataChange=false`), and the ones it wrote.
    pub files_removed: u64,
    pub files_added: u64,
    pub bytes_removed: i64,
    pub bytes_added: i64,
    /// Of `files_removed`, those joined by copying their row groups (no decoding).
    pub files_spliced: u64,
    pub target_size: u64,
    pub filter: Option<String>,
    pub millis: u64,
}

impl Report for OptimizeReport {
    fn summary(&self) -> String {
        match self.version_after {
            Some(version) => format!(
                "optimize: {} v{version}: {} small files ({}) compacted into {} ({}) in {:.1} s{}; \
                 the table has {} files ({}) (dataChange=false: no downstream change)",
                self.table,
                self.files_removed,
                human_bytes(self.bytes_removed),
                self.files_added,
                human_bytes(self.bytes_added),
                self.millis as f64 / 1000.0,
                match self.files_spliced {
                    0 => String::new(),
                    n if n == self.files_removed => " (row groups copied, nothing decoded)".into(),
                    n => format!(" ({n} of them by copying row groups, the rest decoded)"),
                },
                self.files_after,
                human_bytes(self.bytes_after)
            ),
            None => format!(
                "optimize: {} v{}: nothing to compact ({} files, {}; fewer than two under {})",
                self.table,
                self.version_before,
                self.files_before,
                human_bytes(self.bytes_before),
                human_bytes(self.target_size as i64)
            ),
        }
    }
}

/// A byte count as people read it (`1.4 MiB`).
pub fn human_bytes(bytes: i64) -> String {
    bytesize::ByteSize::b(bytes.max(0) as u64)
        .display()
        .iec()
        .to_string()
}

/// The decision: which files go together. Files (in the order given: oldest first) under the
/// target are packed greedily, in that order, into bins of at most `target_size` bytes; a
/// bin of one file has nothing to be packed with and is dropped. Returns indices into `sizes`.
pub fn plan_bins(sizes: &[i64], target_size: u64, small_below: u64) -> Vec<Vec<usize>> {
    let target = target_size as i64;
    let small = small_below.min(target_size) as i64;
    let mut bins = Vec::new();
    let mut bin: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if size >= small {
            continue;
        }
        if !bin.is_empty() && bytes + size > target {
            bins.push(std::mem::take(&mut bin));
            bytes = 0;
        }
        bin.push(i);
        bytes += size;
    }
    bins.push(bin);
    bins.retain(|b| b.len() >= 2);
    bins
}

/// A data file of the snapshot, as a compaction reads and removes it.
fn as_add(file: &deltalake::kernel::LogicalFileView) -> Add {
    Add {
        path: file.path().to_string(),
        size: file.size(),
        modification_time: file.modification_time(),
        data_change: false,
        stats: file.stats(),
        partition_values: Default::default(),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    }
}

/// Compact `table`'s small files (those the filter selects), as one commit.
pub async fn run(
    id: &TableId,
    table: DeltaTable,
    options: &OptimizeOptions,
) -> Result<OptimizeReport> {
    let started = Instant::now();
    let version_before = table.version().unwrap_or(0);
    let (files_before, bytes_before, _) = files_of(&table);
    let mut report = OptimizeReport {
        table: id.name.clone(),
        version_before,
        version_after: None,
        files_before,
        files_after: files_before,
        bytes_before,
        bytes_after: bytes_before,
        files_removed: 0,
        files_added: 0,
        bytes_removed: 0,
        bytes_added: 0,
        files_spliced: 0,
        target_size: options.target_size,
        filter: options.filter.clone(),
        millis: 0,
    };
    if options.target_size == 0 || options.target_size > i64::MAX as u64 {
        return Err(Error::Usage(
            "--target-size must be more than 0 bytes and under 8 EiB".into(),
        ));
    }
    let snapshot = table.snapshot().map_err(id.err("read"))?;
    // A partitioned table's partition values live in the log, not in its Parquet: a file
    // rewritten from its Parquet would lose them. None of the pipeline's tables is partitioned.
    if !snapshot.metadata().partition_columns().is_empty() {
        return Err(Error::Refused {
            table: id.name.clone(),
            message: "it is partitioned: optimize compacts unpartitioned tables only (it would \
                      rewrite files without their partition values)"
                .into(),
        });
    }
    let columns: Vec<String> = snapshot
        .schema()
        .fields()
        .map(|f| f.name().clone())
        .collect();
    let predicate = match &options.filter {
        Some(text) => {
            let mut filter = parse_filter(text, &columns)?;
            // A timestamp as people write it (`'2024-01-01'`, `'2024-01-01 12:00'`, UTC), as
            // `show --as-of` takes it: the statistics' comparison wants RFC 3339.
            for comparison in &mut filter {
                let timestamp = snapshot
                    .schema()
                    .field(&comparison.column)
                    .is_some_and(|f| {
                        matches!(
                            f.data_type(),
                            deltalake::kernel::DataType::Primitive(
                                deltalake::kernel::PrimitiveType::Timestamp
                                    | deltalake::kernel::PrimitiveType::TimestampNtz
                            )
                        )
                    });
                if timestamp {
                    for value in &mut comparison.values {
                        *value = timestamp_literal(value);
                    }
                }
            }
            let literals: Vec<(&str, FilterOp, FilterValue<'_>)> = filter
                .iter()
                .map(|c| (c.column.as_str(), c.op, c.value()))
                .collect();
            let predicate =
                deltalake::conjunction_to_kernel_predicate(&literals, snapshot.schema().as_ref())
                    .map_err(|e| {
                    let hint = if e.to_string().contains("timestamp") {
                        " (write a timestamp as '2024-01-01', '2024-01-01 12:00:00' (UTC) \
                             or RFC 3339)"
                    } else {
                        ""
                    };
                    Error::Usage(format!("--where {text:?}: {e}{hint}"))
                })?;
            Some(std::sync::Arc::new(predicate))
        }
        None => None,
    };
    let log_store = table.log_store();
    let mut files: Vec<Add> = snapshot
        .snapshot()
        .file_views(log_store.as_ref(), predicate)
        .map_ok(|f| as_add(&f))
        .try_collect()
        .await
        .map_err(id.err("list the files"))?;
    files.sort_by(|a, b| (a.modification_time, &a.path).cmp(&(b.modification_time, &b.path)));
    let sizes: Vec<i64> = files.iter().map(|f| f.size).collect();
    let bins = plan_bins(&sizes, options.target_size, options.small_below);
    if bins.is_empty() {
        report.millis = started.elapsed().as_millis() as u64;
        return Ok(report);
    }

    // Each bin read file by file into one new file; one commit for all of them.
    let schema = table_schema(id, &table)?;
    let mut replaced = Vec::new();
    let mut added = Vec::new();
    let store = log_store.object_store(None);
    for bin in &bins {
        let bin_files: Vec<Add> = bin.iter().map(|&i| files[i].clone()).collect();
        // Files of one schema: their row groups copied as they are, nothing decoded.
        let spliced = match options.rewrite {
            true => None,
            false => splice::splice(id, store.as_ref(), &bin_files, &schema).await?,
        };
        if let Some(add) = spliced {
            report.files_spliced += bin_files.len() as u64;
            added.push(add);
            replaced.extend(bin_files);
            continue;
        }
        let mut writer = deltalake::writer::RecordBatchWriter::for_table(&table)
            .map_err(id.err("write Parquet"))?;
        for file in &bin_files {
            let read = files::read(id, &table, vec![file.clone()]).await?;
            for (add, read) in read {
                match read {
                    Read::Rows(batches) => {
                        for batch in batches {
                            let batch = conform_with_nulls(&batch, &schema)?;
                            writer.write(batch).await.map_err(id.err("write Parquet"))?;
                        }
                    }
                    Read::Gone => {
                        return Err(Error::FileMissing {
                            table: id.name.clone(),
                            path: add.path,
                        });
                    }
                }
            }
        }
        added.extend(writer.flush().await.map_err(id.err("write Parquet"))?);
        replaced.extend(bin_files);
    }
    report.files_removed = replaced.len() as u64;
    report.bytes_removed = replaced.iter().map(|a| a.size).sum();
    report.files_added = added.len() as u64;
    report.bytes_added = added.iter().map(|a| a.size).sum();
    let metrics = serde_json::json!({
        "numRemovedFiles": report.files_removed.to_string(),
        "numAddedFiles": report.files_added.to_string(),
        "numRemovedBytes": report.bytes_removed.to_string(),
        "numAddedBytes": report.bytes_added.to_string(),
    });
    let operation = DeltaOperation::Optimize {
        predicate: options.filter.clone(),
        target_size: options.target_size as i64,
    };
    failpoint(points::OPTIMIZE_BEFORE_COMMIT);
    let written: Vec<String> = added.iter().map(|a| a.path.clone()).collect();
    let committed = rewrite::commit(
        id,
        &log_store,
        version_before,
        Rewrite {
            replaced,
            added,
            operation,
            info: [("operationMetrics".to_string(), metrics)].into(),
        },
    )
    .await;
    let version = match committed {
        Ok(version) => version,
        Err(e @ Error::Conflict { .. }) => {
            // Lost: nothing names the files written, delete them (not left for vacuum).
            let store = log_store.object_store(None);
            for path in written {
                if let Ok(path) = deltalake::Path::from_url_path(&path) {
                    let _ = store.delete(&path).await;
                }
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let files_after =
        report.files_before as i64 - report.files_removed as i64 + report.files_added as i64;
    report.files_after = files_after.max(0) as usize;
    report.bytes_after = report.bytes_before - report.bytes_removed + report.bytes_added;
    report.version_after = Some(version);
    report.millis = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// The table's columns as Arrow (a batch read back from an older file may lack a column added
/// since: it is filled with nulls).
fn table_schema(id: &TableId, table: &DeltaTable) -> Result<SchemaRef> {
    use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
    let schema = table.snapshot().map_err(id.err("read"))?.schema();
    let arrow: deltalake::arrow::datatypes::Schema =
        schema.as_ref().try_into_arrow().map_err(|e| Error::Arrow {
            context: format!("table {}: schema", id.name),
            source: e,
        })?;
    Ok(std::sync::Arc::new(arrow))
}

fn conform_with_nulls(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(column) => deltalake::arrow::compute::cast(column, f.data_type()),
            None => Ok(deltalake::arrow::array::new_null_array(
                f.data_type(),
                batch.num_rows(),
            )),
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .and_then(|columns| RecordBatch::try_new(schema.clone(), columns))
        .map_err(|e| Error::Arrow {
            context: "conform a file's rows to the table's schema".into(),
            source: e,
        })?;
    Ok(columns)
}

/// Files, bytes and each file's size in a table's current version.
fn files_of(table: &DeltaTable) -> (usize, i64, Vec<i64>) {
    let Ok(snapshot) = table.snapshot() else {
        return (0, 0, Vec::new());
    };
    let sizes: Vec<i64> = snapshot.log_data().iter().map(|f| f.size()).collect();
    (sizes.len(), sizes.iter().sum(), sizes)
}

/// A timestamp literal in RFC 3339 (UTC): a date is its midnight, a date and time without a
/// zone is UTC; anything else is left as written (the kernel then says what is wrong).
fn timestamp_literal(text: &str) -> String {
    use chrono::{NaiveDate, NaiveDateTime, SecondsFormat};
    if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
        return text.to_string();
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    });
    naive.map_or_else(
        || text.to_string(),
        |t| t.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true),
    )
}

/// One comparison of `--where`, as deltalake's file filters take it.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub column: String,
    pub op: FilterOp,
    pub values: Vec<String>,
}

impl Comparison {
    fn value(&self) -> FilterValue<'_> {
        match self.op {
            FilterOp::In | FilterOp::NotIn => {
                FilterValue::Set(self.values.iter().map(String::as_str).collect())
            }
            _ => FilterValue::Scalar(&self.values[0]),
        }
    }
}

/// `--where`: comparisons of a column with a literal (`=`, `!=`, `<`, `<=`, `>`, `>=`,
/// `IN (...)`, `NOT IN (...)`), joined by `AND`. They select files by their statistics, so
/// nothing else (OR, functions, two columns) can be used; anything else is refused, saying so.
pub fn parse_filter(text: &str, columns: &[String]) -> Result<Vec<Comparison>> {
    use deltalake::datafusion::sql::sqlparser::dialect::GenericDialect;
    use deltalake::datafusion::sql::sqlparser::parser::Parser;
    let usage = |why: String| {
        Error::Usage(format!(
            "--where {text:?}: {why}; it takes comparisons of a column with a literal \
             (=, !=, <, <=, >, >=, IN (...), NOT IN (...)) joined by AND, which select files \
             by their statistics"
        ))
    };
    let expr = Parser::new(&GenericDialect {})
        .try_with_sql(text)
        .and_then(|mut p| {
            let e = p.parse_expr()?;
            p.expect_token(&deltalake::datafusion::sql::sqlparser::tokenizer::Token::EOF)?;
            Ok(e)
        })
        .map_err(|e| usage(format!("does not parse ({e})")))?;
    let mut found = Vec::new();
    collect(&expr, columns, &mut found).map_err(usage)?;
    Ok(found)
}

fn collect(
    expr: &deltalake::datafusion::sql::sqlparser::ast::Expr,
    columns: &[String],
    found: &mut Vec<Comparison>,
) -> std::result::Result<(), String> {
    use deltalake::datafusion::sql::sqlparser::ast::{BinaryOperator as B, Expr};
    let column = |e: &Expr| -> std::result::Result<String, String> {
        let name = match e {
            Expr::Identifier(i) => i.value.clone(),
            other => return Err(format!("`{other}` is not a column name")),
        };
        if columns.contains(&name) {
            Ok(name)
        } else {
            Err(format!(
                "the table has no column {name:?} (its columns: {})",
                columns.join(", ")
            ))
        }
    };
    match expr {
        Expr::Nested(inner) => collect(inner, columns, found),
        Expr::BinaryOp {
            left,
            op: B::And,
            right,
        } => {
            collect(left, columns, found)?;
            collect(right, columns, found)
        }
        Expr::BinaryOp { left, op, right } => {
            let op = match op {
                B::Eq => FilterOp::Eq,
                B::NotEq => FilterOp::Ne,
                B::Lt => FilterOp::Lt,
                B::LtEq => FilterOp::Le,
                B::Gt => FilterOp::Gt,
                B::GtEq => FilterOp::Ge,
                other => return Err(format!("`{other}` is not one of the comparisons")),
            };
            found.push(Comparison {
                column: column(left)?,
                op,
                values: vec![literal(right)?],
            });
            Ok(())
        }
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            found.push(Comparison {
                column: column(expr)?,
                op: if *negated {
                    FilterOp::NotIn
                } else {
                    FilterOp::In
                },
                values: list
                    .iter()
                    .map(literal)
                    .collect::<std::result::Result<_, _>>()?,
            });
            Ok(())
        }
        other => Err(format!(
            "`{other}` is not a comparison of a column with a literal"
        )),
    }
}

fn literal(
    expr: &deltalake::datafusion::sql::sqlparser::ast::Expr,
) -> std::result::Result<String, String> {
    use deltalake::datafusion::sql::sqlparser::ast::{Expr, UnaryOperator, Value};
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Ok(n.clone()),
            Value::SingleQuotedString(s) => Ok(s.clone()),
            Value::Boolean(b) => Ok(b.to_string()),
            other => Err(format!("`{other}` is not a number or a 'quoted' text")),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => literal(expr).map(|n| format!("-{n}")),
        other => Err(format!("`{other}` is not a literal")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<String> {
        ["mrn", "heartrate", "datetime"]
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    #[test]
    fn small_files_are_packed_in_order_up_to_the_target() {
        // (sizes, target, small below, bins)
        type Case<'a> = (&'a [i64], u64, u64, &'a [&'a [usize]]);
        let cases: &[Case] = &[
            (&[], 128, 128, &[]),
            (&[10], 128, 128, &[]),
            (&[10, 20], 128, 128, &[&[0, 1]]),
            (&[10, 200, 300], 128, 128, &[]),
            (&[10, 200, 20], 128, 128, &[&[0, 2]]),
            (&[128, 129], 128, 128, &[]),
            (&[60, 60, 60, 60, 60], 128, 128, &[&[0, 1], &[2, 3]]),
            (&[100, 20, 10, 100], 128, 128, &[&[0, 1], &[2, 3]]),
            (&[1, 1, 1, 1], 1000, 1000, &[&[0, 1, 2, 3]]),
            // Auto-compaction: a file past a quarter of the target is not taken again.
            (&[40, 10, 10, 31], 128, 32, &[&[1, 2, 3]]),
            (&[31, 10, 10], 128, 32, &[&[0, 1, 2]]),
            // A threshold above the target is the target.
            (&[100, 100, 100], 128, 1000, &[]),
        ];
        for (sizes, target, small, expected) in cases {
            let expected: Vec<Vec<usize>> = expected.iter().map(|b| b.to_vec()).collect();
            assert_eq!(
                plan_bins(sizes, *target, *small),
                expected,
                "{sizes:?} under {target}, small below {small}"
            );
        }
    }

    #[test]
    fn a_timestamp_literal_is_taken_as_people_write_it_in_utc() {
        let cases = [
            ("2024-01-01", "2024-01-01T00:00:00Z"),
            ("2024-01-01 12:30", "2024-01-01T12:30:00Z"),
            ("2024-01-01 12:30:05.25", "2024-01-01T12:30:05.250Z"),
            ("2024-01-01T12:30:05", "2024-01-01T12:30:05Z"),
            ("2024-01-01T12:30:05+02:00", "2024-01-01T12:30:05+02:00"),
            ("yesterday", "yesterday"),
        ];
        for (text, expected) in cases {
            assert_eq!(timestamp_literal(text), expected, "{text}");
        }
    }

    #[test]
    fn where_takes_comparisons_joined_by_and() {
        type Case<'a> = (&'a str, &'a [(&'a str, FilterOp, &'a [&'a str])]);
        let cases: &[Case] = &[
            ("mrn = '123'", &[("mrn", FilterOp::Eq, &["123"])]),
            (
                "heartrate >= -5 AND (datetime < '2024-01-01')",
                &[
                    ("heartrate", FilterOp::Ge, &["-5"]),
                    ("datetime", FilterOp::Lt, &["2024-01-01"]),
                ],
            ),
            (
                "mrn NOT IN ('1', '2')",
                &[("mrn", FilterOp::NotIn, &["1", "2"])],
            ),
        ];
        for (text, expected) in cases {
            let parsed = parse_filter(text, &columns()).unwrap();
            let got: Vec<(&str, FilterOp, Vec<&str>)> = parsed
                .iter()
                .map(|c| {
                    (
                        c.column.as_str(),
                        c.op,
                        c.values.iter().map(String::as_str).collect(),
                    )
                })
                .collect();
            let want: Vec<(&str, FilterOp, Vec<&str>)> = expected
                .iter()
                .map(|(c, op, v)| (*c, *op, v.to_vec()))
                .collect();
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn where_refuses_what_statistics_cannot_select_by() {
        let cases = [
            ("mrn = '1' OR mrn = '2'", "is not one of the comparisons"),
            ("upper(mrn) = 'A'", "is not a column name"),
            ("nope = 1", "has no column \"nope\""),
            ("mrn = heartrate", "is not a literal"),
            ("mrn = ", "does not parse"),
            ("mrn = '1'; DROP TABLE x", "does not parse"),
        ];
        for (text, says) in cases {
            let e = parse_filter(text, &columns()).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}

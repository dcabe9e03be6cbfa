//! Compaction without decoding: small Parquet files of one schema joined into one file by
//! copying their row groups' bytes as they are (pages, dictionaries, statistics, page indexes),
//! with a new footer. Nothing is decoded, decompressed or re-encoded, so packing a hundred
//! stream files costs about what reading their bytes costs (measured in the issue 17 note).
//!
//! The new file's Delta statistics are those of its sources, combined (rows and null counts
//! added, the least minimum and the greatest maximum of each column): every source's bounds
//! hold for its rows, so the combined ones hold for all of them. A column whose bounds cannot
//! be combined (missing in a source, or not a scalar) gets none, which only costs data
//! skipping.
//!
//! Files that cannot be joined this way (their Parquet schemas differ, their columns are not
//! the table's, a source has no statistics) are left to [`super::optimize`]'s decoding path:
//! [`splice`] says so with `None`.

use std::cmp::Ordering;
use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Schema};
use deltalake::kernel::Add;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::parquet::arrow::parquet_to_arrow_schema;
use deltalake::parquet::column::writer::ColumnCloseResult;
use deltalake::parquet::file::metadata::{
    KeyValue, PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader,
};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::file::writer::SerializedFileWriter;
use serde_json::{Map, Value};

use crate::delta::TableId;
use crate::error::{Error, Result};

/// One source file, read whole, with its footer.
struct Source {
    bytes: bytes::Bytes,
    metadata: ParquetMetaData,
}

/// Join `files` (of `id`, in this order) into one new file in the table's folder, or `None`
/// if they cannot be joined without decoding. The returned `add` has `dataChange=false`.
pub async fn splice(
    id: &TableId,
    store: &dyn deltalake::ObjectStore,
    files: &[Add],
    schema: &Schema,
) -> Result<Option<Add>> {
    if files.len() < 2 || files.iter().any(|f| f.stats.is_none()) {
        return Ok(None);
    }
    let Some(stats) = combined_stats(files, schema) else {
        return Ok(None);
    };
    // One source in memory at a time, beside the new file being written. Anything the copy
    // cannot do (a layout it does not take, a footer or page index it cannot read, a limit of
    // the format) leaves the bin to the decoding path, which reads the files as a reader does.
    let Some(first) = read(id, store, &files[0]).await? else {
        return Ok(None);
    };
    if !copyable(&first.metadata) || !joinable(&first.metadata, schema) {
        return Ok(None);
    }
    let size = files.iter().map(|f| f.size.max(0) as usize).sum();
    let Ok(mut joined) = Joined::new(&first.metadata, size) else {
        return Ok(None);
    };
    if joined.append(&first).is_err() {
        return Ok(None);
    }
    let expected = first.metadata;
    for add in &files[1..] {
        let Some(source) = read(id, store, add).await? else {
            return Ok(None);
        };
        if !same_layout(&source.metadata, &expected) || joined.append(&source).is_err() {
            return Ok(None);
        }
    }
    let Ok(bytes) = joined.finish() else {
        return Ok(None);
    };
    let path = format!("part-00000-{}-c000.snappy.parquet", uuid::Uuid::new_v4());
    let size = bytes.len() as i64;
    let location = deltalake::Path::from(path.as_str());
    store
        .put(&location, bytes.into())
        .await
        .map_err(|e| Error::Store {
            action: "write the compacted file",
            location: id.url.join(&path).map_or(path.clone(), |u| u.to_string()),
            message: crate::error::chain_of(&e),
        })?;
    Ok(Some(Add {
        path,
        size,
        partition_values: Default::default(),
        modification_time: chrono::Utc::now().timestamp_millis(),
        data_change: false,
        stats: Some(stats),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    }))
}

/// A source, or `None` if its footer or page index does not parse (the decoding path then
/// says what is wrong with it).
async fn read(
    id: &TableId,
    store: &dyn deltalake::ObjectStore,
    add: &Add,
) -> Result<Option<Source>> {
    let failed = |message: String| Error::FileUnreadable {
        table: id.name.clone(),
        path: add.path.clone(),
        message,
    };
    let path = deltalake::Path::from_url_path(&add.path)
        .map_err(|e| failed(format!("not a path: {e}")))?;
    let bytes = match store.get(&path).await {
        Ok(got) => got.bytes().await,
        Err(e) => Err(e),
    };
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(deltalake::ObjectStoreError::NotFound { .. }) => {
            return Err(Error::FileMissing {
                table: id.name.clone(),
                path: add.path.clone(),
            });
        }
        Err(e) => return Err(failed(crate::error::chain_of(&e))),
    };
    let Ok(metadata) = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .parse_and_finish(&bytes)
    else {
        return Ok(None);
    };
    Ok(Some(Source { bytes, metadata }))
}

/// The same Parquet schema and key-value metadata (the Arrow schema a reader takes types from),
/// each copyable, and page indexes in both or neither (the writer cannot mix them).
fn same_layout(a: &ParquetMetaData, b: &ParquetMetaData) -> bool {
    let (fa, fb) = (a.file_metadata(), b.file_metadata());
    fa.schema_descr().root_schema() == fb.schema_descr().root_schema()
        && fa.key_value_metadata() == fb.key_value_metadata()
        && copyable(a)
        && copyable(b)
        && a.offset_index().is_some() == b.offset_index().is_some()
}

/// A file whose row groups can be copied as they are: its statistics' sort order is known (a
/// new footer declares it), no column has a bloom filter (never written by this pipeline; a
/// damaged one's length could not be trusted), and a page index, if any, covers every column
/// of every row group.
fn copyable(metadata: &ParquetMetaData) -> bool {
    let groups = metadata.row_groups();
    metadata.file_metadata().column_orders().is_some()
        && groups.iter().all(|g| {
            g.columns()
                .iter()
                .all(|c| c.bloom_filter_offset().is_none())
        })
        && metadata.offset_index().is_none_or(|index| {
            index.len() == groups.len()
                && index
                    .iter()
                    .zip(groups)
                    .all(|(row, g)| row.len() == g.num_columns())
        })
}

/// A file whose columns are the table's, by name and type.
fn joinable(metadata: &ParquetMetaData, table: &Schema) -> bool {
    let meta = metadata.file_metadata();
    let Ok(arrow) = parquet_to_arrow_schema(meta.schema_descr(), meta.key_value_metadata()) else {
        return false;
    };
    arrow.fields().len() == table.fields().len()
        && arrow
            .fields()
            .iter()
            .zip(table.fields())
            .all(|(a, t)| a.name() == t.name() && same_type(a.data_type(), t.data_type()))
}

/// Types equal, a time zone written `UTC` or `+00:00` being the same zone.
fn same_type(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        (DataType::Timestamp(ua, za), DataType::Timestamp(ub, zb)) => {
            let utc = |z: &Option<Arc<str>>| z.as_deref().map(|z| matches!(z, "UTC" | "+00:00"));
            ua == ub && (za == zb || utc(za).is_some_and(|x| x) && utc(zb).is_some_and(|x| x))
        }
        _ => a == b,
    }
}

/// The new file, being written: sources' row groups appended in order.
struct Joined {
    writer: SerializedFileWriter<Vec<u8>>,
    row_groups: usize,
}

/// Row groups one Parquet file may hold (the format counts them in an i16).
const MAX_ROW_GROUPS: usize = i16::MAX as usize;

type Copied<T> = std::result::Result<T, deltalake::parquet::errors::ParquetError>;

impl Joined {
    /// A file with `first`'s schema and key-value metadata, of about `size` bytes.
    fn new(first: &ParquetMetaData, size: usize) -> Copied<Self> {
        let meta = first.file_metadata();
        let key_values: Option<Vec<KeyValue>> = meta.key_value_metadata().cloned();
        let properties = WriterProperties::builder()
            .set_key_value_metadata(key_values)
            .build();
        let schema = meta.schema_descr().root_schema_ptr();
        let writer =
            SerializedFileWriter::new(Vec::with_capacity(size), schema, Arc::new(properties))?;
        Ok(Self {
            writer,
            row_groups: 0,
        })
    }

    /// Copy `source`'s row groups, as they are.
    fn append(&mut self, source: &Source) -> Copied<()> {
        let metadata = &source.metadata;
        self.row_groups += metadata.num_row_groups();
        if self.row_groups > MAX_ROW_GROUPS {
            return Err(deltalake::parquet::errors::ParquetError::General(
                "more row groups than one file holds".into(),
            ));
        }
        for (g, group) in metadata.row_groups().iter().enumerate() {
            let mut out = self.writer.next_row_group()?;
            for (c, column) in group.columns().iter().enumerate() {
                let result = ColumnCloseResult {
                    bytes_written: column.compressed_size() as u64,
                    rows_written: group.num_rows() as u64,
                    metadata: column.clone(),
                    bloom_filter: None,
                    column_index: metadata
                        .column_index()
                        .and_then(|i| i.get(g))
                        .and_then(|row| row.get(c))
                        .cloned(),
                    offset_index: metadata
                        .offset_index()
                        .and_then(|i| i.get(g))
                        .and_then(|row| row.get(c))
                        .cloned(),
                };
                out.append_column(&source.bytes, result)?;
            }
            out.close()?;
        }
        Ok(())
    }

    fn finish(self) -> Copied<Vec<u8>> {
        self.writer.into_inner()
    }
}

/// The sources' Delta statistics as those of one file holding all their rows; `None` if a
/// source has none or no row count.
fn combined_stats(files: &[Add], schema: &Schema) -> Option<String> {
    let stats: Vec<Map<String, Value>> = files
        .iter()
        .map(|f| match serde_json::from_str(f.stats.as_deref()?) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let mut rows: i64 = 0;
    for s in &stats {
        rows = rows.checked_add(s.get("numRecords")?.as_i64()?)?;
    }
    let mut out = Map::new();
    out.insert("numRecords".into(), Value::from(rows));
    let part = |key: &str| -> Vec<Option<&Map<String, Value>>> {
        stats
            .iter()
            .map(|s| s.get(key).and_then(Value::as_object))
            .collect()
    };
    out.insert(
        "minValues".into(),
        Value::Object(each_column(&part("minValues"), |column, a, b| {
            bound(a, b, Ordering::Less, is_timestamp(schema, column))
        })),
    );
    out.insert(
        "maxValues".into(),
        Value::Object(each_column(&part("maxValues"), |column, a, b| {
            bound(a, b, Ordering::Greater, is_timestamp(schema, column))
        })),
    );
    out.insert(
        "nullCount".into(),
        Value::Object(each_column(&part("nullCount"), |_, a, b| {
            Some(Value::from(a.as_i64()?.checked_add(b.as_i64()?)?))
        })),
    );
    // Bounds are tight only if every source's were.
    let loose = stats
        .iter()
        .any(|s| s.get("tightBounds") == Some(&Value::Bool(false)));
    if stats.iter().any(|s| s.contains_key("tightBounds")) {
        out.insert("tightBounds".into(), Value::Bool(!loose));
    }
    Some(Value::Object(out).to_string())
}

/// For each column every source has a value for, the values folded with `combine` (a column
/// any source lacks, or whose values `combine` refuses, is left out).
fn each_column(
    parts: &[Option<&Map<String, Value>>],
    combine: impl Fn(&str, &Value, &Value) -> Option<Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(Some(first)) = parts.first() else {
        return out;
    };
    'columns: for (column, value) in first.iter() {
        let mut acc = value.clone();
        for part in &parts[1..] {
            let Some(next) = part.and_then(|p| p.get(column)) else {
                continue 'columns;
            };
            match combine(column, &acc, next) {
                Some(v) => acc = v,
                None => continue 'columns,
            }
        }
        out.insert(column.clone(), acc);
    }
    out
}

/// A column the table types as a timestamp (its bounds are RFC 3339 instants).
fn is_timestamp(schema: &Schema, column: &str) -> bool {
    schema
        .field_with_name(column)
        .is_ok_and(|f| matches!(f.data_type(), DataType::Timestamp(..)))
}

/// The lesser (`Less`) or greater (`Greater`) of two bounds of one column: numbers by value,
/// a timestamp column's by instant, other strings as Delta orders them (by UTF-8 bytes, even
/// when they look like times: a string column holds text).
fn bound(a: &Value, b: &Value, keep: Ordering, timestamp: bool) -> Option<Value> {
    let order = match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?)?,
        },
        (Value::String(x), Value::String(y)) if timestamp => {
            let tx = chrono::DateTime::parse_from_rfc3339(x).ok()?;
            let ty = chrono::DateTime::parse_from_rfc3339(y).ok()?;
            tx.cmp(&ty)
        }
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => return None,
    };
    Some(if order == keep || order == Ordering::Equal {
        a.clone()
    } else {
        b.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{Int64Array, RecordBatch, StringArray};
    use deltalake::arrow::datatypes::{Field, TimeUnit};
    use deltalake::logstore::object_store::local::LocalFileSystem;
    use deltalake::parquet::arrow::ArrowWriter;
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use deltalake::parquet::file::properties::EnabledStatistics;
    use serde_json::json;

    fn add(stats: Value) -> Add {
        Add {
            path: "x.parquet".into(),
            size: 1,
            partition_values: Default::default(),
            modification_time: 0,
            data_change: true,
            stats: Some(stats.to_string()),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        }
    }

    #[test]
    fn statistics_combine_to_bounds_that_hold_for_every_row() {
        // (sources' stats, expected combined stats)
        let cases = [
            (
                vec![
                    json!({"numRecords": 2, "minValues": {"a": 5, "s": "b", "t": "2024-01-02T00:00:00.000Z"},
                           "maxValues": {"a": 9, "s": "d", "t": "2024-01-03T00:00:00.000Z"},
                           "nullCount": {"a": 0, "s": 1, "t": 0}}),
                    json!({"numRecords": 3, "minValues": {"a": -1, "s": "c", "t": "2023-12-31T23:00:00.000Z"},
                           "maxValues": {"a": 7, "s": "é", "t": "2024-01-05T00:00:00.000Z"},
                           "nullCount": {"a": 2, "s": 0, "t": 1}}),
                ],
                json!({"numRecords": 5, "minValues": {"a": -1, "s": "b", "t": "2023-12-31T23:00:00.000Z"},
                       "maxValues": {"a": 9, "s": "é", "t": "2024-01-05T00:00:00.000Z"},
                       "nullCount": {"a": 2, "s": 1, "t": 1}}),
            ),
            // A column one source has no bounds for (all nulls there) gets none; floats and
            // -0.0 compare by value; a timestamp with an offset compares by instant.
            (
                vec![
                    json!({"numRecords": 1, "minValues": {"f": -0.0, "t": "2024-01-01T01:00:00+01:00"},
                           "maxValues": {"f": 1e300}, "nullCount": {"f": 0, "g": 1}}),
                    json!({"numRecords": 1, "minValues": {"f": -1e300, "g": 3, "t": "2024-01-01T00:30:00Z"},
                           "maxValues": {"f": 2.5, "g": 3}, "nullCount": {"f": 0, "g": 0}}),
                ],
                json!({"numRecords": 2, "minValues": {"f": -1e300, "t": "2024-01-01T01:00:00+01:00"},
                       "maxValues": {"f": 1e300}, "nullCount": {"f": 0, "g": 1}}),
            ),
            // Loose bounds anywhere: loose.
            (
                vec![
                    json!({"numRecords": 1, "minValues": {}, "maxValues": {}, "nullCount": {}, "tightBounds": true}),
                    json!({"numRecords": 4, "minValues": {}, "maxValues": {}, "nullCount": {}, "tightBounds": false}),
                ],
                json!({"numRecords": 5, "minValues": {}, "maxValues": {}, "nullCount": {}, "tightBounds": false}),
            ),
        ];
        // `t` is a timestamp column; `s` and `time` are strings, even when they look like times.
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("time", DataType::Utf8, true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]);
        let cases = cases.into_iter().chain([
            // Regression (review of the splice): equal instants written two ways in a string
            // column; by instant the first was kept, but "…00.000Z" sorts before "…00Z", so
            // the combined minimum did not bound the second file's rows.
            (
                vec![
                    json!({"numRecords": 1, "minValues": {"time": "2024-01-01T00:00:00Z", "s": "2024-01-01T05:00:00+05:00"},
                           "maxValues": {"time": "2024-01-01T00:00:00Z"}, "nullCount": {}}),
                    json!({"numRecords": 1, "minValues": {"time": "2024-01-01T00:00:00.000Z", "s": "2024-01-01T01:00:00Z"},
                           "maxValues": {"time": "2024-01-01T00:00:00.000Z"}, "nullCount": {}}),
                ],
                json!({"numRecords": 2, "minValues": {"time": "2024-01-01T00:00:00.000Z", "s": "2024-01-01T01:00:00Z"},
                       "maxValues": {"time": "2024-01-01T00:00:00Z"}, "nullCount": {}}),
            ),
        ]);
        for (sources, expected) in cases {
            let files: Vec<Add> = sources.into_iter().map(add).collect();
            let got: Value =
                serde_json::from_str(&combined_stats(&files, &schema).unwrap()).unwrap();
            assert_eq!(got, expected);
        }
        // No row count in a source: no statistics (the decoding path is taken).
        let files = vec![add(json!({"numRecords": 1})), add(json!({"minValues": {}}))];
        assert_eq!(combined_stats(&files, &schema), None);
    }

    /// A Parquet file of `batch` at `name` under `root`, as an `add` with `stats`.
    fn written(root: &std::path::Path, name: &str, batch: &RecordBatch, stats: Value) -> Add {
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        written_with(root, name, batch, stats, props)
    }

    fn written_with(
        root: &std::path::Path,
        name: &str,
        batch: &RecordBatch,
        stats: Value,
        props: WriterProperties,
    ) -> Add {
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props)).unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
        std::fs::write(root.join(name), &bytes).unwrap();
        Add {
            path: name.into(),
            size: bytes.len() as i64,
            ..add(stats)
        }
    }

    fn batch(schema: &Arc<Schema>, ids: &[i64], names: &[Option<&str>]) -> RecordBatch {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn files_of_one_schema_are_joined_row_group_by_row_group_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = crate::warehouse::Warehouse::local(dir.path()).unwrap();
        let id = TableId::new(&warehouse, "t");
        let store = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let stats =
            |n: i64| json!({"numRecords": n, "minValues": {}, "maxValues": {}, "nullCount": {}});
        let a = written(
            dir.path(),
            "a.parquet",
            &batch(&schema, &[1, 2, 3], &[Some("x"), None, Some("é")]),
            stats(3),
        );
        let b = written(
            dir.path(),
            "b.parquet",
            &batch(&schema, &[4], &[Some("y")]),
            stats(1),
        );

        let joined = splice(&id, &store, &[a.clone(), b.clone()], &schema)
            .await
            .unwrap()
            .unwrap();
        assert!(!joined.data_change);
        let bytes = std::fs::read(dir.path().join(&joined.path)).unwrap();
        assert_eq!(joined.size, bytes.len() as i64);
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
        // Row groups of 2: a's two and b's one, as they were.
        assert_eq!(reader.metadata().num_row_groups(), 3);
        let rows: Vec<RecordBatch> = reader
            .build()
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        let all = deltalake::arrow::compute::concat_batches(&rows[0].schema(), &rows).unwrap();
        let want = batch(
            &schema,
            &[1, 2, 3, 4],
            &[Some("x"), None, Some("é"), Some("y")],
        );
        assert_eq!(all.columns(), want.columns());
        assert_eq!(
            joined
                .stats
                .as_deref()
                .map(|s| serde_json::from_str::<Value>(s).unwrap()["numRecords"].clone()),
            Some(json!(4))
        );

        // Another column: not joined (the decoding path conforms it).
        let other = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("label", DataType::Utf8, true),
        ]));
        let c = written(
            dir.path(),
            "c.parquet",
            &batch(&other, &[5], &[Some("z")]),
            stats(1),
        );
        assert!(
            splice(&id, &store, &[a.clone(), c], &schema)
                .await
                .unwrap()
                .is_none()
        );
        // Files of one schema that is not the table's (a column added since): not joined.
        let wider = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("extra", DataType::Utf8, true),
        ]));
        assert!(
            splice(&id, &store, &[a.clone(), b.clone()], &wider)
                .await
                .unwrap()
                .is_none()
        );
        // A source without statistics: not joined.
        let bare = Add {
            stats: None,
            ..b.clone()
        };
        assert!(
            splice(&id, &store, &[a.clone(), bare], &schema)
                .await
                .unwrap()
                .is_none()
        );
        // Regression (review): a source without a page index beside one with it made the
        // writer panic; now the bin is decoded instead. A source with a bloom filter too.
        let without_index = WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_offset_index_disabled(true)
            .build();
        let d = written_with(
            dir.path(),
            "d.parquet",
            &batch(&schema, &[6], &[Some("w")]),
            stats(1),
            without_index,
        );
        let bloom = WriterProperties::builder()
            .set_bloom_filter_enabled(true)
            .build();
        let e = written_with(
            dir.path(),
            "e.parquet",
            &batch(&schema, &[7], &[Some("v")]),
            stats(1),
            bloom,
        );
        for odd in [d, e] {
            for pair in [[a.clone(), odd.clone()], [odd.clone(), a.clone()]] {
                assert!(
                    splice(&id, &store, &pair, &schema).await.unwrap().is_none(),
                    "{}",
                    odd.path
                );
            }
        }
        // A source gone: the compaction fails naming it.
        let gone = Add {
            path: "gone.parquet".into(),
            ..b
        };
        let err = splice(&id, &store, &[a, gone], &schema).await.unwrap_err();
        assert!(err.to_string().contains("gone.parquet"), "{err}");
    }

    #[test]
    fn a_bound_of_two_kinds_of_value_is_left_out() {
        let less = |a: Value, b: Value, timestamp| bound(&a, &b, Ordering::Less, timestamp);
        assert_eq!(less(json!("2024-01-01T00:00:00Z"), json!("b"), true), None);
        assert_eq!(
            less(json!("2024-01-01T00:00:00Z"), json!("b"), false),
            Some(json!("2024-01-01T00:00:00Z"))
        );
        assert_eq!(less(json!(1), json!("1"), false), None);
        assert_eq!(less(json!({"x": 1}), json!({"x": 0}), false), None);
        assert_eq!(less(json!(3), json!(3), false), Some(json!(3)));
    }
}

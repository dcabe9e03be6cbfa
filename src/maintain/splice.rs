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
use deltalake::parquet::bloom_filter::Sbbf;
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
    add: Add,
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
    let Some(stats) = combined_stats(files) else {
        return Ok(None);
    };
    // One source in memory at a time, beside the new file being written.
    let first = read(id, store, &files[0]).await?;
    if !joinable(&first.metadata, schema) {
        return Ok(None);
    }
    let mut joined = Joined::new(
        id,
        &first,
        files.iter().map(|f| f.size.max(0) as usize).sum(),
    )?;
    joined.append(&first)?;
    let expected = first.metadata;
    for add in &files[1..] {
        let source = read(id, store, add).await?;
        if !same_layout(&source.metadata, &expected) {
            return Ok(None);
        }
        joined.append(&source)?;
    }
    let bytes = joined.finish()?;
    let path = format!("part-00000-{}-c000.snappy.parquet", uuid::Uuid::new_v4());
    let size = bytes.len() as i64;
    let location = deltalake::Path::from(path.as_str());
    store
        .put(&location, bytes.into())
        .await
        .map_err(|e| Error::FileUnreadable {
            table: id.name.clone(),
            path: path.clone(),
            message: format!("write the compacted file: {}", crate::error::chain_of(&e)),
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

async fn read(id: &TableId, store: &dyn deltalake::ObjectStore, add: &Add) -> Result<Source> {
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
    let metadata = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .parse_and_finish(&bytes)
        .map_err(|e| failed(e.to_string()))?;
    Ok(Source {
        add: add.clone(),
        bytes,
        metadata,
    })
}

/// The same Parquet schema and key-value metadata (the Arrow schema a reader takes types from).
fn same_layout(a: &ParquetMetaData, b: &ParquetMetaData) -> bool {
    let (a, b) = (a.file_metadata(), b.file_metadata());
    a.schema_descr().root_schema() == b.schema_descr().root_schema()
        && a.key_value_metadata() == b.key_value_metadata()
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
struct Joined<'a> {
    id: &'a TableId,
    path: String,
    writer: SerializedFileWriter<Vec<u8>>,
}

impl<'a> Joined<'a> {
    /// A file with `first`'s schema and key-value metadata, of about `size` bytes.
    fn new(id: &'a TableId, first: &Source, size: usize) -> Result<Self> {
        let meta = first.metadata.file_metadata();
        let key_values: Option<Vec<KeyValue>> = meta.key_value_metadata().cloned();
        let properties = WriterProperties::builder()
            .set_key_value_metadata(key_values)
            .build();
        let schema = meta.schema_descr().root_schema_ptr();
        let path = first.add.path.clone();
        let writer =
            SerializedFileWriter::new(Vec::with_capacity(size), schema, Arc::new(properties))
                .map_err(|e| failed(id, &path, e))?;
        Ok(Self { id, path, writer })
    }

    /// Copy `source`'s row groups, as they are.
    fn append(&mut self, source: &Source) -> Result<()> {
        let err = |e| failed(self.id, &source.add.path, e);
        let metadata = &source.metadata;
        for (g, group) in metadata.row_groups().iter().enumerate() {
            let mut out = self.writer.next_row_group().map_err(err)?;
            for (c, column) in group.columns().iter().enumerate() {
                let bloom_filter =
                    Sbbf::read_from_column_chunk(column, &source.bytes).map_err(err)?;
                let result = ColumnCloseResult {
                    bytes_written: column.compressed_size() as u64,
                    rows_written: group.num_rows() as u64,
                    metadata: column.clone(),
                    bloom_filter,
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
                out.append_column(&source.bytes, result).map_err(err)?;
            }
            out.close().map_err(err)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<Vec<u8>> {
        let (id, path) = (self.id, self.path);
        self.writer.into_inner().map_err(|e| failed(id, &path, e))
    }
}

fn failed(id: &TableId, path: &str, e: deltalake::parquet::errors::ParquetError) -> Error {
    Error::FileUnreadable {
        table: id.name.clone(),
        path: path.to_string(),
        message: format!("join row groups: {e}"),
    }
}

/// The sources' Delta statistics as those of one file holding all their rows; `None` if a
/// source has none or no row count.
fn combined_stats(files: &[Add]) -> Option<String> {
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
        Value::Object(each_column(&part("minValues"), |a, b| {
            bound(a, b, Ordering::Less)
        })),
    );
    out.insert(
        "maxValues".into(),
        Value::Object(each_column(&part("maxValues"), |a, b| {
            bound(a, b, Ordering::Greater)
        })),
    );
    out.insert(
        "nullCount".into(),
        Value::Object(each_column(&part("nullCount"), |a, b| {
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
    combine: impl Fn(&Value, &Value) -> Option<Value>,
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
            match combine(&acc, next) {
                Some(v) => acc = v,
                None => continue 'columns,
            }
        }
        out.insert(column.clone(), acc);
    }
    out
}

/// The lesser (`Less`) or greater (`Greater`) of two bounds of one column: numbers by value,
/// timestamps (RFC 3339) by instant, other strings as Delta orders them (by UTF-8 bytes).
fn bound(a: &Value, b: &Value, keep: Ordering) -> Option<Value> {
    let order = match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?)?,
        },
        (Value::String(x), Value::String(y)) => {
            match (
                chrono::DateTime::parse_from_rfc3339(x),
                chrono::DateTime::parse_from_rfc3339(y),
            ) {
                (Ok(tx), Ok(ty)) => tx.cmp(&ty),
                (Err(_), Err(_)) => x.as_bytes().cmp(y.as_bytes()),
                // One a timestamp and one not: not the same kind of value.
                _ => return None,
            }
        }
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
    use deltalake::arrow::datatypes::Field;
    use deltalake::logstore::object_store::local::LocalFileSystem;
    use deltalake::parquet::arrow::ArrowWriter;
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
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
        for (sources, expected) in cases {
            let files: Vec<Add> = sources.into_iter().map(add).collect();
            let got: Value = serde_json::from_str(&combined_stats(&files).unwrap()).unwrap();
            assert_eq!(got, expected);
        }
        // No row count in a source: no statistics (the decoding path is taken).
        let files = vec![add(json!({"numRecords": 1})), add(json!({"minValues": {}}))];
        assert_eq!(combined_stats(&files), None);
    }

    /// A Parquet file of `batch` at `name` under `root`, as an `add` with `stats`.
    fn written(root: &std::path::Path, name: &str, batch: &RecordBatch, stats: Value) -> Add {
        let mut bytes = Vec::new();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
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
        assert_eq!(
            bound(&json!("2024-01-01T00:00:00Z"), &json!("b"), Ordering::Less),
            None
        );
        assert_eq!(bound(&json!(1), &json!("1"), Ordering::Less), None);
        assert_eq!(
            bound(&json!({"x": 1}), &json!({"x": 0}), Ordering::Less),
            None
        );
        assert_eq!(bound(&json!(3), &json!(3), Ordering::Less), Some(json!(3)));
    }
}

//! Columns of batches read back from tables, in the types the code works with: a table may
//! hand strings back as `Utf8View` or dictionaries, numbers in a wider or narrower type.

use deltalake::arrow::array::{AsArray, RecordBatch, UInt32Array};

use crate::error::{Error, Result};

/// A column as plain `Utf8` strings: tables may come back as `Utf8View` or dictionaries.
pub fn strings(batch: &RecordBatch, name: &str) -> Result<deltalake::arrow::array::StringArray> {
    cast_column(batch, name, &deltalake::arrow::datatypes::DataType::Utf8)
        .map(|a| a.as_string::<i32>().clone())
}

/// A column as `Float64` values.
pub fn float64s(batch: &RecordBatch, name: &str) -> Result<deltalake::arrow::array::Float64Array> {
    cast_column(batch, name, &deltalake::arrow::datatypes::DataType::Float64).map(|a| {
        a.as_primitive::<deltalake::arrow::datatypes::Float64Type>()
            .clone()
    })
}

/// A column as `Decimal128` values of `kind` (a `DataType::Decimal128`).
pub fn decimals(
    batch: &RecordBatch,
    name: &str,
    kind: deltalake::arrow::datatypes::DataType,
) -> Result<deltalake::arrow::array::Decimal128Array> {
    cast_column(batch, name, &kind).map(|a| {
        a.as_primitive::<deltalake::arrow::datatypes::Decimal128Type>()
            .clone()
    })
}

/// A column as `Int64` values.
pub fn int64s(batch: &RecordBatch, name: &str) -> Result<deltalake::arrow::array::Int64Array> {
    cast_column(batch, name, &deltalake::arrow::datatypes::DataType::Int64).map(|a| {
        a.as_primitive::<deltalake::arrow::datatypes::Int64Type>()
            .clone()
    })
}

fn cast_column(
    batch: &RecordBatch,
    name: &str,
    to: &deltalake::arrow::datatypes::DataType,
) -> Result<deltalake::arrow::array::ArrayRef> {
    let column = batch.column_by_name(name).ok_or_else(|| Error::Arrow {
        context: format!("column {name}"),
        source: deltalake::arrow::error::ArrowError::SchemaError(format!("no column {name}")),
    })?;
    deltalake::arrow::compute::cast(column, to).map_err(|e| Error::Arrow {
        context: format!("column {name}"),
        source: e,
    })
}

/// A batch with exactly `schema`'s columns, in its order and types (tables read back may use
/// other string encodings, such as `Utf8View`).
pub fn conform(
    batch: &RecordBatch,
    schema: &deltalake::arrow::datatypes::SchemaRef,
) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| cast_column(batch, f.name(), f.data_type()))
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Arrow {
        context: "conform a batch to its table's schema".into(),
        source: e,
    })
}

/// The rows of `batch` at `rows`, in that order.
pub fn take_rows(batch: &RecordBatch, rows: &[u32]) -> Result<RecordBatch> {
    let indices = UInt32Array::from(rows.to_vec());
    deltalake::arrow::compute::take_record_batch(batch, &indices).map_err(|e| Error::Arrow {
        context: "select rows".into(),
        source: e,
    })
}

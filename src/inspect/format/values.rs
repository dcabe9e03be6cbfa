//! Arrow columns as the JSON values every output format renders: numbers stay numbers,
//! timestamps become RFC 3339 UTC strings, anything else Arrow's display text.

use chrono::{DateTime, SecondsFormat, Utc};
use deltalake::arrow::array::{Array, ArrayRef, AsArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{
    DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType, UInt64Type,
};
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value;

use crate::error::{Error, Result};

/// An instant (milliseconds since the epoch) as RFC 3339 UTC, e.g. `2024-05-01T12:00:00.123Z`.
pub fn millis(ms: i64) -> Value {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(rfc3339)
        .map_or(Value::Null, Value::String)
}

/// An instant as RFC 3339 UTC, with as many fractional digits as it needs.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// One column as JSON values: numbers stay numbers, timestamps become RFC 3339 UTC strings,
/// anything else Arrow's display text.
pub(super) fn json_values(column: &ArrayRef) -> Result<Vec<Value>> {
    let arrow_err = |e| Error::Arrow {
        context: format!("format a {} column", column.data_type()),
        source: e,
    };
    let values = match column.data_type() {
        DataType::Null => vec![Value::Null; column.len()],
        DataType::Boolean => {
            let a = column.as_boolean();
            each(a, |i| Value::Bool(a.value(i)))
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => {
            let a = cast(column, &DataType::Int64).map_err(arrow_err)?;
            let a = a.as_primitive::<Int64Type>();
            each(a, |i| Value::from(a.value(i)))
        }
        DataType::UInt64 => {
            let a = column.as_primitive::<UInt64Type>();
            each(a, |i| Value::from(a.value(i)))
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let a = cast(column, &DataType::Float64).map_err(arrow_err)?;
            let a = a.as_primitive::<Float64Type>();
            // NaN and infinities have no JSON number: keep their text.
            each(a, |i| {
                serde_json::Number::from_f64(a.value(i))
                    .map_or_else(|| Value::String(a.value(i).to_string()), Value::Number)
            })
        }
        DataType::Timestamp(_, _) => {
            // The stored value is an instant in UTC whatever the column's zone says.
            let a = cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))
                .map_err(arrow_err)?;
            let a = a.as_primitive::<TimestampMicrosecondType>();
            each(a, |i| {
                DateTime::<Utc>::from_timestamp_micros(a.value(i))
                    .map_or(Value::Null, |t| Value::String(rfc3339(t)))
            })
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            let a = cast(column, &DataType::Utf8).map_err(arrow_err)?;
            let a = a.as_string::<i32>();
            each(a, |i| Value::String(a.value(i).to_string()))
        }
        _ => {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())
                .map_err(arrow_err)?;
            each(column.as_ref(), |i| {
                Value::String(formatter.value(i).to_string())
            })
        }
    };
    Ok(values)
}

/// `value(i)` for every valid slot of `array`, null for the others.
pub(super) fn each(array: &dyn Array, value: impl Fn(usize) -> Value) -> Vec<Value> {
    (0..array.len())
        .map(|i| {
            if array.is_valid(i) {
                value(i)
            } else {
                Value::Null
            }
        })
        .collect()
}

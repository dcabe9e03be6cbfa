//! Typing bronze's text into silver's readings: each row typed (or refused with the reason),
//! then joined with its patient's name or set aside to wait for the patient.

use std::collections::HashMap;

use deltalake::arrow::array::{Array, AsArray, RecordBatch, StringArray, StringViewArray};
use deltalake::arrow::datatypes::DataType;

use super::waiting::Delivery;
use super::write::Joined;
use crate::catalog::{self, POSITION, SOURCE_COLUMNS};
use crate::delta;
use crate::error::Result;
use crate::transform::{parse_epoch_micros, parse_float, parse_id};

/// A typed reading, before the join.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub device_id: i32,
    pub mrn: i64,
    pub datetime: i64,
    pub heartrate: f64,
}

/// Type one bronze row; `Err` says why it cannot be.
pub fn type_row(
    device_id: Option<&str>,
    heartrate: Option<&str>,
    mrn: Option<&str>,
    time: Option<&str>,
) -> std::result::Result<Reading, String> {
    let (d, h, m, t) = (
        need("device_id", device_id)?,
        need("heartrate", heartrate)?,
        need("mrn", mrn)?,
        need("time", time)?,
    );
    Ok(Reading {
        device_id: parse_id(d)
            .ok_or_else(|| format!("device_id {d:?} is not a positive 32-bit integer"))?,
        mrn: parse_id(m).ok_or_else(|| format!("mrn {m:?} is not a positive integer"))?,
        datetime: parse_epoch_micros(t)
            .ok_or_else(|| format!("time {t:?} is not epoch seconds between 1970 and 9999"))?,
        heartrate: plausible_heartrate(h)?,
    })
}

/// The heart rates silver accepts, in beats per minute. Negative readings down to −1000 are the
/// monitors' device faults (kept: the lab's gold counts them); anything beyond is not a
/// reading, and a value such as `1e300` would make every aggregate of its patient meaningless
/// (or overflow), so it is refused with the reason, like any row that cannot be typed.
pub const HEARTRATE_LIMIT: f64 = 1000.0;

fn plausible_heartrate(text: &str) -> std::result::Result<f64, String> {
    let rate = match parse_float(text) {
        Some(rate) => rate,
        // A number too large for a double (`1e400`) is out of range, not "not a number".
        None if text.trim().parse::<f64>().is_ok_and(f64::is_infinite)
            && !text.trim().to_ascii_lowercase().contains("inf") =>
        {
            f64::INFINITY
        }
        None => return Err(format!("heartrate {text:?} is not a number")),
    };
    if rate.abs() > HEARTRATE_LIMIT {
        return Err(format!(
            "heartrate {text:?} is outside the plausible range -{HEARTRATE_LIMIT} to \
             {HEARTRATE_LIMIT} beats per minute"
        ));
    }
    // -0.0 is 0 beats per minute (and would otherwise print, and compare in min/max, apart).
    Ok(rate + 0.0)
}

fn need<'a>(name: &str, value: Option<&'a str>) -> std::result::Result<&'a str, String> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("{name} is missing"))
}

/// A bronze batch typed: its rows joined with their patient, the rows waiting for their patient,
/// and (when `refuse`) the rows that cannot be typed, with the reason.
pub(super) struct TypedBatch<'n> {
    pub joined: Vec<Joined<'n>>,
    pub waiting: RecordBatch,
    /// The key and delivery of each of `waiting`'s rows.
    pub waiting_keys: Vec<Delivery>,
    pub refused: Option<(RecordBatch, Vec<String>)>,
}

pub(super) fn type_batch<'n>(
    batch: &RecordBatch,
    refuse: bool,
    names: &'n HashMap<i64, String>,
) -> Result<TypedBatch<'n>> {
    let [device, rate, mrn, time] = SOURCE_COLUMNS.map(|name| Text::of(batch, name));
    let (device, rate, mrn, time) = (device?, rate?, mrn?, time?);
    let (batch_ids, positions) = (
        delta::int64s(batch, "_batch_id")?,
        delta::int64s(batch, POSITION)?,
    );
    let mut joined = Vec::with_capacity(batch.num_rows());
    let mut wait_rows = Vec::new();
    let mut waiting_keys = Vec::new();
    let mut bad_rows = Vec::new();
    let mut bad_reasons = Vec::new();
    for i in 0..batch.num_rows() {
        match type_row(device.get(i), rate.get(i), mrn.get(i), time.get(i)) {
            Ok(r) => {
                let key = (r.device_id, r.mrn, r.datetime);
                let delivered = (batch_ids.value(i), positions.value(i));
                match names.get(&r.mrn) {
                    Some(name) => joined.push(Joined {
                        key,
                        delivered,
                        heartrate: r.heartrate,
                        name,
                    }),
                    None => {
                        wait_rows.push(i as u32);
                        waiting_keys.push((key, delivered));
                    }
                }
            }
            Err(reason) if refuse => {
                bad_rows.push(i as u32);
                bad_reasons.push(reason);
            }
            Err(_) => {} // refused already, by an earlier (interrupted) refresh
        }
    }
    // Bronze's own types for the rows kept as they are (tables come back as `Utf8View`).
    let bronze = catalog::BRONZE.schema();
    let rows = |rows: &[u32]| delta::conform(&delta::take_rows(batch, rows)?, &bronze);
    let refused = if bad_rows.is_empty() {
        None
    } else {
        Some((rows(&bad_rows)?, bad_reasons))
    };
    Ok(TypedBatch {
        joined,
        waiting: rows(&wait_rows)?,
        waiting_keys,
        refused,
    })
}

/// A text column of bronze, read as it comes (`Utf8View` from a table, `Utf8` otherwise)
/// rather than copied into one encoding.
enum Text {
    View(StringViewArray),
    Plain(StringArray),
}

impl Text {
    fn of(batch: &RecordBatch, name: &str) -> Result<Self> {
        match batch.column_by_name(name) {
            Some(column) if column.data_type() == &DataType::Utf8View => {
                Ok(Self::View(column.as_string_view().clone()))
            }
            _ => delta::strings(batch, name).map(Self::Plain),
        }
    }

    fn get(&self, i: usize) -> Option<&str> {
        match self {
            Self::View(a) => (!a.is_null(i)).then(|| a.value(i)),
            Self::Plain(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_heart_rates_are_kept_and_zero_has_no_sign() {
        assert_eq!(plausible_heartrate("1000"), Ok(1000.0));
        assert_eq!(plausible_heartrate("-1000"), Ok(-1000.0));
        assert_eq!(plausible_heartrate("71.50"), Ok(71.5));
        let zero = plausible_heartrate("-0.0").unwrap();
        assert!(zero == 0.0 && zero.is_sign_positive());
        assert!(plausible_heartrate("1000.000001").is_err());
        assert!(plausible_heartrate("NaN").is_err());
        let huge = plausible_heartrate("1e400").unwrap_err();
        assert!(huge.contains("outside the plausible range"), "{huge}");
        let inf = plausible_heartrate("inf").unwrap_err();
        assert!(inf.contains("is not a number"), "{inf}");
    }

    #[test]
    fn rows_are_typed_or_refused_with_a_reason() {
        assert_eq!(
            type_row(
                Some("23"),
                Some("96.5"),
                Some("40580129"),
                Some("1578301316.998366")
            ),
            Ok(Reading {
                device_id: 23,
                mrn: 40_580_129,
                datetime: 1_578_301_316_998_366,
                heartrate: 96.5
            })
        );
        let cases = [
            (
                (Some("x"), Some("1"), Some("1"), Some("1")),
                "device_id \"x\" is not",
            ),
            (
                (Some("1"), Some("fast"), Some("1"), Some("1")),
                "heartrate \"fast\" is not",
            ),
            (
                (Some("1"), Some("1e300"), Some("1"), Some("1")),
                "heartrate \"1e300\" is outside the plausible range",
            ),
            (
                (Some("1"), Some("-1000.5"), Some("1"), Some("1")),
                "heartrate \"-1000.5\" is outside the plausible range",
            ),
            (
                (Some("1"), Some("inf"), Some("1"), Some("1")),
                "heartrate \"inf\" is not a number",
            ),
            ((Some("1"), Some("1"), None, Some("1")), "mrn is missing"),
            (
                (Some("1"), Some("1"), Some("1"), Some("yesterday")),
                "time \"yesterday\" is not",
            ),
        ];
        for ((d, h, m, t), expected) in cases {
            let reason = type_row(d, h, m, t).unwrap_err();
            assert!(reason.starts_with(expected), "{reason}");
        }
    }
}

//! Pure conversions of the silver layer, kept apart from I/O so they can be tested on their own:
//! bronze's raw text into typed values, and instants into the lab's date and time strings.

use chrono::TimeZone;
use chrono_tz::Tz;

/// Parse a positive whole number that fits an `i64` (an mrn) or an `i32` (a device id).
pub fn parse_id<T: TryFrom<i64>>(text: &str) -> Option<T> {
    let text = text.trim();
    let value: i64 = if let Ok(v) = text.parse::<i64>() {
        v
    } else {
        // "23.0" from a tool that wrote numbers as floats.
        let f: f64 = text.parse().ok()?;
        if f.fract() != 0.0 || !f.is_finite() || f.abs() > 9.0e15 {
            return None;
        }
        f as i64
    };
    if value <= 0 {
        return None;
    }
    T::try_from(value).ok()
}

/// Parse a finite float.
pub fn parse_float(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

/// The latest instant silver accepts: 9999-12-31T23:59:59Z, in seconds.
const MAX_EPOCH_S: i64 = 253_402_300_799;

/// Epoch seconds, as the text of a decimal number, into epoch microseconds. Plain decimals are
/// read exactly (no float rounding; a 7th decimal rounds half up); other forms (`1.5e9`) go
/// through a float. Times before 1970 or after 9999 are refused.
pub fn parse_epoch_micros(text: &str) -> Option<i64> {
    let text = text.trim();
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let plain = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    let micros = if plain {
        let seconds: i64 = int.parse().ok()?;
        if seconds > MAX_EPOCH_S {
            return None;
        }
        let mut digits = frac.bytes().map(|b| i64::from(b - b'0'));
        let mut micros = 0;
        for _ in 0..6 {
            micros = micros * 10 + digits.next().unwrap_or(0);
        }
        if digits.next().is_some_and(|d| d >= 5) {
            micros += 1;
        }
        seconds * 1_000_000 + micros
    } else {
        let seconds = parse_float(text)?;
        if !(0.0..=MAX_EPOCH_S as f64).contains(&seconds) {
            return None;
        }
        (seconds * 1e6).round() as i64
    };
    Some(micros)
}

/// The lab's `date` (`MM/dd/yyyy`) and `time` (`hh:mm:ss a z`) of an instant, in a time zone.
#[cfg(test)]
fn date_and_time(micros: i64, tz: Tz) -> (String, String) {
    let mut renderer = Renderer::new(tz);
    let (date, time) = renderer.render(micros);
    (date.to_string(), time.to_string())
}

/// Renders instants as the lab's `date` and `time` strings into buffers it reuses: what
/// `format("%m/%d/%Y")` and `format("%I:%M:%S %p %Z")` give, without their per-row parsing of
/// the format, `fmt` machinery and allocation (a million rows a second matter here).
pub struct Renderer {
    tz: Tz,
    date: String,
    time: String,
    /// The last offset met and its `%Z` text (the zone's abbreviation, or its offset).
    zone: Option<(chrono_tz::TzOffset, String)>,
}

impl Renderer {
    pub fn new(tz: Tz) -> Self {
        Self {
            tz,
            date: String::with_capacity(10),
            time: String::with_capacity(24),
            zone: None,
        }
    }

    /// The date and time strings of an instant (epoch microseconds), valid until the next call.
    pub fn render(&mut self, micros: i64) -> (&str, &str) {
        use chrono::{Datelike, Offset, Timelike};
        let utc = chrono::DateTime::from_timestamp_micros(micros)
            .expect("a timestamp in chrono's range")
            .naive_utc();
        let offset = self.tz.offset_from_utc_datetime(&utc);
        let local = utc + chrono::TimeDelta::seconds(i64::from(offset.fix().local_minus_utc()));
        let hour = local.hour();
        self.date.clear();
        push_digits(&mut self.date, local.month(), 2);
        self.date.push('/');
        push_digits(&mut self.date, local.day(), 2);
        self.date.push('/');
        push_digits(&mut self.date, local.year().max(0) as u32, 4);
        self.time.clear();
        let twelve = match hour % 12 {
            0 => 12,
            h => h,
        };
        push_digits(&mut self.time, twelve, 2);
        self.time.push(':');
        push_digits(&mut self.time, local.minute(), 2);
        self.time.push(':');
        push_digits(&mut self.time, local.second(), 2);
        self.time.push_str(if hour < 12 { " AM " } else { " PM " });
        if self.zone.as_ref().is_none_or(|(known, _)| *known != offset) {
            self.zone = Some((offset, offset.to_string()));
        }
        if let Some((_, text)) = &self.zone {
            self.time.push_str(text);
        }
        (&self.date, &self.time)
    }
}

/// `value` in decimal, zero-padded to `width` digits (more if it needs them).
fn push_digits(out: &mut String, value: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut n = value;
    let mut len = 0;
    while n > 0 || len < width {
        digits[len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
    }
    out.extend(digits[..len].iter().rev().map(|&d| d as char));
}

/// Parse an IANA time zone name, with a message that says what was wrong.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone {name:?}: use an IANA name such as UTC or America/New_York")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_whole_numbers() {
        assert_eq!(parse_id::<i32>("23"), Some(23));
        assert_eq!(parse_id::<i32>(" 23.0 "), Some(23));
        assert_eq!(parse_id::<i64>("40580129"), Some(40_580_129));
        for bad in ["", "0", "-3", "2.5", "abc", "99999999999"] {
            assert_eq!(parse_id::<i32>(bad), None, "{bad}");
        }
    }

    #[test]
    fn epoch_seconds_become_exact_microseconds() {
        assert_eq!(
            parse_epoch_micros("1578301316.998366"),
            Some(1_578_301_316_998_366)
        );
        assert_eq!(
            parse_epoch_micros("1578301316.9983665"),
            Some(1_578_301_316_998_367)
        );
        assert_eq!(
            parse_epoch_micros("1578301316"),
            Some(1_578_301_316_000_000)
        );
        assert_eq!(parse_epoch_micros("1.5e9"), Some(1_500_000_000_000_000));
        for bad in ["", "soon", "-5", "1e20", "NaN"] {
            assert_eq!(parse_epoch_micros(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_renderer_matches_chrono_formatting_everywhere() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for zone in [
            "UTC",
            "America/New_York",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
            "Europe/Amsterdam",
        ] {
            let tz = parse_timezone(zone).unwrap();
            let mut renderer = Renderer::new(tz);
            for _ in 0..20_000 {
                let micros = rng.random_range(0..4_102_444_800_000_000_i64);
                let instant = tz.timestamp_micros(micros).single().unwrap();
                let expected = (
                    instant.format("%m/%d/%Y").to_string(),
                    instant.format("%I:%M:%S %p %Z").to_string(),
                );
                let (date, time) = renderer.render(micros);
                assert_eq!(
                    (date, time),
                    (expected.0.as_str(), expected.1.as_str()),
                    "{zone} {micros}"
                );
            }
        }
    }

    #[test]
    fn dates_render_in_the_asked_time_zone_across_daylight_saving() {
        let ny: Tz = parse_timezone("America/New_York").unwrap();
        assert_eq!(
            date_and_time(1_601_510_459_000_000, ny),
            ("09/30/2020".into(), "08:00:59 PM EDT".into())
        );
        assert_eq!(
            date_and_time(1_601_510_459_000_000, Tz::UTC),
            ("10/01/2020".into(), "12:00:59 AM UTC".into())
        );
        // 2020-11-01 06:30 UTC is 01:30 EST, after the clocks went back.
        assert_eq!(
            date_and_time(1_604_212_200_000_000, ny),
            ("11/01/2020".into(), "01:30:00 AM EST".into())
        );
        assert!(parse_timezone("Mars/Olympus").is_err());
    }
}

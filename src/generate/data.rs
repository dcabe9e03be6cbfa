//! What the lab's data looks like, as numbers: the patients (MRN, name, device, baseline) and,
//! month by month, each patient's readings during the weeks it wears its monitor (every 900 s
//! ± 15 s, a baseline with daily rhythm and noise, a few device faults and spikes). Every
//! value depends only on the seed, the number of patients and the month.

use chrono::NaiveDate;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::{GenerateOptions, Patient};

/// The first month of generated data: January 2020, as in the lab.
pub(super) const FIRST_YEAR: i32 = 2020;
/// A tracker file holds at most this many rows; the rest of a busy month is not delivered.
pub(super) const MAX_ROWS_PER_FILE: usize = 10_000;
/// Seconds between two readings of a monitor, before jitter.
pub(super) const READING_INTERVAL_S: f64 = 900.0;
/// Jitter on the interval, uniform in ± this many seconds.
pub(super) const INTERVAL_JITTER_S: f64 = 15.0;
/// Share of readings that are negative device faults.
pub(super) const FAULT_SHARE: f64 = 0.003;
/// Share of readings that spike far above the baseline.
pub(super) const SPIKE_SHARE: f64 = 0.0005;

/// The patient dimension: distinct 8-digit MRNs, distinct names, distinct small device ids.
pub fn patients(options: &GenerateOptions) -> Vec<Patient> {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut devices: Vec<u32> = (1..=options.patients.max(40) as u32).collect();
    devices.shuffle(&mut rng);
    let mut names: Vec<String> = FIRST_NAMES
        .iter()
        .flat_map(|first| LAST_NAMES.iter().map(move |last| format!("{first} {last}")))
        .collect();
    names.shuffle(&mut rng);
    let mut mrns = std::collections::BTreeSet::new();
    (0..options.patients)
        .map(|i| {
            let mrn = loop {
                let candidate = rng.random_range(10_000_000..=99_999_999_i64);
                if mrns.insert(candidate) {
                    break candidate;
                }
            };
            let name = match names.get(i) {
                Some(name) => name.clone(),
                // More patients than name pairs: number them so names stay distinct.
                None => format!("{} {}", names[i % names.len()], i / names.len() + 1),
            };
            Patient {
                mrn,
                name,
                device_id: devices[i],
                baseline: rng.random_range(65.0..105.0),
                peak_hour: rng.random_range(10.0..20.0),
            }
        })
        .collect()
}

/// One reading, as generated.
pub(super) struct Reading {
    pub time: f64,
    pub device_id: u32,
    pub mrn: i64,
    pub heartrate: f64,
}

/// The first instant of a month counted from January of the first year, in epoch seconds.
pub(super) fn month_start(month: u32) -> i64 {
    let year = FIRST_YEAR + (month / 12) as i32;
    let date = NaiveDate::from_ymd_opt(year, month % 12 + 1, 1).expect("valid month");
    date.and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp()
}

/// A float as Python's `str` prints it: the shortest text that reads back the same, always with
/// a fractional part.
pub(super) fn float_text(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

/// The readings delivered for one month, ordered by time, capped at [`MAX_ROWS_PER_FILE`].
pub(super) fn month_readings(
    options: &GenerateOptions,
    patients: &[Patient],
    month: u32,
) -> Vec<Reading> {
    let (from, to) = (month_start(month) as f64, month_start(month + 1) as f64);
    let year = month / 12;
    let mut readings: Vec<Reading> = patients
        .iter()
        .enumerate()
        .flat_map(|(index, patient)| {
            wear_period(options.seed, index, patients.len(), year, patient)
        })
        .filter(|r| r.time >= from && r.time < to)
        .collect();
    readings.sort_by(|a, b| {
        a.time
            .total_cmp(&b.time)
            .then(a.device_id.cmp(&b.device_id))
    });
    readings.truncate(MAX_ROWS_PER_FILE);
    readings
}

/// All readings of one patient's wear period in a given year (each patient wears the monitor
/// for one period of about 3.5 to 6.5 weeks a year). Depends only on the seed, the patient and the year.
fn wear_period(
    seed: u64,
    patient_index: usize,
    patients: usize,
    year: u32,
    patient: &Patient,
) -> Vec<Reading> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((u64::from(year) << 32) | (patient_index as u64 + 1));
    let year_start = month_start(year * 12) as f64;
    let year_end = month_start((year + 1) * 12) as f64;
    let length = rng.random_range(24.0..=45.0) * 86_400.0;
    // Periods spread evenly over the year (patient i starts in the i-th slice), so a month has
    // a handful of active monitors rather than a random pile-up.
    let slot = (patient_index % patients) as f64 + rng.random_range(0.0..1.0);
    let start = year_start + slot / patients as f64 * (year_end - year_start - length);
    let noise = Normal::new(0.0, 4.0).expect("valid normal");
    let mut readings = Vec::with_capacity((length / READING_INTERVAL_S) as usize + 1);
    let mut t = start + rng.random_range(0.0..READING_INTERVAL_S);
    while t < start + length {
        let time = (t * 1e6).round() / 1e6;
        let hour = (time.rem_euclid(86_400.0)) / 3_600.0;
        let daily = 6.0 * (std::f64::consts::TAU * (hour - patient.peak_hour) / 24.0).cos();
        let roll: f64 = rng.random();
        let rate = if roll < FAULT_SHARE {
            rng.random_range(-280.0..-50.0)
        } else if roll < FAULT_SHARE + SPIKE_SHARE {
            rng.random_range(150.0..345.0)
        } else {
            patient.baseline + daily + noise.sample(&mut rng)
        };
        readings.push(Reading {
            time,
            device_id: patient.device_id,
            mrn: patient.mrn,
            heartrate: (rate * 1e10).round() / 1e10,
        });
        t += READING_INTERVAL_S + rng.random_range(-INTERVAL_JITTER_S..INTERVAL_JITTER_S);
    }
    readings
}

const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Brian",
    "Carmen",
    "Deshawn",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jamal",
    "Katarzyna",
    "Liam",
    "Maya",
    "Nikolai",
    "Olivia",
    "Pedro",
    "Quinn",
    "Rosa",
    "Samuel",
    "Tamar",
    "Umar",
    "Valentina",
    "Wei",
    "Ximena",
    "Yusuf",
    "Zoe",
    "J.R.",
    "Mary Ann",
];

const LAST_NAMES: &[&str] = &[
    "Abbott",
    "Bianchi",
    "Chen",
    "D'Angelo",
    "Eriksen",
    "Fischer",
    "Gonzalez",
    "Haddad",
    "Ivanova",
    "Johnson",
    "Kowalski",
    "Lee",
    "Morales",
    "Nakamura",
    "O'Brien",
    "Patel",
    "Quispe",
    "Rossi",
    "St. James",
    "Tanaka",
    "Underwood",
    "Vargas",
    "Williams",
    "Xu",
    "Yilmaz",
    "Zimmerman",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python() {
        assert_eq!(float_text(1578301316.998366), "1578301316.998366");
        assert_eq!(float_text(96.2296475916), "96.2296475916");
        assert_eq!(float_text(1578301317.0), "1578301317.0");
    }

    #[test]
    fn months_start_on_the_first() {
        assert_eq!(month_start(0), 1_577_836_800); // 2020-01-01T00:00:00Z
    }

    #[test]
    fn patients_are_distinct() {
        let options = GenerateOptions {
            patients: 800,
            ..GenerateOptions::default()
        };
        let ps = patients(&options);
        let mrns: std::collections::HashSet<_> = ps.iter().map(|p| p.mrn).collect();
        let names: std::collections::HashSet<_> = ps.iter().map(|p| &p.name).collect();
        let devices: std::collections::HashSet<_> = ps.iter().map(|p| p.device_id).collect();
        assert_eq!((mrns.len(), names.len(), devices.len()), (800, 800, 800));
    }

    #[test]
    fn a_month_holds_only_its_own_readings_in_order() {
        let options = GenerateOptions::default();
        let ps = patients(&options);
        let readings = month_readings(&options, &ps, 3);
        assert!(!readings.is_empty());
        assert!(readings.len() <= MAX_ROWS_PER_FILE);
        assert!(readings.windows(2).all(|w| w[0].time <= w[1].time));
        let (from, to) = (month_start(3) as f64, month_start(4) as f64);
        assert!(readings.iter().all(|r| r.time >= from && r.time < to));
    }
}

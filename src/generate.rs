//! A deterministic generator of the lab's source data: the patient dimension CSV and one tracker
//! file per month, in exactly the lab's format (see `lab_data/README.md`). The same seed and
//! options always give byte-identical files, and each month's file depends only on the seed, the
//! number of patients and the month, so `--append` can add month after month to a folder.
//!
//! The manifest beside the data (`healthcare/.generator.json`) lists every tracker file the
//! generator wrote: `--force` removes those and nothing else, and a file it did not write is
//! never overwritten.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{Datelike, NaiveDate};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::source::discover::is_candidate_name;
use crate::warehouse::DataDir;

/// The first month of generated data: January 2020, as in the lab.
const FIRST_YEAR: i32 = 2020;
/// A tracker file holds at most this many rows; the rest of a busy month is not delivered.
const MAX_ROWS_PER_FILE: usize = 10_000;
/// Seconds between two readings of a monitor, before jitter.
const READING_INTERVAL_S: f64 = 900.0;
/// Jitter on the interval, uniform in ± this many seconds.
const INTERVAL_JITTER_S: f64 = 15.0;
/// Share of readings that are negative device faults.
const FAULT_SHARE: f64 = 0.003;
/// Share of readings that spike far above the baseline.
const SPIKE_SHARE: f64 = 0.0005;

/// What to generate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GenerateOptions {
    /// Number of patients (one monitor each).
    pub patients: usize,
    /// Number of monthly tracker files, before `scale`.
    pub months: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// N times the rows: the months are repeated over N years, each patient wearing a monitor
    /// once a year.
    pub scale: u32,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            patients: 34,
            months: 12,
            seed: 42,
            scale: 1,
        }
    }
}

/// What `generate` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateReport {
    pub data_dir: PathBuf,
    pub patients: usize,
    pub files: Vec<PathBuf>,
    pub rows: u64,
    pub duration_ms: u64,
    /// Files of the tracker folder the generator did not write, left in place.
    pub warnings: Vec<String>,
}

/// The parameters a folder was generated with, kept beside the data for `--append`, and the
/// tracker files written.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    options: GenerateOptions,
    /// Months written so far; the next `--append` writes this month index.
    months_written: u32,
    /// The names of the tracker files the generator wrote: the only ones `--force` removes.
    /// Absent from a manifest written before the list was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    files: Option<BTreeSet<String>>,
}

impl Manifest {
    /// The tracker files this manifest says the generator wrote.
    fn written(&self) -> BTreeSet<String> {
        match &self.files {
            Some(files) => files.clone(),
            // Before the list was kept, month i was always written as `month_file(i)`.
            None => (0..self.months_written).map(month_file).collect(),
        }
    }
}

/// One patient of the generated dimension.
#[derive(Debug, Clone)]
pub struct Patient {
    pub mrn: i64,
    pub name: String,
    pub device_id: u32,
    baseline: f64,
    /// Hour of the day at which the patient's rate peaks.
    peak_hour: f64,
}

/// Write a fresh data set: the patient CSV and `months × scale` tracker files. Refuses to write
/// over an existing data set unless `force` is set, which removes the tracker files an earlier
/// run wrote first. Files the generator did not write stay (the report names them), and one
/// under a name it must write is refused.
pub fn generate(dir: &DataDir, options: &GenerateOptions, force: bool) -> Result<GenerateReport> {
    let start = Instant::now();
    validate(options)?;
    let tracker = dir.tracker_dir();
    let manifest_path = dir.generator_manifest();
    let existing = tracker_files(&tracker)?;
    if !existing.is_empty() && !force {
        return Err(Error::Usage(format!(
            "{} already holds {} tracker files: use --append to add the next month, or \
             --force to replace them",
            tracker.display(),
            existing.len()
        )));
    }
    let total_months = options.months * options.scale;
    let targets: BTreeSet<String> = (0..total_months).map(month_file).collect();
    let written = read_manifest(&manifest_path)?.map_or_else(BTreeSet::new, |m| m.written());
    let present = entry_names(&tracker)?;
    let (ours, foreign): (BTreeSet<String>, BTreeSet<String>) =
        present.into_iter().partition(|name| written.contains(name));
    let colliding: Vec<&str> = foreign
        .iter()
        .filter(|name| targets.contains(*name))
        .map(String::as_str)
        .collect();
    if !colliding.is_empty() {
        return Err(Error::Usage(format!(
            "{} holds {} that `medallion generate` did not write (they are not listed in {}), \
             under names it must write: move or remove them, then run again",
            tracker.display(),
            colliding.join(", "),
            manifest_path.display()
        )));
    }

    // List what this run writes before writing it, beside what is left of the last run's: a
    // run stopped half-way leaves every file it wrote listed, so the next --force removes it.
    let mut manifest = Manifest {
        options: options.clone(),
        months_written: 0,
        files: Some(targets.union(&ours).cloned().collect()),
    };
    write_manifest(&manifest_path, &manifest)?;
    for name in &ours {
        let file = tracker.join(name);
        std::fs::remove_file(&file).map_err(Error::io("remove", &file))?;
    }
    std::fs::create_dir_all(&tracker).map_err(Error::io("create", &tracker))?;
    let patients = patients(options);
    write_patients_csv(&dir.patients_csv(), &patients)?;

    let mut report = GenerateReport {
        data_dir: dir.root().to_path_buf(),
        patients: patients.len(),
        files: Vec::new(),
        rows: 0,
        duration_ms: 0,
        warnings: foreign
            .iter()
            .filter(|name| is_candidate_name(name))
            .map(|name| {
                format!(
                    "{}: not written by `medallion generate`, so it was left in place; bronze \
                     will ingest it with the generated files",
                    tracker.join(name).display()
                )
            })
            .collect(),
    };
    for month in 0..total_months {
        let (path, rows) = write_month(&tracker, options, &patients, month)?;
        report.files.push(path);
        report.rows += rows as u64;
    }
    manifest.months_written = total_months;
    manifest.files = Some(targets);
    write_manifest(&manifest_path, &manifest)?;
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

/// Add the next month's tracker file to a folder written by [`generate`], with its options.
pub fn append(dir: &DataDir) -> Result<GenerateReport> {
    let start = Instant::now();
    let manifest_path = dir.generator_manifest();
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::SourceMissing {
                path: manifest_path.clone(),
                hint: " (run `medallion generate` first: --append adds to a generated folder)"
                    .into(),
            }
        } else {
            Error::io("read", &manifest_path)(e)
        }
    })?;
    let mut manifest = parse_manifest(&manifest_path, &text)?;
    let tracker = dir.tracker_dir();
    let name = month_file(manifest.months_written);
    let mut written = manifest.written();
    if !written.contains(&name) {
        let path = tracker.join(&name);
        if std::fs::symlink_metadata(&path).is_ok() {
            return Err(Error::Usage(format!(
                "{} exists and was not written by `medallion generate` (it is not listed in \
                 {}): move or remove it, then run again",
                path.display(),
                manifest_path.display()
            )));
        }
        // Listed before it is written, so a run stopped half-way leaves it ours.
        written.insert(name);
        manifest.files = Some(written);
        write_manifest(&manifest_path, &manifest)?;
    }
    let patients = patients(&manifest.options);
    let (path, rows) = write_month(
        &tracker,
        &manifest.options,
        &patients,
        manifest.months_written,
    )?;
    manifest.months_written += 1;
    write_manifest(&manifest_path, &manifest)?;
    Ok(GenerateReport {
        data_dir: dir.root().to_path_buf(),
        patients: patients.len(),
        files: vec![path],
        rows: rows as u64,
        duration_ms: start.elapsed().as_millis() as u64,
        warnings: Vec::new(),
    })
}

/// The manifest of a generated folder, if there is one.
fn read_manifest(path: &Path) -> Result<Option<Manifest>> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_manifest(path, &text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

fn parse_manifest(path: &Path, text: &str) -> Result<Manifest> {
    serde_json::from_str(text).map_err(|e| Error::SourceParse {
        path: path.to_path_buf(),
        line: Some(e.line() as u64),
        message: e.to_string(),
    })
}

fn validate(options: &GenerateOptions) -> Result<()> {
    if options.patients == 0 || options.patients > 10_000 {
        return Err(Error::Usage(
            "--patients must be between 1 and 10000".into(),
        ));
    }
    if options.months == 0 || options.scale == 0 {
        return Err(Error::Usage(
            "--months and --scale must be at least 1".into(),
        ));
    }
    Ok(())
}

/// The tracker files already in a folder (none if the folder does not exist).
fn tracker_files(tracker: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(tracker) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", tracker)(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("list", tracker))?;
        if entry.path().extension().is_some_and(|e| e == "json") {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// The name of every entry of a folder (none if the folder does not exist); a name that is
/// not UTF-8 is shown lossily (the generator never writes one).
fn entry_names(dir: &Path) -> Result<BTreeSet<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(Error::io("list", dir)(e)),
    };
    let mut names = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("list", dir))?;
        names.insert(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

/// The tracker file of month index `month`: `01.json` for the first.
fn month_file(month: u32) -> String {
    format!("{:02}.json", month + 1)
}

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

fn write_patients_csv(path: &Path, patients: &[Patient]) -> Result<()> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| Error::io("write", path)(std::io::Error::other(e));
    out.write_record(["mrn", "name"]).map_err(csv_err)?;
    for p in patients {
        out.write_record([p.mrn.to_string(), p.name.clone()])
            .map_err(csv_err)?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| csv_err(e.into_error().into()))?;
    crate::atomic::write_atomically(path, &bytes)
}

fn write_manifest(path: &Path, manifest: &Manifest) -> Result<()> {
    let mut text = serde_json::to_string_pretty(manifest).expect("manifest serialises");
    text.push('\n');
    crate::atomic::write_atomically(path, text.as_bytes())
}

/// One reading, as generated.
struct Reading {
    time: f64,
    device_id: u32,
    mrn: i64,
    heartrate: f64,
}

/// The first instant of a month counted from January of the first year, in epoch seconds.
fn month_start(month: u32) -> i64 {
    let year = FIRST_YEAR + (month / 12) as i32;
    let date = NaiveDate::from_ymd_opt(year, month % 12 + 1, 1).expect("valid month");
    date.and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp()
}

/// Write month `month`'s tracker file; returns its path and row count.
fn write_month(
    tracker: &Path,
    options: &GenerateOptions,
    patients: &[Patient],
    month: u32,
) -> Result<(PathBuf, usize)> {
    let readings = month_readings(options, patients, month);
    let mut text = String::with_capacity(readings.len() * 140 + 4);
    if readings.is_empty() {
        text.push_str("[]");
    } else {
        text.push('[');
        for (i, r) in readings.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            // Exactly Python's json.dump(indent=4) layout, every value a string.
            let _ = write!(
                text,
                "\n    {{\n        \"device_id\": \"{}\",\n        \"heartrate\": \"{}\",\n        \
                 \"mrn\": \"{}\",\n        \"time\": \"{}\"\n    }}",
                r.device_id,
                float_text(r.heartrate),
                r.mrn,
                float_text(r.time)
            );
        }
        text.push_str("\n]");
    }
    let path = tracker.join(month_file(month));
    crate::atomic::write_atomically(&path, text.as_bytes())?;
    Ok((path, readings.len()))
}

/// A float as Python's `str` prints it: the shortest text that reads back the same, always with
/// a fractional part.
fn float_text(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

/// The readings delivered for one month, ordered by time, capped at [`MAX_ROWS_PER_FILE`].
fn month_readings(options: &GenerateOptions, patients: &[Patient], month: u32) -> Vec<Reading> {
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

/// The calendar month (year, month) of a generated month index, for reports.
pub fn month_label(month: u32) -> String {
    let date = chrono::DateTime::from_timestamp(month_start(month), 0).expect("valid time");
    format!("{}-{:02}", date.year(), date.month())
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
        assert_eq!(month_label(13), "2021-02");
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

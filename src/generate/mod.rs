//! A deterministic generator of the lab's source data: the patient dimension CSV and one tracker
//! file per month, in exactly the lab's format (see `lab_data/README.md`). The same seed and
//! options always give byte-identical files, and each month's file depends only on the seed, the
//! number of patients and the month, so `--append` can add month after month to a folder.
//!
//! The manifest beside the data (`healthcare/.generator.json`) lists every tracker file the
//! generator wrote: `--force` removes those and nothing else, and a file it did not write is
//! never overwritten.

mod data;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::source::discover::is_candidate_name;
use crate::warehouse::LocalData;

pub use data::patients;
use data::{float_text, month_readings};

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

/// Write a fresh data set into an object store folder: generated in a temporary local folder,
/// then uploaded (the patient CSV, then the tracker files oldest first, so their times order
/// them as the months do). Refuses a folder that already holds the patient CSV unless `force`.
pub async fn upload(
    data: &crate::warehouse::DataDir,
    options: &GenerateOptions,
    force: bool,
) -> Result<GenerateReport> {
    let start = Instant::now();
    let (patients_dir, patients_name) = data.patients_csv();
    let patients = patients_dir.folder(data.options())?;
    if !force && patients.exists(patients_name).await? {
        return Err(Error::Usage(format!(
            "{} already holds a data set: give --force to replace it",
            data.location().display()
        )));
    }
    let tmp = tempfile::tempdir().map_err(Error::io("create a temporary folder in", "/tmp"))?;
    let local = LocalData::new(tmp.path());
    let mut report = generate(&local, options, true)?;
    let tracker = data.tracker().folder(data.options())?;
    // What a data set there already holds: the month files of an earlier `generate` (named as
    // it names them) go, as they do locally with --force; other files stay, and are named.
    let ours: BTreeSet<String> = report
        .files
        .iter()
        .filter_map(|f| Some(f.file_name()?.to_str()?.to_string()))
        .collect();
    for name in tracker.names().await? {
        if ours.contains(&name) || !is_candidate_name(&name) {
            continue;
        }
        if is_month_file_name(&name) {
            tracker.delete(&name).await?;
        } else {
            report.warnings.push(format!(
                "{}: not written by `medallion generate`, so it was left in place; bronze will \
                 ingest it with the generated files",
                tracker.display_file(&name)
            ));
        }
    }
    let mut uploaded = Vec::new();
    let csv = local.patients_csv();
    let bytes = std::fs::read(&csv).map_err(Error::io("read", &csv))?;
    patients.replace(patients_name, &bytes).await?;
    for file in &report.files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .expect("the generator names its files in UTF-8");
        let bytes = std::fs::read(file).map_err(Error::io("read", file))?;
        tracker.replace(name, &bytes).await?;
        uploaded.push(tracker.path_of(name));
    }
    report.data_dir = PathBuf::from(data.location().display());
    report.files = uploaded;
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

/// Whether `name` is how the generator names a month's file (`NN.json`, any number of digits).
fn is_month_file_name(name: &str) -> bool {
    name.strip_suffix(".json")
        .is_some_and(|stem| !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()))
}

/// Write a fresh data set: the patient CSV and `months × scale` tracker files. Refuses to write
/// over an existing data set unless `force` is set, which removes the tracker files an earlier
/// run wrote first. Files the generator did not write stay (the report names them), and one
/// under a name it must write is refused.
pub fn generate(dir: &LocalData, options: &GenerateOptions, force: bool) -> Result<GenerateReport> {
    let start = Instant::now();
    validate(options)?;
    let tracker = dir.tracker_dir();
    let manifest_path = dir.generator_manifest();
    let present = entry_names(&tracker)?;
    let existing = present
        .iter()
        .filter(|name| Path::new(name).extension().is_some_and(|e| e == "json"))
        .count();
    if existing > 0 && !force {
        return Err(Error::Usage(format!(
            "{} already holds {existing} tracker files: use --append to add the next month, or \
             --force to replace them",
            tracker.display(),
        )));
    }
    let total_months = options.months * options.scale;
    let targets: BTreeSet<String> = (0..total_months).map(month_file).collect();
    let written = read_manifest(&manifest_path)?.map_or_else(BTreeSet::new, |m| m.written());
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
pub fn append(dir: &LocalData) -> Result<GenerateReport> {
    let start = Instant::now();
    let manifest_path = dir.generator_manifest();
    let mut manifest = read_manifest(&manifest_path)?.ok_or_else(|| Error::SourceMissing {
        path: manifest_path.clone(),
        hint: " (run `medallion generate` first: --append adds to a generated folder)".into(),
    })?;
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

//! `medallion report`: the warehouse as one self-contained HTML file (inline SVG and CSS,
//! nothing fetched, readable offline and printed), as it is or as it was.
//!
//! Decide, then act: [`gather::plan`] picks the version of every table (latest, `--as-of`,
//! or gold's `--version` with daily's from the same refresh), [`gather::facts`] reads those
//! versions, [`charts`] draws them, [`page`] fills `template.html`; the file is written whole
//! or not at all. Reads the tables only.

pub mod charts;
pub mod gather;
pub mod page;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::inspect::show::At;
use crate::output::Report;
use crate::warehouse::Warehouse;

/// What to write, from which versions.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub out: PathBuf,
    pub at: At,
}

/// What `report` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub path: String,
    pub bytes: u64,
    /// What the report shows: `latest`, `as of …`, `fact_heartrate_gold v3 (…)`.
    pub at: String,
    /// Table -> version read.
    pub versions: std::collections::BTreeMap<String, u64>,
    pub patients: usize,
    pub daily_rows: u64,
    pub batches: usize,
    pub duration_ms: u64,
    /// What was skipped (a progress record that is not one), also printed as warnings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Set when `--open` could not hand the file to a browser.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_failed: Option<String>,
}

impl Report for Written {
    fn summary(&self) -> String {
        let kib = self.bytes.div_ceil(1024);
        let mut text = format!(
            "report: wrote {} ({kib} KiB) in {:.2} s: {}, {} patients in gold, {} daily rows, \
             {} bronze batches recorded, {} tables",
            self.path,
            self.duration_ms as f64 / 1000.0,
            self.at,
            self.patients,
            self.daily_rows,
            self.batches,
            self.versions.len()
        );
        text.push_str(&format!("\nopen it in a browser: {}", file_url(&self.path)));
        text
    }
}

/// `file://` URL of a local path.
fn file_url(path: &str) -> String {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
    url::Url::from_file_path(&absolute)
        .map(|u| u.to_string())
        .unwrap_or_else(|()| absolute.display().to_string())
}

/// Write the report.
pub async fn run(warehouse: &Warehouse, options: &ReportOptions) -> Result<Written> {
    let start = Instant::now();
    let out = output_path(&options.out)?;
    let plan = gather::plan(warehouse, options.at).await?;
    let facts = gather::facts(warehouse, &plan).await?;
    let html = page::render(&facts)?;
    crate::atomic::write_atomically(&out, html.as_bytes())?;
    Ok(Written {
        path: options.out.display().to_string(),
        bytes: html.len() as u64,
        at: plan.label,
        versions: plan.versions,
        patients: facts.gold.as_ref().map_or(0, |g| g.rows.len()),
        daily_rows: facts.daily.as_ref().map_or(0, |d| d.rows),
        batches: facts.batches.len(),
        duration_ms: start.elapsed().as_millis() as u64,
        warnings: facts.warnings,
        open_failed: None,
    })
}

/// Where the report goes, checked before any work: a file name alone is in the current folder;
/// a symbolic link is followed (the file it names is replaced, the link kept); a folder, a
/// device, a dangling link or a folder that does not exist is refused. The file is replaced by
/// a rename, which would put a regular file in a device's place.
fn output_path(out: &Path) -> Result<PathBuf> {
    if out.as_os_str().is_empty() {
        return Err(Error::Usage("--out names no file".into()));
    }
    let out = match out.parent() {
        Some(parent) if parent.as_os_str().is_empty() => Path::new(".").join(out),
        _ => out.to_path_buf(),
    };
    let refused = |why: String| Err(Error::Usage(format!("--out {}: {why}", out.display())));
    let target = match std::fs::symlink_metadata(&out) {
        Ok(meta) if meta.file_type().is_symlink() => match std::fs::canonicalize(&out) {
            Ok(target) => target,
            Err(_) => return refused("a symbolic link to nothing".into()),
        },
        _ => out.clone(),
    };
    match std::fs::metadata(&target) {
        Ok(meta) if meta.is_dir() => {
            return refused(format!(
                "is a folder: name the file to write (e.g. {}/report.html)",
                out.display()
            ));
        }
        Ok(meta) if !meta.is_file() => {
            return refused("is not a regular file (a device or a pipe): name a file".into());
        }
        _ => {}
    }
    let folder = target.parent().unwrap_or(Path::new("."));
    if !folder.as_os_str().is_empty() && !folder.is_dir() {
        return refused(format!("folder {} does not exist", folder.display()));
    }
    Ok(target)
}

/// Hand the written file to the desktop's browser (`xdg-open`, `open` on macOS); what went
/// wrong if it could not.
pub fn open_in_browser(path: &str) -> Option<String> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => None,
        Err(e) => Some(format!(
            "could not open a browser ({opener}: {e}): open {} yourself",
            file_url(path)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_path_is_a_file_in_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("old.html");
        std::fs::write(&file, "old").unwrap();
        let link = dir.path().join("link.html");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let dangling = dir.path().join("dangling.html");
        std::os::unix::fs::symlink(dir.path().join("gone"), &dangling).unwrap();
        let canonical = std::fs::canonicalize(&file).unwrap();
        let cases: [(PathBuf, std::result::Result<PathBuf, &str>); 9] = [
            ("report.html".into(), Ok("./report.html".into())),
            (file.clone(), Ok(file.clone())),
            (link, Ok(canonical)),
            (dir.path().join("new.html"), Ok(dir.path().join("new.html"))),
            (dir.path().to_path_buf(), Err("is a folder")),
            (PathBuf::new(), Err("names no file")),
            ("/dev/null".into(), Err("is not a regular file")),
            (dangling, Err("a symbolic link to nothing")),
            (dir.path().join("nodir/r.html"), Err("does not exist")),
        ];
        for (given, expected) in cases {
            match (output_path(&given), expected) {
                (Ok(path), Ok(want)) => assert_eq!(path, want),
                (Err(e), Err(message)) => assert!(e.to_string().contains(message), "{e}"),
                (got, want) => panic!("{given:?}: {got:?}, expected {want:?}"),
            }
        }
    }
}

//! Where things are: the warehouse's tables (as URLs, so an object store can come later), the
//! streams' checkpoint folders, and the source folders under the data directory.
//!
//! `--warehouse` and `--data` are local folders. A plain path is taken literally, never
//! percent-decoded; a `file://` URL is read as a URL (percent-decoded); any other `scheme://` is
//! refused until object storage lands, rather than becoming a local folder named `s3:`. A
//! warehouse folder whose tables deltalake would look for elsewhere (`%20` or `\` in a name) is
//! refused before anything is written.

use std::path::{Component, Path, PathBuf};

use url::Url;

use crate::catalog::{self, DATABASE};
use crate::error::{Error, Result};

/// A warehouse: a root location holding `<database>.db/<table>/` Delta tables.
#[derive(Debug, Clone)]
pub struct Warehouse {
    root: Url,
}

impl Warehouse {
    /// A warehouse rooted at a local folder (created on first write). Refuses a path that the
    /// tables' URLs would not name exactly, before anything is written.
    pub fn local(root: &Path) -> Result<Self> {
        let unusable = |why: &str| {
            Error::Usage(format!(
                "warehouse {} cannot be used: {why}",
                root.display()
            ))
        };
        let absolute = resolve(root)?;
        if absolute.to_str().is_none() {
            return Err(unusable("its path is not valid UTF-8"));
        }
        // Parsed again, as deltalake does: what it reads is what we hold.
        let url = Url::from_directory_path(&absolute)
            .ok()
            .and_then(|url| Url::parse(url.as_str()).ok())
            .ok_or_else(|| unusable("it cannot be written as a file:// URL"))?;
        let warehouse = Self { root: url };
        // The tables' locations must come back to folders under this one, both as file paths
        // (checkpoints) and as object_store paths (Delta), or a table would land elsewhere.
        let table = warehouse.table_url(catalog::DIM_PATIENTS.name);
        let expected = absolute
            .join(format!("{DATABASE}.db"))
            .join(catalog::DIM_PATIENTS.name);
        if table.to_file_path().ok().as_ref() != Some(&expected) {
            return Err(unusable("its tables' URLs do not name folders inside it"));
        }
        let object_path = deltalake::Path::from_url_path(table.path())
            .map_err(|e| unusable(&format!("object_store cannot name it ({e})")))?;
        // deltalake's kernel turns the paths it lists back into URLs by their text
        // (`Url::set_path`), which reads `%XX` as an escape and `\` as a separator: it would read
        // the log of `a%20b` in `a b`, and that of `x/%2e%2e/y` in `y`. Refused, not misread.
        let mut listed = table.clone();
        listed.set_path(&format!("/{object_path}"));
        if listed.to_file_path().ok().as_ref() != Some(&expected) {
            return Err(unusable(
                "deltalake would read its tables in another folder (a '%' followed by two hex \
                 digits, or a '\\', in a folder name); rename the folder",
            ));
        }
        Ok(warehouse)
    }

    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The location of a table, always with a trailing slash.
    pub fn table_url(&self, table: &str) -> Url {
        self.root
            .join(&format!("{DATABASE}.db/{table}/"))
            .expect("a table name is a plain identifier")
    }

    /// The local folder of a table. Checkpoints live on the local file system for now.
    pub fn table_dir(&self, table: &str) -> Result<PathBuf> {
        let url = self.table_url(table);
        url.to_file_path()
            .map_err(|()| Error::Usage(format!("{url} is not a local folder")))
    }

    /// A stream's checkpoint folder: `<table>/_checkpoint/`. Delta readers and vacuum ignore
    /// folders whose names start with `_`.
    pub fn checkpoint_dir(&self, table: &str) -> Result<PathBuf> {
        Ok(self.table_dir(table)?.join("_checkpoint"))
    }
}

/// The folder of source files: `healthcare/batch/` and `healthcare/streaming/tracker/`.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn patients_csv(&self) -> PathBuf {
        self.root.join("healthcare/batch/patient_info.csv")
    }

    pub fn tracker_dir(&self) -> PathBuf {
        self.root.join("healthcare/streaming/tracker")
    }

    /// Where `generate` keeps the parameters it was run with, for `generate --append`.
    pub fn generator_manifest(&self) -> PathBuf {
        self.root.join("healthcare/.generator.json")
    }
}

/// Parse `--warehouse` / `--data`: a local folder. A plain path is kept as it is written; a
/// `file://` URL becomes the path it names (percent-decoded); any other URL is refused, since
/// only local folders are supported for now.
pub fn parse_location(text: &str) -> std::result::Result<PathBuf, String> {
    if text.is_empty() {
        return Err("an empty path names no folder".into());
    }
    let Some(scheme) = url_scheme(text) else {
        return Ok(PathBuf::from(text));
    };
    if !scheme.eq_ignore_ascii_case("file") {
        return Err(format!(
            "{scheme}:// URLs are not supported yet (object storage is to come): give a local \
             folder, as a path or a file:///absolute/path URL"
        ));
    }
    let url = Url::parse(text).map_err(|e| format!("not a valid file URL: {e}"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a file URL names a folder: it takes no '?' or '#' part".into());
    }
    url.to_file_path().map_err(|()| {
        "a file URL must name a local absolute path, as file:///absolute/path (no host)".into()
    })
}

/// The scheme of `text` if it starts as a URL does (`scheme://`), e.g. `s3` in
/// `s3://bucket/wh`. A single letter is a Windows drive, not a scheme.
fn url_scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && scheme.len() > 1
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// An absolute form of `path` without `.` or `..` parts, taken literally otherwise. A `..` goes
/// up from where the path really is (through symbolic links) when that folder exists, as the
/// file system would; a URL would simply drop the previous part.
fn resolve(path: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(path).map_err(Error::io("resolve", path))?;
    let mut resolved = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if let Ok(real) = std::fs::canonicalize(&resolved) {
                    resolved = real;
                }
                resolved.pop();
            }
            other => resolved.push(other),
        }
    }
    Ok(resolved)
}

/// Check that a table name is a plain identifier, never a path.
pub fn validate_table_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with('_');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{name:?} is not a table name: use letters, digits and '_' (no paths)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_urls_sit_under_the_database_folder() {
        let w = Warehouse::local(Path::new("/tmp/wh")).unwrap();
        assert_eq!(
            w.table_url(catalog::DIM_PATIENTS.name).as_str(),
            "file:///tmp/wh/healthcare_dlh.db/dim_patients/"
        );
        assert_eq!(
            w.checkpoint_dir(catalog::BRONZE.name).unwrap(),
            PathBuf::from("/tmp/wh/healthcare_dlh.db/fact_heartrate_bronze/_checkpoint")
        );
    }

    #[test]
    fn only_local_locations_are_accepted() {
        for url in [
            "s3://bucket/wh",
            "S3://b",
            "gs://b/x",
            "abfss://c@a.dfs/x",
            "http://h/x",
        ] {
            let refused = parse_location(url).unwrap_err();
            assert!(refused.contains("not supported yet"), "{url}: {refused}");
        }
        assert_eq!(
            parse_location("file:///tmp/my%20wh").unwrap(),
            PathBuf::from("/tmp/my wh")
        );
        assert_eq!(
            parse_location("file://localhost/tmp/wh").unwrap(),
            PathBuf::from("/tmp/wh")
        );
        for bad in ["file://host/tmp/wh", "file:///tmp/wh?x=1", ""] {
            assert!(parse_location(bad).is_err(), "{bad}");
        }
        // Plain paths are literal, whatever they hold.
        for plain in [
            "wh", "a%20b", "%2e%2e/x", "a\\b", "s3:/b", "./s3://b", "C://x",
        ] {
            assert_eq!(
                parse_location(plain).unwrap(),
                PathBuf::from(plain),
                "{plain}"
            );
        }
    }

    #[test]
    fn a_literal_path_round_trips_through_the_table_urls() {
        for name in ["a b", "a#1", "a?b", "é", "a%zz", "100%", "a[1]"] {
            let root = Path::new("/tmp/wh").join(name);
            let w = Warehouse::local(&root).unwrap();
            assert_eq!(
                w.table_dir(catalog::SILVER.name).unwrap(),
                root.join("healthcare_dlh.db").join(catalog::SILVER.name),
                "{name}"
            );
        }
        // Names deltalake would read as other folders are refused.
        for name in ["a%20b", "%2e%2e", "x/%2E%2e/y", "a\\b", "line\nbreak"] {
            let refused = Warehouse::local(&Path::new("/tmp/wh").join(name)).unwrap_err();
            assert!(matches!(refused, Error::Usage(_)), "{name}");
        }
        let w = Warehouse::local(Path::new("/tmp/x/../wh/./y")).unwrap();
        assert_eq!(w.root().as_str(), "file:///tmp/wh/y/");
    }

    #[test]
    fn table_names_are_identifiers() {
        assert!(validate_table_name(catalog::GOLD.name).is_ok());
        for bad in ["", "../x", "a/b", "_checkpoint", "a.b"] {
            assert!(validate_table_name(bad).is_err(), "{bad}");
        }
    }
}

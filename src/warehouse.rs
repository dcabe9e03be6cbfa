//! Where things are: the warehouse's tables (as URLs), the streams' checkpoint folders, and the
//! source folders under the data directory.
//!
//! `--warehouse` and `--data` are a local folder or an object store URL (`s3://bucket/prefix`).
//! A plain path is taken literally, never percent-decoded; a `file://` URL is read as a URL
//! (percent-decoded); `s3://` (and `s3a://`) is an S3-compatible store, configured by the usual
//! `AWS_*` environment variables and `--storage-option KEY=VALUE`; any other `scheme://` is
//! refused rather than becoming a local folder named `gs:`. A local warehouse folder whose
//! tables deltalake would look for elsewhere (`%20` or `\` in a name) is refused before
//! anything is written.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use url::Url;

use crate::catalog::{self, DATABASE};
use crate::error::{Error, Result};
use crate::folder::Folder;

/// What `--warehouse`, `--data` or a `--source` names: a local folder or an object store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    /// An object store folder, with a trailing `/`.
    Url(Url),
}

impl Location {
    /// As a user wrote it (a path) or as the store names it (a URL).
    pub fn display(&self) -> String {
        match self {
            Self::Local(path) => path.display().to_string(),
            Self::Url(url) => url.to_string(),
        }
    }

    /// The location `relative` (a `/`-separated folder path) inside this one.
    pub fn join(&self, relative: &str) -> Self {
        match self {
            Self::Local(path) => Self::Local(
                relative
                    .split('/')
                    .fold(path.clone(), |p, part| p.join(part)),
            ),
            Self::Url(url) => Self::Url(
                url.join(&format!("{}/", relative.trim_end_matches('/')))
                    .unwrap_or_else(|_| url.clone()),
            ),
        }
    }

    /// The folder there. A local folder keeps the path as given (relative or not).
    pub fn folder(&self, options: &StorageOptions) -> Result<Folder> {
        match self {
            Self::Local(path) => Ok(Folder::Local(path.clone())),
            Self::Url(url) => Folder::at(url, options),
        }
    }
}

/// `--storage-option KEY=VALUE` pairs, for deltalake and object_store (`AWS_ENDPOINT_URL`,
/// `AWS_ALLOW_HTTP`, ...); the environment's `AWS_*` variables apply where a key is not given.
pub type StorageOptions = HashMap<String, String>;

/// The S3 endpoint, if one is set (`--storage-option`, else `AWS_ENDPOINT_URL`/`AWS_ENDPOINT`),
/// must be an `http(s)://host[:port]` URL: object_store would panic on anything else.
pub fn check_endpoint(options: &StorageOptions) -> Result<()> {
    let given = |key: &str| {
        options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| (format!("--storage-option {key}"), v.clone()))
    };
    let from_env = |key: &str| std::env::var(key).ok().map(|v| (key.to_string(), v));
    let endpoint = given("AWS_ENDPOINT_URL")
        .or_else(|| given("AWS_ENDPOINT"))
        .or_else(|| given("endpoint"))
        .or_else(|| from_env("AWS_ENDPOINT_URL"))
        .or_else(|| from_env("AWS_ENDPOINT"));
    let Some((source, value)) = endpoint else {
        return Ok(());
    };
    let valid = Url::parse(&value).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty())
    });
    if valid {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{source} is {value:?}: an S3 endpoint is a URL such as http://127.0.0.1:9000 or \
             https://s3.eu-west-1.amazonaws.com"
        )))
    }
}

/// Parse `--storage-option KEY=VALUE`.
pub fn parse_storage_option(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err("expected KEY=VALUE, e.g. AWS_ENDPOINT_URL=http://127.0.0.1:9000".into()),
    }
}

/// A warehouse: a root location holding `<database>.db/<table>/` Delta tables.
#[derive(Debug, Clone)]
pub struct Warehouse {
    root: Url,
    options: Arc<StorageOptions>,
}

impl Warehouse {
    /// The warehouse at `location`: a local folder ([`Warehouse::local`]) or an object store
    /// folder, reached with `options`.
    pub fn open(location: &Location, options: &StorageOptions) -> Result<Self> {
        let warehouse = match location {
            Location::Local(path) => Self::local(path)?,
            Location::Url(url) => {
                check_endpoint(options)?;
                Self {
                    root: url.clone(),
                    options: Arc::new(StorageOptions::new()),
                }
            }
        };
        Ok(Self {
            options: Arc::new(options.clone()),
            ..warehouse
        })
    }

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
        let warehouse = Self {
            root: url,
            options: Arc::new(StorageOptions::new()),
        };
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

    /// Whether the warehouse is a local folder.
    pub fn is_local(&self) -> bool {
        self.root.scheme() == "file"
    }

    /// The storage options every table, checkpoint and probe of the warehouse is reached with.
    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    /// The warehouse's own folder (where the store probe's record is kept).
    pub fn folder(&self) -> Result<Folder> {
        Folder::at(&self.root, &self.options)
    }

    /// The local folder of a table, for what only a local disk has (`None` in an object store).
    pub fn table_dir(&self, table: &str) -> Option<PathBuf> {
        self.table_url(table).to_file_path().ok()
    }

    /// The checkpoint folder of the bronze stream reading source `source`: `<table>/_checkpoint/`
    /// for the default source (the layout of a single-stream warehouse, kept), and
    /// `<table>/_checkpoint/<source>/` for every other. Delta readers and vacuum ignore
    /// folders whose names start with `_`.
    pub fn checkpoint(&self, table: &str, source: &str) -> Result<Folder> {
        let folder = Folder::at(&self.table_url(table), &self.options)?.join("_checkpoint");
        Ok(if source == DEFAULT_SOURCE {
            folder
        } else {
            folder.join(source)
        })
    }
}

/// The name of the source `bronze` reads when no `--source` is given: the tracker folder.
pub const DEFAULT_SOURCE: &str = "tracker";

/// Names a source cannot take: the single-stream checkpoint's own folders.
const RESERVED_SOURCE_NAMES: [&str; 2] = ["offsets", "commits"];

/// One `--source NAME=LOCATION` of `bronze`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    pub name: String,
    pub location: Location,
}

/// Parse `--source NAME=LOCATION`: a name of letters, digits, `_` and `-`, and a folder as
/// `--data` takes it.
pub fn parse_source(text: &str) -> std::result::Result<SourceSpec, String> {
    let Some((name, location)) = text.split_once('=') else {
        return Err("expected NAME=FOLDER, e.g. site_a=s3://bucket/site_a/".into());
    };
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with(['_', '-']);
    if !valid {
        return Err(format!(
            "{name:?} is not a source name: use letters, digits, '_' and '-' (it names the \
             source's checkpoint folder)"
        ));
    }
    if RESERVED_SOURCE_NAMES.contains(&name) {
        return Err(format!(
            "{name:?} is the name of a checkpoint folder of its own: pick another source name"
        ));
    }
    Ok(SourceSpec {
        name: name.to_string(),
        location: parse_location(location)?,
    })
}

/// The folder of source files: `healthcare/batch/` and `healthcare/streaming/tracker/`.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: Location,
    options: Arc<StorageOptions>,
}

impl DataDir {
    pub fn new(root: Location, options: &StorageOptions) -> Self {
        Self {
            root,
            options: Arc::new(options.clone()),
        }
    }

    pub fn location(&self) -> &Location {
        &self.root
    }

    /// The local folder, `None` in an object store.
    pub fn local_root(&self) -> Option<&Path> {
        match &self.root {
            Location::Local(path) => Some(path),
            Location::Url(_) => None,
        }
    }

    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    /// The patient CSV's folder, and its file name.
    pub fn patients_csv(&self) -> (Location, &'static str) {
        (self.root.join(PATIENTS_FOLDER), PATIENTS_FILE)
    }

    /// The default source of `bronze`.
    pub fn tracker(&self) -> Location {
        self.root.join(TRACKER_FOLDER)
    }

    /// The data folder on the local disk, for what only a local folder has (`generate`).
    pub fn local(&self) -> Option<LocalData> {
        self.local_root().map(|root| LocalData {
            root: root.to_path_buf(),
        })
    }
}

const PATIENTS_FOLDER: &str = "healthcare/batch";
const PATIENTS_FILE: &str = "patient_info.csv";
const TRACKER_FOLDER: &str = "healthcare/streaming/tracker";

/// A data folder on the local disk, where `generate` writes.
#[derive(Debug, Clone)]
pub struct LocalData {
    root: PathBuf,
}

impl LocalData {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn patients_csv(&self) -> PathBuf {
        self.root.join(PATIENTS_FOLDER).join(PATIENTS_FILE)
    }

    pub fn tracker_dir(&self) -> PathBuf {
        self.root.join(TRACKER_FOLDER)
    }

    /// Where `generate` keeps the parameters it was run with, for `generate --append`.
    pub fn generator_manifest(&self) -> PathBuf {
        self.root.join("healthcare/.generator.json")
    }
}

/// Parse `--warehouse` / `--data` / a source's folder: a plain path is kept as it is written; a
/// `file://` URL becomes the path it names (percent-decoded); `s3://bucket/prefix` (or
/// `s3a://`) is an object store folder; any other URL is refused.
pub fn parse_location(text: &str) -> std::result::Result<Location, String> {
    if text.is_empty() {
        return Err("an empty path names no folder".into());
    }
    let Some(scheme) = url_scheme(text) else {
        return Ok(Location::Local(PathBuf::from(text)));
    };
    let scheme = scheme.to_ascii_lowercase();
    let url = Url::parse(text).map_err(|e| format!("not a valid URL: {e}"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a folder URL takes no '?' or '#' part".into());
    }
    match scheme.as_str() {
        "file" => url.to_file_path().map(Location::Local).map_err(|()| {
            "a file URL must name a local absolute path, as file:///absolute/path (no host)".into()
        }),
        "s3" | "s3a" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!(
                    "{text}: an S3 URL names a bucket: s3://bucket/prefix"
                ));
            }
            // Read from the text: a URL parser would quietly resolve them.
            let written = text.split_once("://").map_or("", |(_, rest)| rest);
            if written
                .split('/')
                .skip(1)
                .any(|part| part == "." || part == "..")
            {
                return Err(format!(
                    "{text}: '.' and '..' are not folders in an object store"
                ));
            }
            let mut url = url;
            if !url.path().ends_with('/') {
                let path = format!("{}/", url.path());
                url.set_path(&path);
            }
            Ok(Location::Url(url))
        }
        other => Err(format!(
            "{other}:// URLs are not supported: give a local folder (a path or a \
             file:///absolute/path URL) or an S3 folder (s3://bucket/prefix)"
        )),
    }
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
        let local = |folder: Folder| match folder {
            Folder::Local(path) => path,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            local(w.checkpoint(catalog::BRONZE.name, DEFAULT_SOURCE).unwrap()),
            PathBuf::from("/tmp/wh/healthcare_dlh.db/fact_heartrate_bronze/_checkpoint")
        );
        assert_eq!(
            local(w.checkpoint(catalog::BRONZE.name, "site_a").unwrap()),
            PathBuf::from("/tmp/wh/healthcare_dlh.db/fact_heartrate_bronze/_checkpoint/site_a")
        );
        let s3 = Warehouse::open(
            &parse_location("s3://lake/wh").unwrap(),
            &StorageOptions::new(),
        )
        .unwrap();
        assert!(!s3.is_local());
        assert_eq!(
            s3.table_url(catalog::GOLD.name).as_str(),
            "s3://lake/wh/healthcare_dlh.db/fact_heartrate_gold/"
        );
    }

    #[test]
    fn locations_are_local_folders_or_s3_urls() {
        let url = |text: &str| match parse_location(text).unwrap() {
            Location::Url(url) => url.to_string(),
            other => panic!("{text}: {other:?}"),
        };
        // (given, the folder URL): a trailing slash is added, the scheme is lowercased.
        for (given, want) in [
            ("s3://bucket/wh", "s3://bucket/wh/"),
            ("s3://bucket/wh/", "s3://bucket/wh/"),
            ("S3://b", "s3://b/"),
            ("s3a://b/x/y", "s3a://b/x/y/"),
        ] {
            assert_eq!(url(given), want, "{given}");
        }
        for refused in ["gs://b/x", "abfss://c@a.dfs/x", "http://h/x"] {
            let why = parse_location(refused).unwrap_err();
            assert!(why.contains("not supported"), "{refused}: {why}");
        }
        for bad in ["s3:///x", "s3://b/x?y=1", "s3://b/../x", "s3://b/./x"] {
            assert!(parse_location(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_location("file:///tmp/my%20wh").unwrap(),
            Location::Local(PathBuf::from("/tmp/my wh"))
        );
        assert_eq!(
            parse_location("file://localhost/tmp/wh").unwrap(),
            Location::Local(PathBuf::from("/tmp/wh"))
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
                Location::Local(PathBuf::from(plain)),
                "{plain}"
            );
        }
    }

    #[test]
    fn sources_are_named_folders() {
        let spec = parse_source("site_a=s3://lake/a").unwrap();
        assert_eq!(spec.name, "site_a");
        assert_eq!(spec.location, parse_location("s3://lake/a/").unwrap());
        assert_eq!(
            parse_source("b-2=./x=y").unwrap().location,
            Location::Local(PathBuf::from("./x=y"))
        );
        for bad in ["nosign", "=x", "_a=x", "a/b=x", "offsets=x", "a b=x", "a="] {
            assert!(parse_source(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_storage_option("AWS_REGION=eu-west-1").unwrap(),
            ("AWS_REGION".to_string(), "eu-west-1".to_string())
        );
        assert!(parse_storage_option("=x").is_err());
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

//! Where things are: the warehouse's tables (as URLs, so an object store can come later), the
//! streams' checkpoint folders, and the source folders under the data directory.

use std::path::{Path, PathBuf};

use url::Url;

use crate::error::{Error, Result};

/// The database folder inside the warehouse, named as Spark names a database's folder.
pub const DATABASE: &str = "healthcare_dlh";

/// Tables the pipeline writes, in the order the pipeline writes them.
pub mod tables {
    pub const DIM_PATIENTS: &str = "dim_patients";
    pub const BRONZE: &str = "fact_heartrate_bronze";
    pub const BRONZE_QUARANTINE: &str = "fact_heartrate_bronze_quarantine";
    pub const SILVER: &str = "fact_heartrate_silver";
    pub const SILVER_QUARANTINE: &str = "fact_heartrate_silver_quarantine";
    pub const SILVER_WAITING: &str = "fact_heartrate_silver_waiting";
    pub const GOLD: &str = "fact_heartrate_gold";
    pub const DAILY: &str = "fact_heartrate_daily";
}

/// A warehouse: a root location holding `<database>.db/<table>/` Delta tables.
#[derive(Debug, Clone)]
pub struct Warehouse {
    root: Url,
}

impl Warehouse {
    /// A warehouse rooted at a local folder (created on first write).
    pub fn local(root: &Path) -> Result<Self> {
        let absolute = std::path::absolute(root).map_err(Error::io("resolve", root))?;
        let root = Url::from_directory_path(&absolute).map_err(|()| {
            Error::Usage(format!(
                "warehouse {} is not a usable folder path",
                root.display()
            ))
        })?;
        Ok(Self { root })
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
            w.table_url("dim_patients").as_str(),
            "file:///tmp/wh/healthcare_dlh.db/dim_patients/"
        );
        assert_eq!(
            w.checkpoint_dir("fact_heartrate_bronze").unwrap(),
            PathBuf::from("/tmp/wh/healthcare_dlh.db/fact_heartrate_bronze/_checkpoint")
        );
    }

    #[test]
    fn table_names_are_identifiers() {
        assert!(validate_table_name("fact_heartrate_gold").is_ok());
        for bad in ["", "../x", "a/b", "_checkpoint", "a.b"] {
            assert!(validate_table_name(bad).is_err(), "{bad}");
        }
    }
}

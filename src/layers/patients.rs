//! `patients`: the patient CSV into `dim_patients`, by MERGE on mrn. New patients are inserted,
//! renamed ones updated, and a load that changes nothing writes no version. The whole file is
//! checked before anything is written, so a bad file leaves the table as it was.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::transaction::CommitProperties;
use serde::Serialize;

use crate::catalog::DIM_PATIENTS;
use crate::delta::merge::{Upsert, upsert};
use crate::delta::{self, TableId};
use crate::error::{Error, Result};
use crate::output::{Report, version_change};
use crate::source::csv::{PatientRow, parse_patients, patients_batch, read_patients};
use crate::warehouse::{DataDir, Location, Warehouse};

/// What a `patients` run did.
#[derive(Debug, Clone, Serialize)]
pub struct PatientsReport {
    pub table: String,
    pub source: PathBuf,
    pub rows_read: usize,
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// The table's version before the run (None: it did not exist).
    pub version_before: Option<u64>,
    /// The table's version after the run; equal to `version_before` when nothing changed.
    pub version_after: u64,
    pub duration_ms: u64,
}

impl Report for PatientsReport {
    fn summary(&self) -> String {
        let version = version_change(self.version_before, Some(self.version_after));
        format!(
            "patients: {} rows read, {} inserted, {} updated, {} unchanged; {} {} ({} ms)",
            self.rows_read,
            self.inserted,
            self.updated,
            self.unchanged,
            self.table,
            version,
            self.duration_ms
        )
    }
}

/// The rows of the patient CSV under `data`, local or in an object store.
async fn read_patients_of(data: &DataDir) -> Result<Vec<PatientRow>> {
    let (dir, name) = data.patients_csv();
    if let Location::Local(dir) = &dir {
        return read_patients(&dir.join(name));
    }
    let folder = dir.folder(data.options())?;
    let path = folder.path_of(name);
    match folder.read(name).await? {
        Some(bytes) => parse_patients(&path, &bytes),
        None => Err(Error::SourceMissing {
            path,
            hint: " (upload the lab's data there: `medallion generate --data <that URL>`)".into(),
        }),
    }
}

/// Load the patient CSV into `dim_patients`.
pub async fn run(warehouse: &Warehouse, data: &DataDir) -> Result<PatientsReport> {
    let start = Instant::now();
    let (dir, name) = data.patients_csv();
    let source = dir.folder(data.options())?.path_of(name);
    let rows = read_patients_of(data).await?;
    let id = TableId::of(warehouse, &DIM_PATIENTS);

    let (table, version_before, current) = match delta::open(&id).await? {
        Some(table) => {
            let current = current_names(&delta::read_all(&id, &table).await?)?;
            let version = table.version();
            (table, version, current)
        }
        None => {
            let table = delta::create(&id, &DIM_PATIENTS, &[]).await?;
            (table, None, HashMap::new())
        }
    };

    let mut changed: Vec<PatientRow> = Vec::new();
    let (mut inserted, mut updated) = (0, 0);
    for row in &rows {
        match current.get(&row.mrn) {
            Some(name) if *name == row.name => {}
            Some(_) => {
                updated += 1;
                changed.push(row.clone());
            }
            None => {
                inserted += 1;
                changed.push(row.clone());
            }
        }
    }

    let mut version_after = table.version().unwrap_or(0);
    if !changed.is_empty() {
        let ctx = SessionContext::new();
        let source_frame = ctx
            .read_batch(patients_batch(&changed))
            .map_err(id.query_err("merge"))?;
        let props = CommitProperties::default().with_metadata([(
            "sourceFile".to_string(),
            serde_json::Value::String(source.display().to_string()),
        )]);
        let (table, merged) = upsert(
            &id,
            table,
            source_frame,
            Upsert {
                key: DIM_PATIENTS.key,
                update: &["name"],
                insert: &["mrn", "name"],
                props,
                ..Upsert::default()
            },
        )
        .await?;
        debug_assert_eq!(merged.inserted, inserted as u64);
        debug_assert_eq!(merged.updated, updated as u64);
        version_after = table.version().unwrap_or(0);
    }

    Ok(PatientsReport {
        table: id.name,
        source,
        rows_read: rows.len(),
        inserted,
        updated,
        unchanged: rows.len() - changed.len(),
        version_before,
        version_after,
        duration_ms: start.elapsed().as_millis() as u64,
    })
}

/// The dimension as it is: mrn -> name.
fn current_names(batches: &[RecordBatch]) -> Result<HashMap<i64, String>> {
    let mut names = HashMap::new();
    for batch in batches {
        let mrn = delta::int64s(batch, "mrn")?;
        let name = delta::strings(batch, "name")?;
        for (mrn, name) in mrn.iter().zip(name.iter()) {
            if let (Some(mrn), Some(name)) = (mrn, name) {
                names.insert(mrn, name.to_string());
            }
        }
    }
    Ok(names)
}

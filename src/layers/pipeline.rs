//! `pipeline`: every layer in order (patients → bronze → silver → gold), then the gold table as
//! the lab's last cell printed it (`patient_name, avg_heartrate, count` by `avg_heartrate`).

use std::time::Instant;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::util::pretty::pretty_format_batches;
use serde::Serialize;

use crate::catalog;
use crate::delta::{self, TableId};
use crate::error::Result;
use crate::layers::bronze::{self, BronzeOptions, BronzeReport, Observer};
use crate::layers::gold::{self, GoldReport};
use crate::layers::patients::{self, PatientsReport};
use crate::layers::silver::{self, SilverOptions, SilverReport};
use crate::output::{Report, Steps};
use crate::warehouse::{DataDir, Warehouse};

/// What a pipeline run did, layer by layer, and the gold table it ended with.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineReport {
    pub patients: PatientsReport,
    pub bronze: BronzeReport,
    pub silver: SilverReport,
    pub gold: GoldReport,
    /// `(patient_name, avg_heartrate, count)` ordered by `avg_heartrate`.
    pub gold_rows: Vec<(String, i64, i64)>,
    #[serde(skip)]
    pub gold_table: String,
    pub duration_ms: u64,
}

impl PipelineReport {
    /// `PASS`, or `WARN` with what a user should look at: rows this run quarantined, rows
    /// still waiting for their patient, warnings.
    pub fn verdict(&self) -> String {
        let mut issues = Vec::new();
        let quarantined = self.bronze.quarantined_rows + self.silver.quarantined;
        if quarantined > 0 {
            issues.push(format!(
                "{quarantined} rows quarantined (bronze {}, silver {})",
                self.bronze.quarantined_rows, self.silver.quarantined
            ));
        }
        if self.silver.waiting > 0 {
            issues.push(format!(
                "{} rows waiting for their patient",
                self.silver.waiting
            ));
        }
        if !self.bronze.warnings.is_empty() {
            issues.push(format!("{} warnings", self.bronze.warnings.len()));
        }
        let seconds = self.duration_ms as f64 / 1000.0;
        if issues.is_empty() {
            format!("pipeline: PASS in {seconds:.2} s")
        } else {
            format!("pipeline: WARN, {} ({seconds:.2} s)", issues.join(", "))
        }
    }
}

impl Report for PipelineReport {
    /// The gold table and the verdict: each layer's line is told as the layer ends
    /// ([`run`]'s `layer_done`).
    fn summary(&self) -> String {
        [self.gold_table.clone(), self.verdict()]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Who watches a pipeline run: bronze's observer, the progress of silver and gold, and each
/// layer's summary line as the layer ends.
pub trait Watcher {
    fn bronze(&mut self) -> &mut dyn Observer;
    fn steps(&mut self) -> &mut dyn Steps;
    fn layer_done(&mut self, summary: &str);
}

/// Run every layer, then read gold.
pub async fn run(
    warehouse: &Warehouse,
    data: &DataDir,
    bronze_options: &BronzeOptions,
    silver_options: &SilverOptions,
    watcher: &mut dyn Watcher,
) -> Result<PipelineReport> {
    let start = Instant::now();
    // A --data that names no tracker folder is an error before any table is made.
    bronze::check_sources(warehouse, data, bronze_options).await?;
    let patients = patients::run(warehouse, data).await?;
    watcher.layer_done(&patients.summary());
    let bronze = bronze::run(warehouse, data, bronze_options, watcher.bronze()).await?;
    watcher.layer_done(&bronze.summary());
    let silver = silver::run(warehouse, silver_options, watcher.steps()).await?;
    watcher.layer_done(&silver.summary());
    let gold = gold::run(
        warehouse,
        gold::GoldOptions::default(),
        &silver_options.rules,
        watcher.steps(),
    )
    .await?;
    watcher.layer_done(&gold.summary());
    let batches = gold_by_rate(warehouse).await?;
    let gold_table = pretty_format_batches(&batches)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut gold_rows = Vec::new();
    for batch in &batches {
        let names = delta::strings(batch, "patient_name")?;
        let rates = delta::int64s(batch, "avg_heartrate")?;
        let counts = delta::int64s(batch, "count")?;
        for i in 0..batch.num_rows() {
            gold_rows.push((names.value(i).to_string(), rates.value(i), counts.value(i)));
        }
    }
    Ok(PipelineReport {
        patients,
        bronze,
        silver,
        gold,
        gold_rows,
        gold_table,
        duration_ms: start.elapsed().as_millis() as u64,
    })
}

/// The lab's last cell: gold's name, average and count, by average.
async fn gold_by_rate(warehouse: &Warehouse) -> Result<Vec<RecordBatch>> {
    let id = TableId::of(warehouse, &catalog::GOLD);
    let Some(table) = delta::open(&id).await? else {
        return Ok(Vec::new());
    };
    let ctx = delta::session_with(&id, &table, "gold").await?;
    delta::query(
        &ctx,
        &id,
        "read",
        "SELECT patient_name, avg_heartrate, count FROM gold ORDER BY avg_heartrate, patient_name",
    )
    .await
}

//! Micro benchmarks of the two hot paths, run by `make bench`:
//! - the tracker reader: JSON file bytes → Arrow batches (rows/s, MB/s);
//! - one small Delta commit: bronze's append path against deltalake's own `write`, commit after
//!   commit on a growing table, to show whether the cost grows with the table.
//!
//! `cargo run --release --example micro [COMMITS]` (default 300 commits).

use std::time::Instant;

use deltalake::arrow::array::RecordBatch;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use medallion::testing::GenerateOptions;
use medallion::testing::Lineage;
use medallion::testing::catalog;
use medallion::testing::{self as delta, TableId};
use medallion::testing::{AppendCommit, AppendLog};
use medallion::testing::{LocalData, Warehouse};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn reader() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = LocalData::new(dir.path());
    medallion::testing::generate(&data, &GenerateOptions::default(), false).expect("generate");
    let files: Vec<Vec<u8>> = std::fs::read_dir(data.tracker_dir())
        .expect("tracker")
        .map(|e| std::fs::read(e.expect("entry").path()).expect("read"))
        .collect();
    let bytes: usize = files.iter().map(Vec::len).sum();
    let lineage = Lineage {
        source_file: "x.json".into(),
        batch_id: 0,
        ingested_at: 0,
        first_position: 0,
    };
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..7 {
        let start = Instant::now();
        rows = 0;
        for file in &files {
            let mut sink = |b: RecordBatch| rows += b.num_rows();
            medallion::testing::read_tracker(file, &lineage, &mut sink).expect("valid file");
        }
        times.push(start.elapsed().as_secs_f64());
    }
    let t = median(times);
    println!(
        "reader: {rows} rows, {:.1} MB in {:.3} s (median of 7): {:.0} rows/s, {:.0} MB/s",
        bytes as f64 / 1e6,
        t,
        rows as f64 / t,
        bytes as f64 / 1e6 / t
    );
}

async fn one_row_adds(id: &TableId) -> Vec<deltalake::kernel::Add> {
    let lineage = Lineage {
        source_file: "x.json".into(),
        batch_id: 0,
        ingested_at: 0,
        first_position: 0,
    };
    let mut batches = Vec::new();
    medallion::testing::read_tracker(br#"[{"mrn": "1"}]"#, &lineage, &mut |b| batches.push(b))
        .expect("row");
    let mut writer =
        RecordBatchWriter::try_new(id.url.as_str(), catalog::BRONZE.schema(), None, None)
            .expect("writer");
    writer.write(batches.remove(0)).await.expect("write");
    writer.flush().await.expect("flush")
}

async fn commits(n: usize) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let warehouse = Warehouse::local(dir.path()).expect("warehouse");
    for (label, ours) in [
        ("bronze append path", true),
        ("deltalake table.write", false),
    ] {
        let id = TableId::new(&warehouse, if ours { "ours" } else { "theirs" });
        let mut table = delta::create(&id, &catalog::BRONZE, &[])
            .await
            .expect("create");
        let mut log = AppendLog::open(id.clone(), &table, "bench")
            .await
            .expect("log");
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            if ours {
                let adds = one_row_adds(&id).await;
                let start = Instant::now();
                log.commit(AppendCommit {
                    adds,
                    batch_id: i as i64,
                    rows: 1,
                    info: Default::default(),
                })
                .await
                .expect("commit");
                times.push(start.elapsed().as_secs_f64() * 1000.0);
            } else {
                let lineage = Lineage {
                    source_file: "x.json".into(),
                    batch_id: i as i64,
                    ingested_at: 0,
                    first_position: 0,
                };
                let mut batches = Vec::new();
                medallion::testing::read_tracker(br#"[{"mrn": "1"}]"#, &lineage, &mut |b| {
                    batches.push(b)
                })
                .expect("row");
                let start = Instant::now();
                table = table
                    .write(batches)
                    .with_commit_properties(
                        CommitProperties::default()
                            .with_application_transaction(Transaction::new("bench", i as i64)),
                    )
                    .await
                    .expect("write");
                // Includes writing the one-row Parquet file, which ours excludes: compare
                // the growth, not the first figure.
                times.push(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let windows: Vec<String> = times
            .chunks(100)
            .enumerate()
            .map(|(i, w)| {
                format!(
                    "v{}-{}: {:.2} ms",
                    i * 100 + 1,
                    i * 100 + w.len(),
                    median(w.to_vec())
                )
            })
            .collect();
        println!(
            "commit, {label} (median per window): {}",
            windows.join(", ")
        );
    }
}

#[tokio::main]
async fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    reader();
    commits(n).await;
}

//! A temporary workspace (data folder + warehouse) and helpers to run the binary in it and read
//! its tables back.

use std::path::{Path, PathBuf};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::util::pretty::pretty_format_batches;
use medallion::testing::Warehouse;
use medallion::testing::{self as delta, TableId};
use std::process::Command;

pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn warehouse(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    pub fn tracker(&self) -> PathBuf {
        self.data().join("healthcare/streaming/tracker")
    }

    pub fn patients_csv(&self) -> PathBuf {
        self.data().join("healthcare/batch/patient_info.csv")
    }

    /// `medallion` with this workspace's folders.
    pub fn medallion(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_medallion"));
        cmd.env_remove("MEDALLION_WAREHOUSE")
            .env_remove("MEDALLION_DATA")
            // Text tables fit COLUMNS when it is set: the tests' pipes get whole lines.
            .env_remove("COLUMNS")
            .arg("--warehouse")
            .arg(self.warehouse())
            .arg("--data")
            .arg(self.data());
        cmd
    }

    /// Run `medallion ARGS` and expect success; returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self
            .medallion()
            .args(args)
            .output()
            .expect("medallion runs");
        assert!(
            out.status.success(),
            "medallion {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Run `medallion ARGS` and expect failure with `code`; returns stderr.
    pub fn run_err(&self, args: &[&str], code: i32) -> String {
        let out = self
            .medallion()
            .args(args)
            .output()
            .expect("medallion runs");
        assert_eq!(
            out.status.code(),
            Some(code),
            "medallion {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.data().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn table_id(&self, name: &str) -> TableId {
        TableId::new(&Warehouse::local(&self.warehouse()).unwrap(), name)
    }

    /// The latest version of a table, or None if it does not exist.
    pub fn version(&self, name: &str) -> Option<u64> {
        let id = self.table_id(name);
        runtime().block_on(async { delta::open(&id).await.unwrap().and_then(|t| t.version()) })
    }

    /// Every row of a table, as one batch list.
    pub fn rows(&self, name: &str) -> Vec<RecordBatch> {
        let id = self.table_id(name);
        runtime().block_on(async {
            let table = delta::open(&id).await.unwrap().expect("the table exists");
            delta::read_all(&id, &table).await.unwrap()
        })
    }

    /// A table's rows pretty-printed, sorted by line (header first), for comparison.
    pub fn sorted_rows(&self, name: &str) -> Vec<String> {
        sorted_lines(&self.rows(name))
    }
}

pub fn sorted_lines(batches: &[RecordBatch]) -> Vec<String> {
    let text = pretty_format_batches(batches).unwrap().to_string();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.len() > 4 {
        let body_end = lines.len() - 1;
        lines[3..body_end].sort();
    }
    lines
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every file under `dir`, as relative path -> bytes.
pub fn folder_bytes(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

impl Workspace {
    /// January for 12 generated patients through the pipeline, then February appended and
    /// refreshed (gold v1, then v2).
    pub fn two_runs() -> Self {
        let ws = Self::new();
        ws.run_ok(&["generate", "--patients", "12", "--months", "1"]);
        ws.run_ok(&["-q", "pipeline"]);
        ws.run_ok(&["generate", "--append"]);
        ws.run_ok(&["-q", "pipeline"]);
        ws
    }

    /// Every data file a commit of silver's log ever added holds readings of one UTC month
    /// (by its `datetime` statistics); `only_appends`: look at appends (WRITE) only. Returns
    /// how many files were checked.
    pub fn assert_silver_files_keep_to_one_month(&self, only_appends: bool) -> usize {
        let log = self
            .warehouse()
            .join("healthcare_dlh.db/fact_heartrate_silver/_delta_log");
        let mut checked = 0;
        for entry in std::fs::read_dir(&log).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let actions: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let append = actions
                .iter()
                .any(|a| a["commitInfo"]["operation"] == "WRITE");
            if only_appends && !append {
                continue;
            }
            for add in actions.iter().filter_map(|a| a.get("add")) {
                let stats: serde_json::Value =
                    serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
                let month = |v: &serde_json::Value| v.as_str().unwrap()[..7].to_string();
                assert_eq!(
                    month(&stats["minValues"]["datetime"]),
                    month(&stats["maxValues"]["datetime"]),
                    "{}: a file spans months: {stats}",
                    path.display()
                );
                checked += 1;
            }
        }
        checked
    }
}

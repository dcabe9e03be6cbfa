//! A temporary workspace (data folder + warehouse) and helpers to run the binary in it and read
//! its tables back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::util::pretty::pretty_format_batches;
use medallion::testing::Warehouse;
use medallion::testing::{self as delta, TableId};
use std::process::{Child, Command};

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
        self.medallion_at(self.warehouse().as_os_str())
    }

    /// `medallion` with this workspace's data folder and the warehouse `warehouse` (a path or a
    /// URL).
    pub fn medallion_at(&self, warehouse: &std::ffi::OsStr) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_medallion"));
        cmd.env_remove("MEDALLION_WAREHOUSE")
            .env_remove("MEDALLION_DATA")
            // Text tables fit COLUMNS when it is set: the tests' pipes get whole lines.
            .env_remove("COLUMNS")
            // Jobs as a user runs them: no test knob from the caller's environment.
            .env_remove(SETTLE)
            .env_remove("MEDALLION_FAILPOINT")
            .env_remove("MEDALLION_CONFIG")
            .env_remove("MEDALLION_MIN_SHARE_ROWS")
            .arg("--warehouse")
            .arg(warehouse)
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

    /// Run `medallion ARGS` with source files settled at once (`SETTLE`, 0 ms: the tests write
    /// files whole) and expect success; returns stdout.
    pub fn run_settled(&self, args: &[&str]) -> String {
        let out = self
            .medallion()
            .env(SETTLE, "0")
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

    /// Run medallion with `args`, read the first line of its stdout, then close the pipe (as
    /// `| head -1` does); its output (stderr; stdout is the reader's) once it ends.
    pub fn read_first_line_then_close(&self, args: &[&str]) -> (String, std::process::Output) {
        use std::io::{BufRead, BufReader};
        let mut child = self
            .medallion()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // The reading end is dropped here: later writes hit a closed pipe.
        (first, child.wait_with_output().unwrap())
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

/// A table's rows as sorted CSV lines, as `show` prints them (`cmd`: medallion on some
/// warehouse).
pub fn table_lines(mut cmd: Command, table: &str) -> Vec<String> {
    let out = cmd
        .args(["show", table, "--format", "csv", "--limit", "0"])
        .output()
        .expect("medallion runs");
    assert!(
        out.status.success(),
        "show {table} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .expect("utf-8 stdout")
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// The settle time of source files, in milliseconds (bronze's `Completeness`, 2 s unless set).
pub const SETTLE: &str = "MEDALLION_SETTLE_MS";

/// Start `cmd` held at failpoint `point` until `release` exists (`<point>:pause=<file>`), its
/// stdout and stderr piped; [`wait_until_paused`] waits for the hold.
pub fn spawn_held(mut cmd: Command, point: &str, release: &Path) -> Child {
    cmd.env(
        "MEDALLION_FAILPOINT",
        format!("{point}:pause={}", release.display()),
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap()
}

/// Read `child`'s stderr (piped) until a `:pause=` failpoint says it holds the process; the
/// rest is read on a thread, whose result is the whole of stderr. Fails if the process ends
/// first.
pub fn wait_until_paused(child: &mut Child) -> std::thread::JoinHandle<String> {
    use std::io::{BufRead, Read};
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr is piped"));
    let mut text = String::new();
    loop {
        let start = text.len();
        let n = stderr.read_line(&mut text).unwrap();
        assert!(
            n > 0,
            "the process ended before a failpoint held it:\n{text}"
        );
        if text[start..].contains(": paused until ") {
            break;
        }
    }
    std::thread::spawn(move || {
        stderr.read_to_string(&mut text).unwrap();
        text
    })
}

/// Rounds of a random-kill test: `MEDALLION_KILL_ROUNDS` (`make soak`: 500), else `default`.
pub fn kill_rounds(default: usize) -> usize {
    std::env::var("MEDALLION_KILL_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}

/// Kills runs at random moments within about how long a run takes, learnt as the test goes:
/// a run that ends before its kill makes the window its length, a killed one widens it by a
/// twentieth. So the kills land inside runs on a fast machine and on a loaded one alike
/// (fixed delays mostly hit finished processes on one, start-ups on the other).
pub struct KillClock {
    window: Duration,
    /// The window of [`KillClock::run_from`]: from the moment the run is at its work.
    work_window: Duration,
    rng: rand::rngs::StdRng,
}

impl KillClock {
    pub fn new(seed: u64) -> Self {
        use rand::SeedableRng;
        Self {
            window: Duration::from_millis(200),
            work_window: Duration::from_millis(100),
            rng: rand::rngs::StdRng::seed_from_u64(seed),
        }
    }

    /// Start `cmd` and SIGKILL it at a random moment of the window, unless it ends first;
    /// returns its output (see [`killed`]).
    pub fn run(&mut self, cmd: &mut Command) -> std::process::Output {
        let child = cmd.spawn().expect("medallion starts");
        let mut window = self.window;
        let out = self.kill_within(child, &mut window, &|| false);
        self.window = window;
        out
    }

    /// Start `cmd`, wait until `begun()` says it is at its work (e.g. it planned a batch of
    /// this run), then SIGKILL it at a random moment of a window learnt as [`KillClock::run`]
    /// learns its own: the kill lands inside the work, not in the start-up before it (a start-up
    /// that grows with the table would otherwise take most kills of a long soak).
    pub fn run_from(
        &mut self,
        cmd: &mut Command,
        begun: impl Fn() -> bool,
    ) -> std::process::Output {
        self.run_during(cmd, begun, || false)
    }

    /// [`KillClock::run_from`], the window learnt from the moment `ended()` first said the work
    /// was over rather than from the process's exit: a run's tail after its work (writing its
    /// event log, waiting for a compaction) is no place the kills are meant for.
    pub fn run_during(
        &mut self,
        cmd: &mut Command,
        begun: impl Fn() -> bool,
        ended: impl Fn() -> bool,
    ) -> std::process::Output {
        let mut child = cmd.spawn().expect("medallion starts");
        while child.try_wait().unwrap().is_none() && !begun() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut window = self.work_window;
        let out = self.kill_within(child, &mut window, &ended);
        self.work_window = window;
        out
    }

    fn kill_within(
        &mut self,
        mut child: Child,
        window: &mut Duration,
        ended: &dyn Fn() -> bool,
    ) -> std::process::Output {
        use rand::Rng;
        let kill_at = window.mul_f64(self.rng.random_range(0.0..1.0));
        let start = std::time::Instant::now();
        let mut work_over = None;
        loop {
            if work_over.is_none() && ended() {
                work_over = Some(start.elapsed());
            }
            if child.try_wait().unwrap().is_some() {
                *window = work_over
                    .unwrap_or_else(|| start.elapsed())
                    .max(Duration::from_millis(10));
                break;
            }
            if start.elapsed() >= kill_at {
                let _ = child.kill();
                *window = window.mul_f64(1.05);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.wait_with_output().unwrap()
    }
}

/// Whether a process ended by SIGKILL: the kill found it alive.
pub fn killed(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

/// The bronze batch whose plan (`offsets/N`) has no done marker (`commits/N`), if any: a run
/// stopped inside it.
pub fn unfinished_batch(ws: &Workspace) -> Option<i64> {
    let last = last_planned(ws)?;
    let done = bronze_checkpoint(ws).join("commits").join(last.to_string());
    (!done.exists()).then_some(last)
}

/// The last batch the bronze checkpoint has a plan (`offsets/N`) of, if any.
pub fn last_planned(ws: &Workspace) -> Option<i64> {
    std::fs::read_dir(bronze_checkpoint(ws).join("offsets"))
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .max()
}

fn bronze_checkpoint(ws: &Workspace) -> PathBuf {
    ws.warehouse()
        .join("healthcare_dlh.db/fact_heartrate_bronze/_checkpoint")
}

/// The batch ids of the bronze checkpoint's progress records marked `"recovered": true`: the
/// batches a run finished that an earlier one had planned.
pub fn recovered_batches(ws: &Workspace) -> std::collections::BTreeSet<i64> {
    let path = ws
        .warehouse()
        .join("healthcare_dlh.db/fact_heartrate_bronze/_checkpoint/progress.jsonl");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["recovered"] == true)
        .map(|r| r["batchId"].as_i64().unwrap())
        .collect()
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
    /// (by its `datetime` statistics), and an append (WRITE) adds one file per month, whatever
    /// the number of cores; `only_appends`: look at appends only. Returns how many files were
    /// checked.
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
            let mut months = Vec::new();
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
                months.push(month(&stats["minValues"]["datetime"]));
                checked += 1;
            }
            if append {
                let files = months.len();
                months.sort();
                months.dedup();
                assert_eq!(
                    files,
                    months.len(),
                    "{}: an append wrote a month in several files ({months:?})",
                    path.display()
                );
            }
        }
        checked
    }
}

/// Write a lab-format tracker file of `n` rows, whole (a temporary name, then a rename); values
/// depend on the file's name. Returns its text.
pub fn write_tracker(ws: &Workspace, name: &str, n: usize) -> String {
    let seed = name.bytes().map(u64::from).sum::<u64>();
    let rows: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "device_id": format!("{}", seed % 40 + 1),
                "heartrate": format!("{}.{:04}", 60 + (seed + i as u64) % 40, i),
                "mrn": format!("{}", 10_000_000 + seed),
                "time": format!("{}.5", 1_578_000_000 + seed * 100_000 + i as u64 * 900),
            })
        })
        .collect();
    let text = serde_json::to_string_pretty(&rows).unwrap();
    std::fs::create_dir_all(ws.tracker()).unwrap();
    let tmp = ws.tracker().join(format!(".{name}.writing"));
    std::fs::write(&tmp, &text).unwrap();
    std::fs::rename(tmp, ws.tracker().join(name)).unwrap();
    text
}

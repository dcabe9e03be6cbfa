//! An `s3://` warehouse and sources on a local S3 (moto, started on 127.0.0.1 and a free port by
//! each test, stopped when it ends): the pipeline gives what it gives on a local folder, and
//! the races hold: several sources appending to one bronze table while each is killed and
//! restarted, silver and gold refreshing meanwhile, two pipelines at once.
//!
//! moto comes from the venv `make test` builds (`MEDALLION_MOTO`, else `.venv/bin/moto_server`).
//! Without Python the tests are skipped, saying so on stderr; with Python but no moto they fail
//! and say how to get it.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{KillClock, SETTLE, Workspace, killed, table_lines};
use medallion::failpoint::points;

/// A moto S3 server of one test; killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Start moto, or `None` (said loudly) where there is no Python to run it.
    fn start() -> Option<Self> {
        let server = match std::env::var_os("MEDALLION_MOTO") {
            Some(path) => PathBuf::from(path),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server"),
        };
        if !server.exists() {
            let python = Command::new("python3")
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !python {
                eprintln!(
                    "\n*** S3 TESTS SKIPPED: no python3 on this machine, so no moto (a local \
                     S3) to run them against ***\n"
                );
                return None;
            }
            panic!(
                "moto is not installed at {}: run the tests with `make test` (it installs \
                 moto[server] into .venv), or set MEDALLION_MOTO to a moto_server",
                server.display()
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // Through a shell that stops moto when asked (SIGTERM, by `drop`) and when the test
        // process is gone (killed before it could drop this): never left running.
        let child = Command::new("sh")
            .args([
                "-c",
                r#""$0" -H 127.0.0.1 -p "$1" & moto=$!
                   trap 'kill $moto 2>/dev/null; exit 0' TERM INT
                   while kill -0 "$2" 2>/dev/null && kill -0 $moto 2>/dev/null; do sleep 0.5; done
                   kill $moto 2>/dev/null"#,
            ])
            .arg(&server)
            .arg(port.to_string())
            .arg(std::process::id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Self { child, port };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto did not listen on 127.0.0.1:{port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One plain HTTP request (moto does not check signatures); the response's status code.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> u16 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .unwrap();
        stream.write_all(body).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("moto answered {response:?}"))
    }

    fn create_bucket(&self, bucket: &str) {
        assert_eq!(self.request("PUT", &format!("/{bucket}"), b""), 200);
    }

    /// Upload a local file as `s3://bucket/key`.
    fn put(&self, bucket: &str, key: &str, file: &Path) {
        let bytes = std::fs::read(file).unwrap();
        assert_eq!(
            self.request("PUT", &format!("/{bucket}/{key}"), &bytes),
            200
        );
    }

    /// The keys under `s3://bucket/prefix`.
    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET /{bucket}?list-type=2&prefix={prefix} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
             Connection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
            .split("<Key>")
            .skip(1)
            .filter_map(|part| part.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// The AWS settings of this server, as every AWS tool takes them.
    fn env(&self, cmd: &mut Command) {
        cmd.env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ALLOW_HTTP", "true")
            // Never ask a cloud metadata service for credentials.
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // SIGTERM: the shell's trap stops moto, then the shell ends.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// `medallion` on `warehouse` (an s3:// URL) and the workspace's data folder, with moto's
/// settings and files settled at once.
fn on(ws: &Workspace, moto: &Moto, warehouse: &str) -> Command {
    let mut cmd = ws.medallion_at(OsStr::new(warehouse));
    moto.env(&mut cmd);
    cmd.env(SETTLE, "0");
    cmd
}

fn run_ok(mut cmd: Command, args: &[&str]) -> String {
    let out = cmd.args(args).output().expect("medallion runs");
    assert!(
        out.status.success(),
        "medallion {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The tables silver, gold and daily, which the same input gives whatever the warehouse.
const DERIVED: [&str; 3] = [
    "fact_heartrate_silver",
    "fact_heartrate_gold",
    "fact_heartrate_daily",
];

#[test]
fn an_s3_warehouse_holds_what_a_local_one_does_and_its_store_is_checked_once() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("lakehouse");
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "6", "--months", "2"]);
    let s3 = "s3://lakehouse/wh";
    run_ok(on(&ws, &moto, s3), &["-q", "pipeline"]);
    ws.run_settled(&["-q", "pipeline"]);
    // The probe ran before the first write and left its record (and nothing else).
    let keys = moto.keys("lakehouse", "wh/_medallion/");
    assert_eq!(keys, ["wh/_medallion/store-check.json"], "{keys:?}");
    // The checkpoint is on the store, beside the table.
    let checkpoint = moto.keys(
        "lakehouse",
        "wh/healthcare_dlh.db/fact_heartrate_bronze/_checkpoint/",
    );
    assert!(
        checkpoint
            .iter()
            .any(|k| k.ends_with("_checkpoint/metadata"))
            && checkpoint
                .iter()
                .any(|k| k.ends_with("_checkpoint/offsets/1"))
            && checkpoint
                .iter()
                .any(|k| k.ends_with("_checkpoint/commits/1")),
        "{checkpoint:?}"
    );
    for table in DERIVED.iter().chain(&["dim_patients"]) {
        assert_eq!(
            table_lines(on(&ws, &moto, s3), table),
            table_lines(ws.medallion(), table),
            "{table}"
        );
    }
    // Bronze's rows are the same, but for where they came from and when.
    let count = |cmd: Command| {
        run_ok(
            cmd,
            &[
                "sql",
                "SELECT count(*) AS n, count(DISTINCT _source_file) AS f FROM fact_heartrate_bronze",
                "--format",
                "csv",
            ],
        )
    };
    assert_eq!(count(on(&ws, &moto, s3)), count(ws.medallion()));
    // Time travel, history and the inspect commands read the store too.
    let v1 = run_ok(
        on(&ws, &moto, s3),
        &[
            "show",
            "fact_heartrate_bronze",
            "--version",
            "1",
            "--format",
            "csv",
            "--limit",
            "0",
        ],
    );
    assert!(v1.lines().count() > 1, "{v1}");
    let history = run_ok(
        on(&ws, &moto, s3),
        &["history", "fact_heartrate_bronze", "--format", "json"],
    );
    assert!(history.contains("STREAMING UPDATE"), "{history}");
    let tables = run_ok(on(&ws, &moto, s3), &["tables", "--format", "csv"]);
    for table in DERIVED {
        assert!(tables.contains(table), "{tables}");
    }
    // A second run finds nothing new, and `check-store` probes again on demand.
    let again = run_ok(on(&ws, &moto, s3), &["--json", "bronze"]);
    assert!(again.contains("\"batches\":0"), "{again}");
    let checked = run_ok(on(&ws, &moto, s3), &["check-store"]);
    assert!(checked.contains("honours put-if-absent"), "{checked}");
}

#[test]
fn data_uploaded_to_s3_is_ingested_from_there() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("lakehouse");
    let data = "s3://lakehouse/data";
    let warehouse = "s3://lakehouse/wh";
    run_ok(
        bare(&moto),
        &[
            "--data",
            data,
            "generate",
            "--patients",
            "4",
            "--months",
            "2",
        ],
    );
    let keys = moto.keys("lakehouse", "data/healthcare/");
    assert_eq!(
        keys.len(),
        3,
        "the patient CSV and two monthly files: {keys:?}"
    );
    // A second generate would replace it: refused without --force.
    let out = bare(&moto)
        .args(["--data", data, "generate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let report = run_ok(
        bare(&moto),
        &[
            "--data",
            data,
            "--warehouse",
            warehouse,
            "--json",
            "pipeline",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["bronze"]["files"], 2, "{report}");
    let lineage = run_ok(
        bare(&moto),
        &[
            "--warehouse",
            warehouse,
            "sql",
            "SELECT DISTINCT _source_file FROM fact_heartrate_bronze",
            "--format",
            "csv",
        ],
    );
    assert!(
        lineage.contains("s3://lakehouse/data/healthcare/streaming/tracker/"),
        "{lineage}"
    );
    // --force replaces the data set: the earlier months go, a file it did not write stays and
    // is named.
    let foreign =
        std::env::temp_dir().join(format!("medallion-foreign-{}.json", std::process::id()));
    std::fs::write(&foreign, "[]").unwrap();
    moto.put(
        "lakehouse",
        "data/healthcare/streaming/tracker/99-site.json",
        &foreign,
    );
    std::fs::remove_file(&foreign).unwrap();
    let out = bare(&moto)
        .args([
            "--data",
            data,
            "generate",
            "--force",
            "--patients",
            "2",
            "--months",
            "1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("99-site.json: not written by"),
        "{out:?}"
    );
    let mut keys = moto.keys("lakehouse", "data/healthcare/streaming/tracker/");
    keys.sort();
    assert_eq!(
        keys,
        [
            "data/healthcare/streaming/tracker/01.json",
            "data/healthcare/streaming/tracker/99-site.json"
        ]
    );
}

/// `medallion` with moto's settings and nothing else.
fn bare(moto: &Moto) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_medallion"));
    cmd.env_remove("MEDALLION_WAREHOUSE")
        .env_remove("MEDALLION_DATA")
        .env(SETTLE, "0");
    moto.env(&mut cmd);
    cmd
}

/// The batch a killed run left planned and not done in a checkpoint on the store, if any.
fn unfinished_on_store(moto: &Moto, bucket: &str, checkpoint: &str) -> bool {
    let ids = |sub: &str| -> std::collections::BTreeSet<i64> {
        moto.keys(bucket, &format!("{checkpoint}{sub}/"))
            .iter()
            .filter_map(|k| k.rsplit('/').next()?.parse().ok())
            .collect()
    };
    let done = ids("commits");
    ids("offsets").iter().any(|b| !done.contains(b))
}

/// Bronze's rows, the distinct deliveries among them (a file ingested twice would repeat its
/// (file, position) pairs) and the distinct files.
fn bronze_counts(cmd: Command) -> (u64, u64, u64) {
    let out = run_ok(
        cmd,
        &[
            "sql",
            "SELECT count(*) AS n, \
             count(DISTINCT concat(_source_file, ':', CAST(_batch_id AS VARCHAR), ':', \
             CAST(_position AS VARCHAR))) AS deliveries, \
             count(DISTINCT concat(_source_file, ':', CAST(_position AS VARCHAR))) AS rows_by_file, \
             count(DISTINCT _source_file) AS files FROM fact_heartrate_bronze",
            "--format",
            "csv",
        ],
    );
    let line = out.lines().nth(1).expect("one row");
    let n: Vec<u64> = line.split(',').map(|v| v.parse().unwrap()).collect();
    assert_eq!(n[0], n[1], "a delivery is in bronze twice: {out}");
    (n[0], n[2], n[3])
}

/// Local copies of the monthly files of a generated data set: `months` files, oldest first.
fn monthly_files(ws: &Workspace) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(ws.tracker())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn four_sources_killed_and_restarted_append_every_row_once_while_silver_and_gold_refresh() {
    let Some(moto) = Moto::start() else { return };
    let moto = std::sync::Arc::new(moto);
    moto.create_bucket("races");
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "5", "--months", "6"]);
    let files = monthly_files(&ws);
    let warehouse = "s3://races/wh";
    run_ok(on(&ws, &moto, warehouse), &["-q", "patients"]);
    const SOURCES: usize = 4;
    let upload = |month: usize| {
        for s in 0..SOURCES {
            let file = &files[month];
            let name = file.file_name().unwrap().to_str().unwrap();
            moto.put("races", &format!("src{s}/{name}"), file);
        }
    };
    upload(0);
    upload(1);

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let kills = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mid_batch = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::scope(|scope| {
        let mut writers = Vec::new();
        for s in 0..SOURCES {
            let (ws, moto, kills, mid_batch) =
                (&ws, moto.clone(), kills.clone(), mid_batch.clone());
            writers.push(scope.spawn(move || {
                let source = format!("--source=s{s}=s3://races/src{s}/");
                let checkpoint =
                    format!("wh/healthcare_dlh.db/fact_heartrate_bronze/_checkpoint/s{s}/");
                let mut clock = KillClock::new(s as u64);
                let plans = || moto.keys("races", &format!("{checkpoint}offsets/")).len();
                for _ in 0..5 {
                    // Killed once it has planned a batch of this run: inside its work.
                    let before = plans();
                    let out = clock.run_from(
                        on(ws, &moto, warehouse).args(["-q", "bronze", &source]),
                        || plans() > before,
                    );
                    if killed(&out.status) {
                        kills.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if unfinished_on_store(&moto, "races", &checkpoint) {
                            mid_batch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    } else {
                        assert!(
                            out.status.success(),
                            "bronze s{s}: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                }
            }));
        }
        // Silver and gold refresh while the sources append (each a consistent snapshot).
        let refresher = scope.spawn(|| {
            let mut refreshes = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let silver = on(&ws, &moto, warehouse)
                    .args(["-q", "silver"])
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&silver.stderr);
                if !silver.status.success() && stderr.contains("run `medallion bronze` first") {
                    // No source has created the table yet.
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                assert!(silver.status.success(), "silver during the race: {stderr}");
                run_ok(on(&ws, &moto, warehouse), &["-q", "gold"]);
                refreshes += 1;
            }
            refreshes
        });
        // Files arrive while the writers run and are killed.
        for month in 2..files.len() {
            std::thread::sleep(Duration::from_millis(300));
            upload(month);
        }
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let refreshes = refresher.join().unwrap();
        eprintln!(
            "s3 race: {SOURCES} sources, {} kills ({} inside a batch), {refreshes} silver+gold \
             refreshes during the race",
            kills.load(std::sync::atomic::Ordering::SeqCst),
            mid_batch.load(std::sync::atomic::Ordering::SeqCst)
        );
    });
    assert!(
        mid_batch.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "no kill landed inside a batch: the race proved nothing"
    );
    // Every source to its end, then a final refresh.
    for s in 0..SOURCES {
        run_ok(
            on(&ws, &moto, warehouse),
            &["-q", "bronze", &format!("--source=s{s}=s3://races/src{s}/")],
        );
    }
    run_ok(on(&ws, &moto, warehouse), &["-q", "silver"]);
    run_ok(on(&ws, &moto, warehouse), &["-q", "gold"]);

    // The one-shot computation: the same sources, local, each read once.
    let local = Workspace::new();
    std::fs::create_dir_all(local.data().join("healthcare/batch")).unwrap();
    std::fs::copy(ws.patients_csv(), local.patients_csv()).unwrap();
    let mut sources = Vec::new();
    for s in 0..SOURCES {
        let dir = local.dir.path().join(format!("src{s}"));
        std::fs::create_dir_all(&dir).unwrap();
        for file in &files {
            std::fs::copy(file, dir.join(file.file_name().unwrap())).unwrap();
        }
        sources.push(format!("--source=s{s}={}", dir.display()));
    }
    local.run_settled(&["-q", "patients"]);
    for source in &sources {
        local.run_settled(&["-q", "bronze", source]);
    }
    local.run_settled(&["-q", "silver"]);
    local.run_settled(&["-q", "gold"]);

    let (rows, by_file, files_in) = bronze_counts(on(&ws, &moto, warehouse));
    let (local_rows, _, local_files) = bronze_counts(local.medallion());
    assert_eq!((rows, files_in), (local_rows, local_files));
    assert_eq!(by_file, rows, "a file's rows are in bronze twice");
    eprintln!("s3 race: bronze {rows} rows from {files_in} files, lost 0, doubled 0");
    for table in DERIVED {
        assert_eq!(
            table_lines(on(&ws, &moto, warehouse), table),
            table_lines(local.medallion(), table),
            "{table} after the race differs from the one-shot computation"
        );
    }
}

/// Two `pipeline`s at once on one warehouse, `rounds` times, a new month arriving before each
/// round: each ends done (0) or having lost a race (3, with a message that says so), and after
/// a last run the tables equal one pipeline's over the same files. Returns the races lost.
fn two_pipelines_at_once(
    ws: &Workspace,
    cmd: &dyn Fn() -> Command,
    deliver: &dyn Fn(usize),
) -> usize {
    let rounds = 20;
    let mut lost = 0;
    for round in 0..rounds {
        deliver(round);
        let children: Vec<Child> = (0..2)
            .map(|_| {
                cmd()
                    .args(["-q", "pipeline"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !stderr.contains("panicked") && !stderr.contains("Failed to commit transaction"),
                "round {round}: {stderr}"
            );
            match out.status.code() {
                Some(0) => {}
                Some(3) => {
                    lost += 1;
                    assert!(
                        stderr.contains("another") && stderr.contains(" again"),
                        "round {round}: a lost race must say so, and that a rerun goes on: \
                         {stderr}"
                    );
                }
                other => panic!("round {round}: exit {other:?}: {stderr}"),
            }
        }
    }
    let out = cmd().args(["-q", "pipeline"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One pipeline over the same files, once.
    let oracle = Workspace::new();
    std::fs::create_dir_all(oracle.tracker()).unwrap();
    std::fs::create_dir_all(oracle.data().join("healthcare/batch")).unwrap();
    std::fs::copy(ws.patients_csv(), oracle.patients_csv()).unwrap();
    for file in monthly_files(ws).iter().take(rounds) {
        std::fs::copy(file, oracle.tracker().join(file.file_name().unwrap())).unwrap();
    }
    oracle.run_settled(&["-q", "pipeline"]);
    let (rows, by_file, files) = bronze_counts(cmd());
    let (oracle_rows, _, oracle_files) = bronze_counts(oracle.medallion());
    assert_eq!((rows, files), (oracle_rows, oracle_files));
    assert_eq!(by_file, rows, "a file's rows are in bronze twice");
    for table in DERIVED {
        let mut c = cmd();
        c.env(SETTLE, "0");
        assert_eq!(
            table_lines(c, table),
            table_lines(oracle.medallion(), table),
            "{table} after two pipelines at once"
        );
    }
    eprintln!(
        "two pipelines at once: {rounds} rounds, {lost} races lost, bronze {rows} rows, lost 0, doubled 0"
    );
    lost
}

/// A data set of 20 months, delivered one month per round into the tracker folder.
fn staged_months() -> (Workspace, Workspace) {
    let staging = Workspace::new();
    staging.run_ok(&["generate", "--patients", "4", "--months", "20"]);
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.tracker()).unwrap();
    std::fs::create_dir_all(ws.data().join("healthcare/batch")).unwrap();
    std::fs::copy(staging.patients_csv(), ws.patients_csv()).unwrap();
    (staging, ws)
}

#[test]
fn two_pipelines_at_once_on_a_local_warehouse_lose_cleanly_and_lose_nothing() {
    let (staging, ws) = staged_months();
    let months = monthly_files(&staging);
    let deliver = |round: usize| {
        let file = &months[round];
        std::fs::copy(file, ws.tracker().join(file.file_name().unwrap())).unwrap();
    };
    let cmd = || {
        let mut cmd = ws.medallion();
        cmd.env(SETTLE, "0");
        cmd
    };
    two_pipelines_at_once(&ws, &cmd, &deliver);
}

#[test]
fn two_pipelines_at_once_on_an_s3_warehouse_lose_cleanly_and_lose_nothing() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("twice");
    let (staging, ws) = staged_months();
    let months = monthly_files(&staging);
    let deliver = |round: usize| {
        let file = &months[round];
        std::fs::copy(file, ws.tracker().join(file.file_name().unwrap())).unwrap();
    };
    let cmd = || on(&ws, &moto, "s3://twice/wh");
    two_pipelines_at_once(&ws, &cmd, &deliver);
}

#[test]
fn s3_keys_with_percent_unicode_and_hash_are_read_by_the_key_they_are_listed_under() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("keys");
    let ws = Workspace::new();
    let file = ws.dir.path().join("one.json");
    std::fs::write(
        &file,
        r#"[{"device_id": "1", "heartrate": "60", "mrn": "10000001", "time": "1601510459"}]"#,
    )
    .unwrap();
    // (key as sent in the request's path, percent-encoded) for: "sp ace", "ünï", "pct%41",
    // "hash#1", "tilde~", "star*".
    let keys = [
        "sp%20ace.json",
        "%C3%BCn%C3%AF.json",
        "pct%2541.json",
        "hash%231.json",
        "tilde~.json",
        "star%2A.json",
    ];
    for key in keys {
        moto.put("keys", &format!("src/{key}"), &file);
    }
    let out = run_ok(
        on(&ws, &moto, "s3://keys/wh"),
        &[
            "--json",
            "bronze",
            "--max-files-per-trigger",
            "0",
            "--source=k=s3://keys/src/",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(report["files"], keys.len(), "{out}");
    assert_eq!(report["rows"], keys.len(), "every object read: {out}");
    assert_eq!(report["quarantined_rows"], 0, "{out}");
}

#[test]
fn a_mistyped_s3_source_or_endpoint_is_refused_before_anything_is_written() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("typo");
    let ws = Workspace::new();
    // A prefix that lists nothing, for a new stream: refused, no table, no checkpoint.
    let out = on(&ws, &moto, "s3://typo/wh")
        .args(["bronze", "--source=a=s3://typo/no-such-prefix/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("s3://typo/no-such-prefix/") && err.contains("no object"),
        "{err}"
    );
    // A bucket that does not exist.
    let out = on(&ws, &moto, "s3://typo/wh")
        .args(["bronze", "--source=a=s3://no-such-bucket/x/"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bucket does not exist") && !err.contains("<?xml"),
        "{err}"
    );
    let written: Vec<String> = moto
        .keys("typo", "wh/")
        .into_iter()
        .filter(|k| !k.starts_with("wh/_medallion/"))
        .collect();
    assert!(written.is_empty(), "{written:?}");
    // An endpoint that is not a URL: a usage error, not a panic.
    for endpoint in ["notaurl", "http://", ""] {
        let out = on(&ws, &moto, "s3://typo/wh")
            .env("AWS_ENDPOINT_URL", endpoint)
            .arg("tables")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{endpoint:?}: {err}");
        assert!(
            !err.contains("internal error") && !err.contains("panicked"),
            "{err}"
        );
    }
}

#[test]
fn clean_source_archives_s3_objects_after_their_batch_is_committed() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("lakehouse");
    let data = "s3://lakehouse/data";
    let warehouse = "s3://lakehouse/wh";
    let archive = "archive=s3://lakehouse/archive/";
    run_ok(
        bare(&moto),
        &[
            "--data",
            data,
            "generate",
            "--patients",
            "4",
            "--months",
            "3",
        ],
    );
    let before = moto.keys("lakehouse", "data/healthcare/streaming/tracker/");
    assert_eq!(before.len(), 3, "{before:?}");
    // Killed after the first batch is done, before its clean-up: its object stays.
    let out = bare(&moto)
        .env("MEDALLION_FAILPOINT", points::AFTER_DONE)
        .args([
            "--data",
            data,
            "--warehouse",
            warehouse,
            "bronze",
            "--clean-source",
            archive,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        moto.keys("lakehouse", "data/healthcare/streaming/tracker/"),
        before
    );
    let report = run_ok(
        bare(&moto),
        &[
            "--data",
            data,
            "--warehouse",
            warehouse,
            "--json",
            "bronze",
            "--clean-source",
            archive,
        ],
    );
    let report: serde_json::Value = serde_json::from_str(report.lines().last().unwrap()).unwrap();
    assert_eq!(report["batches"], 2, "{report}");
    assert!(
        moto.keys("lakehouse", "data/healthcare/streaming/tracker/")
            .is_empty()
    );
    let archived = moto.keys("lakehouse", "archive/");
    assert_eq!(archived.len(), 3, "{archived:?}");
    let counts = run_ok(
        bare(&moto),
        &["--warehouse", warehouse, "--data", data, "--json", "files"],
    );
    let states: Vec<serde_json::Value> = counts
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["state"].clone())
        .collect();
    assert_eq!(states, ["archived", "archived", "archived"]);
}
